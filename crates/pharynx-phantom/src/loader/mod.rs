//! Batched candle tensors from a dataset folder or from any folder of images.
//!
//! A [`DatasetSource`] lists the items (id + image path, and optionally mask and sketch paths)
//! of either a phantom dataset split ([`DatasetSource::phantom`]) or a plain folder of
//! PNG/JPEG images with optional sibling folders of masks and sketches that share the file stems
//! ([`DatasetSource::image_folder`]; this is how real photographs are trained on).
//! A [`Loader`] turns the items into [`Batch`]es:
//!
//! - images `[B, 3, H, W]` `f32` in `[-1, 1]`, sketches `[B, 1, H, W]` `f32` in `[-1, 1]`
//!   (the mapping of [`s2m_core::imageio`]), masks `[B, H, W]` `u8` raw label values
//!   (`class_id * 16 + instance`, validated);
//! - each epoch has its own seeded order (Fisher-Yates with
//!   `rng_from_seed(derive_seed(seed, 0x5EED, epoch))`), so a resumed run sees the same batches;
//! - the files of a batch are decoded in parallel with rayon.
//!
//! Every error names the file at fault (and, for sizes, the expected and actual size). Errors
//! that can be found without decoding (missing manifest, missing files, empty source, zero batch
//! size) are reported by [`Loader::new`], before any training time is spent.

mod decode;
mod error;
mod source;
#[cfg(test)]
mod tests;

pub use error::{LoaderError, Result};
pub use s2m_core::imageio::IMAGE_EXTENSIONS;
pub use source::{DatasetSource, Item};

use candle_core::{Device, Tensor};
use decode::decode_item;
use rayon::prelude::*;
use s2m_core::CoreError;
use s2m_core::rng::{derive_seed, seeded_permutation};

/// Stream id of the epoch shuffles in [`derive_seed`].
const SHUFFLE_STREAM: u64 = 0x5EED;

/// How a [`Loader`] batches a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Items per batch (at least 1).
    pub batch_size: usize,
    /// Seed of the per-epoch shuffles; `None` keeps source order in every epoch.
    pub shuffle_seed: Option<u64>,
    /// Drop the last, smaller batch of an epoch (for models that need a fixed batch size).
    pub drop_last: bool,
    /// Expected square image size. `None`: the manifest's size for a dataset folder, else the
    /// size of the first image; all files must then have that size.
    pub size: Option<u32>,
    /// Load the label maps into [`Batch::masks`].
    pub load_masks: bool,
    /// Load the sketches into [`Batch::sketches`].
    pub load_sketches: bool,
    /// Resize every item to this square size after the size check (images and sketches with
    /// a triangle filter, which averages when shrinking; masks with nearest neighbour so labels
    /// stay valid). `None` keeps the files' size.
    pub resize_to: Option<u32>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            shuffle_seed: None,
            drop_last: false,
            size: None,
            load_masks: false,
            load_sketches: false,
            resize_to: None,
        }
    }
}

/// One batch of items.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The ids of the items, in batch order.
    pub ids: Vec<String>,
    /// `[B, 3, H, W]` `f32` in `[-1, 1]`.
    pub images: Tensor,
    /// `[B, 1, H, W]` `f32` in `[-1, 1]` (dark strokes near -1 on white near 1), if loaded.
    pub sketches: Option<Tensor>,
    /// `[B, H, W]` `u8` label values `class_id * 16 + instance`, if loaded.
    pub masks: Option<Tensor>,
}

impl Batch {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch is empty (never the case for batches from a [`Loader`]).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Turns a [`DatasetSource`] into seeded, batched tensors on a device.
#[derive(Debug, Clone)]
pub struct Loader {
    source: DatasetSource,
    config: LoaderConfig,
    device: Device,
    /// Expected (width, height) of every file.
    size: (u32, u32),
}

impl Loader {
    /// Checks the config and the source (non-empty; the files the config needs exist; the size
    /// is known) without decoding any image.
    pub fn new(source: DatasetSource, config: LoaderConfig, device: &Device) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(LoaderError::ZeroBatchSize);
        }
        if config.resize_to == Some(0) {
            return Err(LoaderError::ZeroResize);
        }
        let Some(first) = source.items.first() else {
            return Err(LoaderError::Empty(source.name.clone()));
        };
        if config.load_masks && !source.has_masks {
            return Err(LoaderError::Unavailable {
                what: "masks (load_masks)",
                source_name: source.name.clone(),
            });
        }
        if config.load_sketches && !source.has_sketches {
            return Err(LoaderError::Unavailable {
                what: "sketches (load_sketches)",
                source_name: source.name.clone(),
            });
        }
        // Stat every needed file now (in parallel: a full dataset has ~180k files) so a missing
        // file stops the run at start-up rather than hours into an epoch.
        let missing = source.items.par_iter().find_first(|item| {
            !item.image.is_file()
                || (config.load_masks && item.mask.as_ref().is_some_and(|p| !p.is_file()))
                || (config.load_sketches && item.sketch.as_ref().is_some_and(|p| !p.is_file()))
        });
        if let Some(item) = missing {
            let (kind, expected) = if !item.image.is_file() {
                ("image file", item.image.clone())
            } else if config.load_masks && item.mask.as_ref().is_some_and(|p| !p.is_file()) {
                ("mask", item.mask.clone().unwrap_or_default())
            } else {
                ("sketch", item.sketch.clone().unwrap_or_default())
            };
            return Err(LoaderError::Missing {
                kind,
                image: item.image.clone(),
                expected,
            });
        }
        let size = match (config.size, source.manifest.as_ref()) {
            (Some(s), Some((path, manifest))) if manifest.size != s => {
                return Err(LoaderError::SizeMismatch {
                    path: path.clone(),
                    declared: manifest.size,
                    requested: s,
                });
            }
            (Some(s), _) => (s, s),
            (None, Some((_, manifest))) => (manifest.size, manifest.size),
            // Only the header is read: cheap, and the first batch re-checks the real pixels.
            (None, None) => {
                image::image_dimensions(&first.image).map_err(|e| CoreError::Decode {
                    path: first.image.clone(),
                    message: e.to_string(),
                })?
            }
        };
        Ok(Self {
            source,
            config,
            device: device.clone(),
            size,
        })
    }

    /// Number of items per epoch (before `drop_last`).
    pub fn len(&self) -> usize {
        self.source.len()
    }

    /// Always false: [`Loader::new`] rejects empty sources.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The expected (width, height) of every file.
    pub fn image_size(&self) -> (u32, u32) {
        self.size
    }

    /// The (width, height) of the batches' tensors (after `resize_to`).
    pub fn output_size(&self) -> (u32, u32) {
        self.config.resize_to.map(|s| (s, s)).unwrap_or(self.size)
    }

    /// The source.
    pub fn source(&self) -> &DatasetSource {
        &self.source
    }

    /// The config.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The item indices of `epoch` in visiting order: a Fisher-Yates shuffle seeded by
    /// `derive_seed(seed, 0x5EED, epoch)`, or source order without a seed.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        match self.config.shuffle_seed {
            Some(seed) => seeded_permutation(self.len(), derive_seed(seed, SHUFFLE_STREAM, epoch)),
            None => (0..self.len()).collect(),
        }
    }

    /// The batches of `epoch`, decoded lazily: each `next()` decodes one batch in parallel.
    pub fn epoch(&self, epoch: u64) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order = self.epoch_order(epoch);
        let batch_size = self.config.batch_size;
        (0..self.num_batches()).map(move |b| {
            let end = ((b + 1) * batch_size).min(order.len());
            self.batch(&order[b * batch_size..end])
        })
    }

    /// Loads the items at `indices` (source order indices) as one batch.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        let len = self.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(LoaderError::Index { index, len });
        }
        // Collect every result, then take the first error in batch order, so which error is
        // reported does not depend on thread timing.
        let decoded = indices
            .par_iter()
            .map(|&i| decode_item(&self.source.items[i], &self.config, self.size))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let b = indices.len();
        let (w, h) = self.output_size();
        let (w, h) = (w as usize, h as usize);
        let mut images = Vec::with_capacity(b * 3 * h * w);
        let mut sketches = Vec::with_capacity(if self.config.load_sketches {
            b * h * w
        } else {
            0
        });
        let mut masks = Vec::with_capacity(if self.config.load_masks { b * h * w } else { 0 });
        for d in &decoded {
            images.extend_from_slice(&d.image);
            if let Some(s) = &d.sketch {
                sketches.extend_from_slice(s);
            }
            if let Some(m) = &d.mask {
                masks.extend_from_slice(m);
            }
        }
        // [B, 3, H, W]
        let images = Tensor::from_vec(images, (b, 3, h, w), &self.device)?;
        let sketches = if self.config.load_sketches {
            // [B, 1, H, W]
            Some(Tensor::from_vec(sketches, (b, 1, h, w), &self.device)?)
        } else {
            None
        };
        let masks = if self.config.load_masks {
            // [B, H, W]
            Some(Tensor::from_vec(masks, (b, h, w), &self.device)?)
        } else {
            None
        };
        Ok(Batch {
            ids: indices
                .iter()
                .map(|&i| self.source.items[i].id.clone())
                .collect(),
            images,
            sketches,
            masks,
        })
    }
}
