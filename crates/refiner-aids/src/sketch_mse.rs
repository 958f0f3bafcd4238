//! The sketch-weighted MSE: the squared error on the pixels the sketch draws (NOTE: not in
//! HyperStyle or the paper).

use candle_core::Tensor;
use hyperstyle_refiner::Result;

/// Where the sketch has ink, dilated by one pixel (3 x 3 maximum) and resized (nearest) to
/// `size`: `[B, 1, size, size]` in [0, 1] from sketches `[B, 1, n, n]` in [-1, 1] (ink -1).
pub fn sketch_stroke_mask(sketch: &Tensor, size: usize) -> Result<Tensor> {
    let ink = ((1.0 - sketch.detach())? * 0.5)?.clamp(0f32, 1f32)?;
    let padded = ink.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let dilated = padded.max_pool2d_with_stride(3, 1)?;
    let (_, _, h, w) = dilated.dims4()?;
    Ok(if h == size && w == size {
        dilated
    } else {
        dilated.upsample_nearest2d(size, size)?
    })
}

/// Sketch-weighted MSE: Σ m ⊙ (ŷ − y)² / (C · Σ m), the squared error on the pixels the
/// sketch draws (`mask` from [`sketch_stroke_mask`], broadcast over the C channels). 0 for a
/// blank sketch. It weighs the drawn contours (small structures such as the uvula and the
/// tonsils included), where MSE over the whole image is dominated by the colour of the large
/// areas. Tried on the phantom (docs/ENCODER_REFINER.md, "Fine-tuning experiments"), it made H
/// blur those structures more, not less: an MSE on uncertain edges rewards blur.
pub fn sketch_weighted_mse(image: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let c = image.dim(1)? as f64;
    let sq = (image - target)?.sqr()?;
    let num = sq.broadcast_mul(mask)?.sum_all()?;
    let den = ((mask.sum_all()? * c)? + 1e-6)?;
    Ok(num.div(&den)?)
}
