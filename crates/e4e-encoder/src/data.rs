//! The training data of both phases of Sketch2MedI (phase 1: E + D_w in [`crate::train`];
//! phase 2: H in `hyperstyle_refiner::train`): (image, sketch) pairs, their checks, the fixed
//! validation pairs and the sample strips drawn from them. The loop itself is
//! `s2m_train::run`.
//!
//! - [`PairDataset`]: (image, sketch) pairs; the CLI adapts the phantom loader, tests use
//!   [`TensorPairs`].
//! - [`impl_train_loop!`](crate::impl_train_loop): the `s2m_train::run::TrainLoop` of a
//!   trainer on pairs.

use std::path::Path;

use candle_core::{Device, Tensor};
use s2m_core::imageio::{image_grid, save_png, tensor_to_rgb_batch};
use s2m_train::{TrainError, TrainResult};

/// One batch of training pairs.
#[derive(Debug, Clone)]
pub struct Pairs {
    /// Targets `[B, 3, H, W]` in [-1, 1] (H = the generator's size).
    pub images: Tensor,
    /// Sketches `[B, 1, n, n]` in [-1, 1] (dark strokes near -1 on white near 1; n = the
    /// encoder's / hypernetwork's input size).
    pub sketches: Tensor,
    /// Label maps `[B, H, W]` `u8` of the targets (`class_id * 16 + instance`, 0 =
    /// background; the phantom's masks), when the dataset provides them and they were asked
    /// for (the refiner's region loss).
    pub masks: Option<Tensor>,
}

/// (image, sketch) pairs for training E and H.
pub trait PairDataset: Sync {
    /// Number of pairs.
    fn len(&self) -> usize;
    /// True when there is no pair.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The pairs at `indices` on `device`.
    fn load(&self, indices: &[usize], device: &Device) -> TrainResult<Pairs>;
    /// The pairs at `indices` for training step `step` (0-based). Datasets that augment on the
    /// fly draw from a stream of the step, so a resumed run sees the same pairs; the default
    /// is [`Self::load`].
    fn load_for_step(&self, step: u64, indices: &[usize], device: &Device) -> TrainResult<Pairs> {
        let _ = step;
        self.load(indices, device)
    }
    /// What the data is (folder, split, count, size), recorded in the exports.
    fn description(&self) -> String {
        format!("{} pairs", self.len())
    }
    /// Where the sketches come from (ground-truth contours, the SOLOv2 synthesizer S, ...),
    /// recorded in the exports.
    fn sketch_source(&self) -> String {
        "unspecified".into()
    }
}

/// Pairs held in memory (tests, small experiments).
#[derive(Debug, Clone)]
pub struct TensorPairs {
    /// `[N, 3, H, W]`.
    pub images: Tensor,
    /// `[N, 1, n, n]`.
    pub sketches: Tensor,
    /// `[N, H, W]` `u8` label maps, if any (see [`Pairs::masks`]).
    pub masks: Option<Tensor>,
    pub description: String,
}

impl PairDataset for TensorPairs {
    fn len(&self) -> usize {
        self.images.dim(0).unwrap_or(0)
    }
    fn load(&self, indices: &[usize], device: &Device) -> TrainResult<Pairs> {
        let ids: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids.as_slice(), self.images.device())?;
        let pick = |t: &Tensor| -> TrainResult<Tensor> {
            Ok(t.contiguous()?.index_select(&ids, 0)?.to_device(device)?)
        };
        Ok(Pairs {
            images: pick(&self.images)?,
            sketches: pick(&self.sketches)?,
            masks: self.masks.as_ref().map(pick).transpose()?,
        })
    }
    fn description(&self) -> String {
        self.description.clone()
    }
}

/// Checks a batch against the sizes the models need; the error names both shapes.
pub fn check_pairs(pairs: &Pairs, image_size: usize, sketch_size: usize) -> TrainResult<()> {
    let i = pairs.images.dims();
    let s = pairs.sketches.dims();
    if i.len() != 4 || i[1] != 3 || i[2] != image_size || i[3] != image_size {
        return Err(TrainError::Data(format!(
            "images have shape {i:?}, the generator needs [B, 3, {image_size}, {image_size}]"
        )));
    }
    if s.len() != 4 || s[1] != 1 || s[2] != sketch_size || s[3] != sketch_size {
        return Err(TrainError::Data(format!(
            "sketches have shape {s:?}, the networks need [B, 1, {sketch_size}, {sketch_size}] \
             (one grey channel)"
        )));
    }
    if let Some(m) = &pairs.masks {
        let m = m.dims();
        if m.len() != 3 || m[0] != i[0] || m[1] != image_size || m[2] != image_size {
            return Err(TrainError::Data(format!(
                "masks have shape {m:?}, the images need [{}, {image_size}, {image_size}]",
                i[0]
            )));
        }
    }
    if i[0] != s[0] || i[0] == 0 {
        return Err(TrainError::Data(format!(
            "{} images but {} sketches in one batch",
            i[0], s[0]
        )));
    }
    Ok(())
}

/// The first `n` pairs of `data` (the fixed validation pairs of the sample strips), checked.
pub fn load_validation(
    data: &dyn PairDataset,
    n: usize,
    device: &Device,
    image_size: usize,
    sketch_size: usize,
) -> TrainResult<Pairs> {
    let n = n.min(data.len());
    if n == 0 {
        return Err(TrainError::Data("the validation data is empty".into()));
    }
    let pairs = data.load(&(0..n).collect::<Vec<_>>(), device)?;
    check_pairs(&pairs, image_size, sketch_size)?;
    Ok(pairs)
}

/// A sample strip: one row per sample, one column per tensor of `columns` (each `[B, C, h, w]`
/// with C = 1 or 3, values in [-1, 1]; resized bilinearly to the first column's size).
pub fn write_strip(path: &Path, columns: &[Tensor]) -> TrainResult<()> {
    let Some(first) = columns.first() else {
        return Ok(());
    };
    let (b, _, h, w) = first.dims4()?;
    let mut per_column = Vec::with_capacity(columns.len());
    for c in columns {
        let (cb, ch, ih, iw) = c.dims4()?;
        if cb != b || !(ch == 1 || ch == 3) {
            return Err(TrainError::Data(format!(
                "sample strip column of shape {:?} does not fit [{b}, 1 or 3, H, W]",
                c.dims()
            )));
        }
        let rgb = if ch == 1 {
            Tensor::cat(&[c, c, c], 1)?
        } else {
            c.clone()
        };
        let rgb = if (ih, iw) != (h, w) {
            backbones::ops::resize_bilinear(&rgb, h, w).map_err(crate::E4eError::from)?
        } else {
            rgb
        };
        per_column.push(tensor_to_rgb_batch(&rgb.clamp(-1f32, 1f32)?)?);
    }
    let mut tiles = Vec::with_capacity(b * columns.len());
    for row in 0..b {
        for col in &per_column {
            tiles.push(col[row].clone());
        }
    }
    let grid = image_grid(&tiles, columns.len(), 2)?;
    save_png(path, &grid)?;
    Ok(())
}

/// Implements [`s2m_train::run::TrainLoop`] for a trainer with the fields `step`, `out`,
/// `cfg.schedule` (an [`s2m_train::Schedule`]), `val`, `data_description`, `sketch_source` and
/// the inherent methods `set_validation`, `train_step`, `save_checkpoint`, `write_samples`, `write_loss_plot` (the
/// two phases' trainers share this shape).
#[macro_export]
macro_rules! impl_train_loop {
    ($trainer:ty, $stats:ty, $error:ty) => {
        impl<'d> s2m_train::run::TrainLoop<'d> for $trainer {
            type Stats = $stats;
            type Error = $error;
            type Data = dyn $crate::data::PairDataset + 'd;
            fn step(&self) -> u64 {
                self.step
            }
            fn out_dir(&self) -> &std::path::Path {
                &self.out
            }
            fn schedule(&self) -> (u64, u64) {
                (
                    self.cfg.schedule.checkpoint_every,
                    self.cfg.schedule.sample_every,
                )
            }
            fn prepare(
                &mut self,
                data: &(dyn $crate::data::PairDataset + 'd),
            ) -> std::result::Result<(), $error> {
                self.data_description = data.description();
                self.sketch_source = data.sketch_source();
                if self.val.is_none() {
                    self.set_validation(data)?;
                }
                Ok(())
            }
            fn train_step(
                &mut self,
                data: &(dyn $crate::data::PairDataset + 'd),
            ) -> std::result::Result<$stats, $error> {
                <$trainer>::train_step(self, data)
            }
            fn save_checkpoint(&self) -> std::result::Result<std::path::PathBuf, $error> {
                <$trainer>::save_checkpoint(self)
            }
            fn write_samples(&self, path: &std::path::Path) -> std::result::Result<(), $error> {
                <$trainer>::write_samples(self, path)
            }
            fn write_loss_plot(&self) -> std::result::Result<(), $error> {
                <$trainer>::write_loss_plot(self)
            }
        }
    };
}
