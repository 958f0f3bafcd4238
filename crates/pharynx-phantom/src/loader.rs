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

use crate::layout::{self, Layout, Split};
use crate::manifest::{MANIFEST_KIND, Manifest};
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use s2m_core::rng::{derive_seed, seeded_permutation};
use s2m_core::{CoreError, LabelMap, imageio};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Stream id of the epoch shuffles in [`derive_seed`].
const SHUFFLE_STREAM: u64 = 0x5EED;

pub use s2m_core::imageio::IMAGE_EXTENSIONS;

/// Errors of the dataset loader. Each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("not a complete dataset folder (no manifest.json): {root}")]
    NotADataset { root: PathBuf },
    #[error("cannot parse {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("missing {kind} for image {image}: expected {expected}")]
    Missing {
        kind: &'static str,
        image: PathBuf,
        expected: PathBuf,
    },
    #[error("{what} requested but {source_name} has none")]
    Unavailable {
        what: &'static str,
        source_name: String,
    },
    #[error("duplicate id `{id}` in {first} and {second}")]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path} is {}x{}, expected {}x{}", got.0, got.1, expected.0, expected.1)]
    WrongSize {
        path: PathBuf,
        /// (width, height)
        expected: (u32, u32),
        /// (width, height)
        got: (u32, u32),
    },
    #[error("{path} declares image size {declared}, but the loader config asks for {requested}")]
    SizeMismatch {
        path: PathBuf,
        declared: u32,
        requested: u32,
    },
    #[error("empty dataset: {0} has no items")]
    Empty(String),
    #[error("invalid loader config: batch_size must be at least 1")]
    ZeroBatchSize,
    #[error("resize_to must be at least 1 pixel")]
    ZeroResize,
    #[error("item index {index} out of range for {len} items")]
    Index { index: usize, len: usize },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of the loader.
pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

/// One item of a source: its id (the file stem) and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    pub sketch: Option<PathBuf>,
}

/// Where items come from: a phantom dataset split or a folder of images.
#[derive(Debug, Clone)]
pub struct DatasetSource {
    items: Vec<Item>,
    /// Human-readable name for errors ("split `train` of /data/x").
    name: String,
    manifest: Option<(PathBuf, Manifest)>,
    has_masks: bool,
    has_sketches: bool,
}

impl DatasetSource {
    /// The items of one split of a dataset folder written by the phantom generator.
    ///
    /// Requires `manifest.json` (written last, so its absence means an interrupted export) and
    /// `splits/<split>.txt`. Sketches come from `Layout::split_sketch` (the `freehand/` folder for
    /// the free-hand split). File existence is checked by [`Loader::new`] for the files it needs.
    pub fn phantom(root: impl AsRef<Path>, split: Split) -> Result<Self> {
        let layout = Layout::new(root.as_ref());
        let manifest = read_manifest(&layout)?;
        let split_path = layout.split(split);
        let ids =
            layout::read_split_list(&split_path).map_err(|e| CoreError::io(&split_path, e))?;
        let items = ids
            .into_iter()
            .map(|id| Item {
                image: layout.image(&id),
                mask: Some(layout.mask(&id)),
                sketch: Some(layout.split_sketch(split, &id)),
                id,
            })
            .collect();
        Ok(Self {
            items,
            name: format!("split `{}` of {}", split.name(), layout.root.display()),
            manifest: Some((layout.manifest(), manifest)),
            has_masks: true,
            has_sketches: true,
        })
    }

    /// The same items with their sketches taken from `dir/<id>.png` instead (for example the
    /// sketches that the SOLOv2 synthesizer S drew with `sketch2medi solov2 sketches`). Missing
    /// files are reported by [`Loader::new`] like any other missing sketch.
    pub fn with_sketches_from(mut self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        for item in &mut self.items {
            item.sketch = Some(dir.join(format!("{}.png", item.id)));
        }
        self.has_sketches = true;
        self.name = format!("{} (sketches from {})", self.name, dir.display());
        self
    }

    /// The `*.png`, `*.jpg` and `*.jpeg` files of `images_dir` (sorted by file name; hidden
    /// files skipped), each with the file of the same stem in `masks_dir` and `sketches_dir` when
    /// those are given. A missing mask or sketch is an error naming the image and the expected
    /// file; so are two images with the same stem.
    pub fn image_folder(
        images_dir: impl AsRef<Path>,
        masks_dir: Option<&Path>,
        sketches_dir: Option<&Path>,
    ) -> Result<Self> {
        let images_dir = images_dir.as_ref();
        let images = images_by_stem(images_dir)?;
        let masks = masks_dir.map(images_by_stem).transpose()?;
        let sketches = sketches_dir.map(images_by_stem).transpose()?;
        // Finds the companion file of `id` or reports the file it expected.
        let companion = |files: &Option<BTreeMap<String, PathBuf>>,
                         dir: Option<&Path>,
                         kind: &'static str,
                         id: &str,
                         image: &Path|
         -> Result<Option<PathBuf>> {
            match (files, dir) {
                (Some(files), Some(dir)) => match files.get(id) {
                    Some(p) => Ok(Some(p.clone())),
                    None => Err(LoaderError::Missing {
                        kind,
                        image: image.to_path_buf(),
                        expected: dir.join(format!("{id}.png")),
                    }),
                },
                _ => Ok(None),
            }
        };
        let items = images
            .into_iter()
            .map(|(id, image)| {
                let mask = companion(&masks, masks_dir, "mask", &id, &image)?;
                let sketch = companion(&sketches, sketches_dir, "sketch", &id, &image)?;
                Ok(Item {
                    id,
                    image,
                    mask,
                    sketch,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            items,
            name: format!("image folder {}", images_dir.display()),
            manifest: None,
            has_masks: masks_dir.is_some(),
            has_sketches: sketches_dir.is_some(),
        })
    }

    /// The items, in source order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The manifest of a phantom dataset folder (`None` for an image folder).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref().map(|(_, m)| m)
    }

    /// A human-readable name of the source, as used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads and checks `manifest.json` of a dataset folder.
fn read_manifest(layout: &Layout) -> Result<Manifest> {
    let path = layout.manifest();
    if !path.is_file() {
        return Err(LoaderError::NotADataset {
            root: layout.root.clone(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| LoaderError::Manifest {
        message: describe_json_error(&text, &e),
        path: path.clone(),
    })?;
    if manifest.kind != MANIFEST_KIND {
        return Err(LoaderError::Manifest {
            path,
            message: format!(
                "field `kind` is {:?}, expected {MANIFEST_KIND:?}",
                manifest.kind
            ),
        });
    }
    Ok(manifest)
}

/// A serde_json error with the field it happened in. serde names the field for missing fields
/// but only gives a line and column for type errors, so the nearest key before the error
/// position is added (good enough to point a reader at the right line of a manifest).
fn describe_json_error(text: &str, err: &serde_json::Error) -> String {
    let message = err.to_string();
    if message.contains("missing field") || err.line() == 0 {
        return message;
    }
    let line = text.lines().nth(err.line() - 1).unwrap_or("");
    let prefix: String = line.chars().take(err.column()).collect();
    // Earlier lines count too: a value may start on the line after its key.
    let before: String = text
        .lines()
        .take(err.line() - 1)
        .chain(std::iter::once(prefix.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    match last_key(&before) {
        Some(key) => format!("field `{key}`: {message}"),
        None => message,
    }
}

/// The last `"key":` in a JSON prefix.
fn last_key(prefix: &str) -> Option<String> {
    let bytes = prefix.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] != b':' {
            continue;
        }
        let before = prefix[..i].trim_end();
        if let Some(inner) = before.strip_suffix('"')
            && let Some(start) = inner.rfind('"')
        {
            return Some(inner[start + 1..].to_string());
        }
    }
    None
}

/// The images of a folder by stem (see [`DatasetSource::image_folder`]).
fn images_by_stem(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut by_stem = BTreeMap::new();
    for path in imageio::list_images(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Hidden files are editor/OS litter (e.g. macOS `._x.png`) or unfinished atomic writes.
        if name.starts_with('.') {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(first) = by_stem.get(&stem) {
            return Err(LoaderError::DuplicateId {
                id: stem,
                first: PathBuf::clone(first),
                second: path,
            });
        }
        by_stem.insert(stem, path);
    }
    Ok(by_stem)
}

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

/// The decoded files of one item, before stacking into a batch.
struct Decoded {
    image: Vec<f32>,
    sketch: Option<Vec<f32>>,
    mask: Option<Vec<u8>>,
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
            .map(|&i| self.decode(&self.source.items[i]))
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

    /// Decodes and checks the files of one item.
    fn decode(&self, item: &Item) -> Result<Decoded> {
        use image::imageops::{FilterType, resize};
        let target = self.config.resize_to.filter(|&s| (s, s) != self.size);
        let mut image = imageio::load_rgb(&item.image)?;
        self.check_size(&item.image, image.dimensions())?;
        if let Some(s) = target {
            image = resize(&image, s, s, FilterType::Triangle);
        }
        let sketch = match (&item.sketch, self.config.load_sketches) {
            (Some(path), true) => {
                let mut g = imageio::load_gray(path)?;
                self.check_size(path, g.dimensions())?;
                if let Some(s) = target {
                    g = resize(&g, s, s, FilterType::Triangle);
                }
                Some(imageio::gray_to_vec(&g))
            }
            _ => None,
        };
        let mask = match (&item.mask, self.config.load_masks) {
            (Some(path), true) => {
                let mut g = imageio::load_gray(path)?;
                self.check_size(path, g.dimensions())?;
                let labels = LabelMap::from_gray(g, &path.display().to_string())?;
                g = labels.as_gray().clone();
                if let Some(s) = target {
                    g = resize(&g, s, s, FilterType::Nearest);
                }
                Some(g.into_raw())
            }
            _ => None,
        };
        Ok(Decoded {
            image: imageio::rgb_to_chw(&image),
            sketch,
            mask,
        })
    }

    fn check_size(&self, path: &Path, got: (u32, u32)) -> Result<()> {
        if got != self.size {
            return Err(LoaderError::WrongSize {
                path: path.to_path_buf(),
                expected: self.size,
                got,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::GENERATOR_VERSION;
    use candle_core::DType;
    use image::{GrayImage, Luma, Rgb, RgbImage};
    use s2m_core::imageio::save_png;

    const S: u32 = 32;
    /// A valid label: tonsil (class 3), instance 1.
    const TONSIL_1: u8 = 3 * 16 + 1;

    /// Image `i`: pixel (0, 0) = [i, 255, 0], pixel (1, 0) = [255 - i, 128, 1], rest gray.
    fn test_image(i: usize) -> RgbImage {
        let mut img = RgbImage::from_pixel(S, S, Rgb([100, 100, 100]));
        img.put_pixel(0, 0, Rgb([i as u8, 255, 0]));
        img.put_pixel(1, 0, Rgb([255 - i as u8, 128, 1]));
        img
    }

    fn test_mask() -> GrayImage {
        GrayImage::from_fn(S, S, |x, _| Luma([if x < 4 { TONSIL_1 } else { 0 }]))
    }

    fn test_sketch() -> GrayImage {
        GrayImage::from_fn(S, S, |x, _| Luma([if x == 5 { 0 } else { 255 }]))
    }

    fn test_manifest(n: usize) -> Manifest {
        Manifest {
            kind: MANIFEST_KIND.to_string(),
            generator_version: GENERATOR_VERSION.to_string(),
            seed: 1,
            scale: 0.001,
            size: S,
            sketch_stroke_width: 1.5,
            counts: [("train".to_string(), n)].into_iter().collect(),
            classes: [
                (1, "uvula"),
                (2, "pharyngeal wall"),
                (3, "tonsil"),
                (4, "tongue"),
            ]
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
            mask_encoding: "class_id * 16 + instance".to_string(),
            freehand_styles: vec!["steady".to_string()],
            command: "test".to_string(),
        }
    }

    /// A phantom dataset folder with `n` train items.
    fn write_phantom(root: &Path, n: usize) {
        let layout = Layout::new(root);
        for dir in [
            layout::IMAGES,
            layout::MASKS,
            layout::SKETCHES,
            layout::SPLITS,
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let ids: Vec<String> = (0..n).map(layout::train_id).collect();
        for (i, id) in ids.iter().enumerate() {
            save_png(layout.image(id), &test_image(i)).unwrap();
            save_png(layout.mask(id), &test_mask()).unwrap();
            save_png(layout.sketch(id), &test_sketch()).unwrap();
        }
        std::fs::write(layout.split(Split::Train), ids.join("\n") + "\n").unwrap();
        let json = serde_json::to_string_pretty(&test_manifest(n)).unwrap();
        std::fs::write(layout.manifest(), json).unwrap();
    }

    /// A plain folder `images/` of `n` images named `img_<i>.png`.
    fn write_folder(root: &Path, n: usize) -> PathBuf {
        let dir = root.join("images");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            save_png(dir.join(format!("img_{i:02}.png")), &test_image(i)).unwrap();
        }
        dir
    }

    fn config(batch_size: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size,
            ..LoaderConfig::default()
        }
    }

    fn unit(x: u8) -> f32 {
        x as f32 / 127.5 - 1.0
    }

    #[test]
    fn phantom_batches_have_shapes_and_exact_values() {
        let dir = tempfile::tempdir().unwrap();
        write_phantom(dir.path(), 5);
        let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        assert_eq!(source.manifest().map(|m| m.size), Some(S));
        let cfg = LoaderConfig {
            load_masks: true,
            load_sketches: true,
            ..config(2)
        };
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        assert_eq!((loader.len(), loader.num_batches()), (5, 3));
        let batches: Vec<Batch> = loader.epoch(0).collect::<Result<_>>().unwrap();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].ids, vec!["000004".to_string()]);

        let b = &batches[0];
        assert_eq!(b.ids, vec!["000000".to_string(), "000001".to_string()]);
        assert_eq!(b.images.dims(), &[2, 3, 32, 32]);
        assert_eq!(b.images.dtype(), DType::F32);
        let v = b.images.get(1).unwrap().to_vec3::<f32>().unwrap(); // [3, H, W] of item 1
        assert_eq!([v[0][0][0], v[1][0][0], v[2][0][0]], [unit(1), 1.0, -1.0]);
        assert_eq!(
            [v[0][0][1], v[1][0][1], v[2][0][1]],
            [unit(254), unit(128), unit(1)]
        );
        assert_eq!(v[1][5][5], unit(100));
        let all = b.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(all.iter().all(|x| (-1.0..=1.0).contains(x)));

        let sk = b.sketches.as_ref().unwrap();
        assert_eq!(sk.dims(), &[2, 1, 32, 32]);
        let s = sk.get(0).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!((s[3][5], s[3][6]), (-1.0, 1.0));

        let m = b.masks.as_ref().unwrap();
        assert_eq!(m.dims(), &[2, 32, 32]);
        assert_eq!(m.dtype(), DType::U8);
        let m = m.get(1).unwrap().to_vec2::<u8>().unwrap();
        assert_eq!((m[7][3], m[7][4]), (TONSIL_1, 0));
    }

    #[test]
    fn sketches_from_another_folder_replace_the_datasets_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_phantom(dir.path(), 3);
        let other = dir.path().join("s_sketches");
        std::fs::create_dir_all(&other).unwrap();
        // The other folder's sketches have their stroke in column 9 instead of 5.
        let stroke9 = GrayImage::from_fn(S, S, |x, _| Luma([if x == 9 { 0 } else { 255 }]));
        for id in ["000000", "000001"] {
            save_png(other.join(format!("{id}.png")), &stroke9).unwrap();
        }
        let cfg = LoaderConfig {
            load_sketches: true,
            ..config(2)
        };
        let source = DatasetSource::phantom(dir.path(), Split::Train)
            .unwrap()
            .with_sketches_from(&other);
        assert!(source.name().contains("s_sketches"));
        let err = Loader::new(source.clone(), cfg.clone(), &Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("000002.png"), "{err}");

        save_png(other.join("000002.png"), &stroke9).unwrap();
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        let b = loader.batch(&[0, 2]).unwrap();
        let sk = b.sketches.unwrap();
        for i in 0..2 {
            let s = sk.get(i).unwrap().get(0).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!((s[3][5], s[3][9]), (1.0, -1.0));
        }
        // The images are still the dataset's.
        let v = b.images.get(1).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(v[0][0][0], unit(2));
    }

    #[test]
    fn shuffles_are_seeded_per_epoch_and_cover_every_item() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_folder(dir.path(), 10);
        let source = DatasetSource::image_folder(&images, None, None).unwrap();
        let cfg = LoaderConfig {
            shuffle_seed: Some(7),
            ..config(3)
        };
        let loader = Loader::new(source.clone(), cfg.clone(), &Device::Cpu).unwrap();
        let again = Loader::new(source.clone(), cfg, &Device::Cpu).unwrap();
        let e0 = loader.epoch_order(0);
        assert_eq!(e0, again.epoch_order(0));
        assert_ne!(e0, loader.epoch_order(1));
        assert_ne!(e0, (0..10).collect::<Vec<_>>());
        // The batches follow the order, and one epoch visits every item exactly once.
        let ids: Vec<String> = loader.epoch(1).flat_map(|b| b.unwrap().ids).collect();
        let expected: Vec<String> = loader
            .epoch_order(1)
            .iter()
            .map(|&i| source.items()[i].id.clone())
            .collect();
        assert_eq!(ids, expected);
        let mut sorted = ids.clone();
        sorted.sort();
        let all: Vec<String> = (0..10).map(|i| format!("img_{i:02}")).collect();
        assert_eq!(sorted, all);
        // Without a seed every epoch is in source (file name) order.
        let plain = Loader::new(source, config(4), &Device::Cpu).unwrap();
        assert_eq!(plain.epoch_order(3), (0..10).collect::<Vec<_>>());
        let first = plain.epoch(3).next().unwrap().unwrap();
        assert_eq!(first.ids[..2], all[..2]);
    }

    #[test]
    fn drop_last_drops_only_the_short_batch() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_folder(dir.path(), 5);
        let source = DatasetSource::image_folder(&images, None, None).unwrap();
        let cfg = LoaderConfig {
            drop_last: true,
            shuffle_seed: Some(1),
            ..config(2)
        };
        let loader = Loader::new(source.clone(), cfg, &Device::Cpu).unwrap();
        assert_eq!(loader.num_batches(), 2);
        let sizes: Vec<usize> = loader
            .epoch(0)
            .map(|b| b.unwrap().images.dim(0).unwrap())
            .collect();
        assert_eq!(sizes, vec![2, 2]);
        let keep = Loader::new(source.clone(), config(2), &Device::Cpu).unwrap();
        let sizes: Vec<usize> = keep.epoch(0).map(|b| b.unwrap().len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        // A batch larger than the source: one short batch, or none with drop_last.
        let big = LoaderConfig {
            drop_last: true,
            ..config(8)
        };
        assert_eq!(
            Loader::new(source, big, &Device::Cpu)
                .unwrap()
                .epoch(0)
                .count(),
            0
        );
    }

    #[test]
    fn image_folder_pairs_masks_and_sketches_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_folder(dir.path(), 3);
        // A JPEG is listed too; hidden files and other extensions are not.
        save_png(images.join(".hidden.png"), &test_image(0)).unwrap();
        std::fs::write(images.join("notes.txt"), "x").unwrap();
        let jpg = images.join("zz.jpg");
        test_image(9).save(&jpg).unwrap();
        let masks = dir.path().join("masks");
        let sketches = dir.path().join("sketches");
        std::fs::create_dir_all(&masks).unwrap();
        std::fs::create_dir_all(&sketches).unwrap();
        for stem in ["img_00", "img_01", "img_02", "zz"] {
            save_png(masks.join(format!("{stem}.png")), &test_mask()).unwrap();
            save_png(sketches.join(format!("{stem}.png")), &test_sketch()).unwrap();
        }
        let source = DatasetSource::image_folder(&images, Some(&masks), Some(&sketches)).unwrap();
        let ids: Vec<&str> = source.items().iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["img_00", "img_01", "img_02", "zz"]);
        assert_eq!(source.items()[3].mask, Some(masks.join("zz.png")));
        let cfg = LoaderConfig {
            load_masks: true,
            load_sketches: true,
            size: Some(S),
            ..config(4)
        };
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        let b = loader.epoch(0).next().unwrap().unwrap();
        assert_eq!(b.images.dims(), &[4, 3, 32, 32]);
        assert_eq!(b.masks.unwrap().dims(), &[4, 32, 32]);

        // A missing mask names the image and the expected mask file.
        std::fs::remove_file(masks.join("img_01.png")).unwrap();
        let err = DatasetSource::image_folder(&images, Some(&masks), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("img_01.png") && err.contains("mask"), "{err}");
        // Asking for masks a folder source does not have is an error too.
        let plain = DatasetSource::image_folder(&images, None, None).unwrap();
        let cfg = LoaderConfig {
            load_masks: true,
            ..config(2)
        };
        let err = Loader::new(plain, cfg, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("masks"), "{err}");
    }

    #[test]
    fn freehand_split_reads_the_freehand_sketches() {
        let dir = tempfile::tempdir().unwrap();
        write_phantom(dir.path(), 1);
        std::fs::write(dir.path().join("splits/freehand.txt"), "ref000000\n").unwrap();
        let source = DatasetSource::phantom(dir.path(), Split::Freehand).unwrap();
        let sketch = source.items()[0].sketch.clone().unwrap();
        assert_eq!(sketch, dir.path().join("freehand").join("ref000000.png"));
    }

    #[test]
    fn corrupt_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_folder(dir.path(), 3);
        std::fs::write(images.join("img_01.png"), b"garbage, not a png").unwrap();
        let source = DatasetSource::image_folder(&images, None, None).unwrap();
        let loader = Loader::new(source, config(3), &Device::Cpu).unwrap();
        let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
        assert!(err.contains("img_01.png"), "{err}");
    }

    #[test]
    fn wrong_size_names_file_and_both_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_folder(dir.path(), 3);
        save_png(images.join("img_02.png"), &RgbImage::new(32, 24)).unwrap();
        let source = DatasetSource::image_folder(&images, None, None).unwrap();
        let loader = Loader::new(source.clone(), config(3), &Device::Cpu).unwrap();
        assert_eq!(loader.image_size(), (32, 32));
        let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("img_02.png") && err.contains("32x24") && err.contains("32x32"),
            "{err}"
        );
        // An explicit size is checked against every file.
        let cfg = LoaderConfig {
            size: Some(64),
            ..config(1)
        };
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
        assert!(err.contains("img_00.png") && err.contains("64x64"), "{err}");
    }

    #[test]
    fn invalid_label_names_the_mask() {
        let dir = tempfile::tempdir().unwrap();
        write_phantom(dir.path(), 2);
        let bad = Layout::new(dir.path()).mask("000001");
        save_png(&bad, &GrayImage::from_pixel(S, S, Luma([200]))).unwrap();
        let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        let cfg = LoaderConfig {
            load_masks: true,
            ..config(2)
        };
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        let err = loader.epoch(0).next().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("masks") && err.contains("000001.png") && err.contains("200"),
            "{err}"
        );
    }

    #[test]
    fn dataset_folder_errors() {
        let dir = tempfile::tempdir().unwrap();
        // No manifest: an interrupted or foreign folder.
        let err = DatasetSource::phantom(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no manifest.json") && err.contains(&*dir.path().to_string_lossy()),
            "{err}"
        );

        write_phantom(dir.path(), 2);
        let manifest = Layout::new(dir.path()).manifest();
        // A type error names the field.
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("\"size\": 32", "\"size\": \"big\"")).unwrap();
        let err = DatasetSource::phantom(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("manifest.json") && err.contains("`size`"),
            "{err}"
        );
        // So does a missing field.
        std::fs::write(&manifest, text.replace("\"size\": 32,", "")).unwrap();
        let err = DatasetSource::phantom(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`size`"), "{err}");
        std::fs::write(&manifest, &text).unwrap();

        // A missing file is found before any decoding.
        std::fs::remove_file(Layout::new(dir.path()).sketch("000001")).unwrap();
        let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        let cfg = LoaderConfig {
            load_sketches: true,
            ..config(2)
        };
        let err = Loader::new(source.clone(), cfg, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sketches") && err.contains("000001.png"),
            "{err}"
        );
        // A size other than the manifest's is rejected up front.
        let cfg = LoaderConfig {
            size: Some(64),
            ..config(2)
        };
        let err = Loader::new(source.clone(), cfg, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("manifest.json") && err.contains("32") && err.contains("64"),
            "{err}"
        );
        // Zero batch size and an empty split.
        assert!(matches!(
            Loader::new(source, config(0), &Device::Cpu),
            Err(LoaderError::ZeroBatchSize)
        ));
        std::fs::write(Layout::new(dir.path()).split(Split::Train), "\n").unwrap();
        let empty = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        let err = Loader::new(empty, config(2), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty") && err.contains("train"), "{err}");
        // A missing split list names the file.
        let err = DatasetSource::phantom(dir.path(), Split::SegVal)
            .unwrap_err()
            .to_string();
        assert!(err.contains("seg_val.txt"), "{err}");
    }

    #[test]
    fn resize_to_shrinks_images_sketches_and_masks() {
        let dir = tempfile::tempdir().unwrap();
        write_phantom(dir.path(), 3);
        let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        let cfg = LoaderConfig {
            load_masks: true,
            load_sketches: true,
            resize_to: Some(S / 2),
            ..config(3)
        };
        let loader = Loader::new(source, cfg, &Device::Cpu).unwrap();
        assert_eq!(loader.output_size(), (S / 2, S / 2));
        let b = loader.batch(&[0, 1, 2]).unwrap();
        assert_eq!(b.images.dims(), &[3, 3, (S / 2) as usize, (S / 2) as usize]);
        assert_eq!(
            b.sketches.unwrap().dims(),
            &[3, 1, (S / 2) as usize, (S / 2) as usize]
        );
        // Nearest-neighbour masks hold only labels present in the originals.
        let masks: Vec<u8> = b.masks.unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(
            masks
                .iter()
                .all(|&v| v == 0 || s2m_core::anatomy::decode_label(v).is_some())
        );
        let source = DatasetSource::phantom(dir.path(), Split::Train).unwrap();
        let zero = LoaderConfig {
            resize_to: Some(0),
            ..config(1)
        };
        assert!(matches!(
            Loader::new(source, zero, &Device::Cpu),
            Err(LoaderError::ZeroResize)
        ));
    }
}
