//! The region colour loss on the targets' label maps (NOTE: not in HyperStyle or the paper).

use candle_core::{DType, Tensor};
use hyperstyle_refiner::Result;
use s2m_train::TrainError;

/// The region loss: for every structure (class) `c` of each target's label map, the squared
/// distance between the mean colours of `image` and `target` over the region of class `c`
/// (`label / 16 == c`, background excluded), averaged over the colour channels and over the
/// (sample, class) pairs present. `image`, `target` `[B, 3, H, W]`, `labels` `[B, H, W]` u8
/// (`class_id * 16 + instance`). Insensitive to blurred edges or detail inside a region, it
/// grows when a structure fades into its surroundings. Zero when no structure is labelled.
/// (Training builds [`RegionWeights`] once per batch and calls [`RegionWeights::loss`] at every
/// iteration.)
pub fn region_colour_loss(image: &Tensor, target: &Tensor, labels: &Tensor) -> Result<Tensor> {
    RegionWeights::new(labels)?.loss(image, target)
}

/// The label maps of a batch turned into per-structure averaging weights, for
/// [`region_colour_loss`]: `[B, K, H, W]` = (region of the k-th class present in the batch) /
/// (its area), 0 where the sample lacks that class.
#[derive(Debug, Clone)]
pub struct RegionWeights {
    weights: Tensor,
    /// (sample, class) pairs present.
    count: usize,
}

impl RegionWeights {
    /// From label maps `[B, H, W]` u8 (`class_id * 16 + instance`, 0 = background).
    pub fn new(labels: &Tensor) -> Result<Self> {
        let (b, h, w) = labels.dims3().map_err(|_| {
            TrainError::Data(format!(
                "label maps have shape {:?}, expected [B, H, W]",
                labels.dims()
            ))
        })?;
        let classes = (labels.to_dtype(DType::F32)? / 16.0)?.floor()?;
        let mut present = classes.flatten_all()?.to_vec1::<f32>()?;
        present.sort_by(f32::total_cmp);
        present.dedup();
        let regions = present
            .into_iter()
            .filter(|&c| c > 0.0)
            .map(|c| classes.eq(c)?.to_dtype(DType::F32))
            .collect::<candle_core::Result<Vec<_>>>()?;
        if regions.is_empty() {
            let weights = Tensor::zeros((b, 0, h, w), DType::F32, labels.device())?;
            return Ok(Self { weights, count: 0 });
        }
        let regions = Tensor::stack(&regions, 1)?; // [B, K, H, W]
        let area = regions.sum_keepdim((2, 3))?; // [B, K, 1, 1]
        let count = area
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .filter(|&&a| a > 0.0)
            .count();
        let weights = regions.broadcast_div(&area.clamp(1f32, f32::MAX)?)?;
        Ok(Self { weights, count })
    }

    /// [`region_colour_loss`] of `image` against `target` (both `[B, 3, H, W]`).
    pub fn loss(&self, image: &Tensor, target: &Tensor) -> Result<Tensor> {
        let (b, k, h, w) = self.weights.dims4()?;
        let (ib, _, ih, iw) = image.dims4()?;
        if (ib, ih, iw) != (b, h, w) {
            return Err(TrainError::Data(format!(
                "label maps have shape {:?}, the images need [{ib}, {ih}, {iw}]",
                [b, h, w]
            ))
            .into());
        }
        if self.count == 0 || k == 0 {
            return Ok(Tensor::zeros((), DType::F32, image.device())?);
        }
        // Mean colour difference per (sample, class, channel): [B, K, 3]; 0 where absent.
        let mean = (image - target)?
            .unsqueeze(1)?
            .broadcast_mul(&self.weights.unsqueeze(2)?)?
            .sum((3, 4))?;
        Ok((mean.sqr()?.sum_all()? / (3 * self.count) as f64)?)
    }
}
