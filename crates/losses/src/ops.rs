//! Differentiable building blocks the perceptual networks share and candle 0.11.1 lacks:
//! reflection padding, ST-LPIPS's BlurPool, LPIPS's channel unit-normalisation, the LPIPS
//! ScalingLayer. All are made of ops with a backward
//! (`index_select`, `conv2d`, elementwise), so they differentiate (also to second order).

use candle_core::{D, DType, Tensor};

use crate::error::{LossError, Result};

/// `torch.nn.ReflectionPad2d(p)` on a `[B, C, H, W]` tensor (mirror without repeating the edge:
/// `[2, 1 | 0, 1, 2, 3 | 2, 1]` for p = 2). PyTorch requires `p < H` and `p < W`; so does this.
pub fn reflect_pad2d(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let (_, _, h, w) = x.dims4()?;
    if p >= h || p >= w {
        return Err(LossError::Shape {
            what: format!(
                "reflection pad {p}: the feature map is too small (the input image is too small for this network)"
            ),
            expected: format!("H, W > {p}"),
            got: x.dims().to_vec(),
        });
    }
    let idx = |n: usize| -> Vec<u32> {
        let n = n as i64;
        (-(p as i64)..n + p as i64)
            .map(|i| {
                let r = if i < 0 {
                    -i
                } else if i >= n {
                    2 * (n - 1) - i
                } else {
                    i
                };
                r as u32
            })
            .collect()
    };
    let dev = x.device();
    let y = x.index_select(&Tensor::new(idx(w), dev)?, 3)?;
    Ok(y.index_select(&Tensor::new(idx(h), dev)?, 2)?)
}

/// ST-LPIPS `Downsample(filt_size=3, stride=2, pad_more=True)` (antialiased-cnns BlurPool):
/// reflection pad 2 on every side, then a depthwise 3x3 filter with stride 2 and no padding.
///
/// `filt` is the module's `filt` buffer `[C, 1, 3, 3]` (the binomial `[1,2,1] x [1,2,1] / 16` in every
/// channel). When all channels hold the same filter (always, for the shipped weights) the
/// depthwise conv runs as one groups=1 conv on a `[B*C, 1, H, W]` reshape (candle's grouped conv
/// is a per-group loop); otherwise as a grouped conv.
pub fn blur_pool(x: &Tensor, filt: &BlurFilter) -> Result<Tensor> {
    let (b, c, _, _) = x.dims4()?;
    let xp = reflect_pad2d(x, 2)?;
    let (_, _, hp, wp) = xp.dims4()?;
    match filt {
        BlurFilter::Shared(k) => {
            let y = xp.reshape((b * c, 1, hp, wp))?.conv2d(k, 0, 2, 1, 1)?;
            let (_, _, ho, wo) = y.dims4()?;
            Ok(y.reshape((b, c, ho, wo))?)
        }
        BlurFilter::PerChannel(k) => Ok(xp.conv2d(k, 0, 2, 1, c)?),
    }
}

/// The filter of a [`blur_pool`], analysed once at construction.
#[derive(Debug, Clone)]
pub enum BlurFilter {
    /// One `[1, 1, k, k]` filter used by every channel.
    Shared(Tensor),
    /// Distinct `[C, 1, k, k]` filters.
    PerChannel(Tensor),
}

impl BlurFilter {
    /// Inspects a `[C, 1, k, k]` depthwise filter bank.
    pub fn new(filt: &Tensor) -> Result<Self> {
        let (c, one, kh, kw) = filt.dims4()?;
        if one != 1 {
            return Err(LossError::Shape {
                what: "BlurPool filter".into(),
                expected: "[C, 1, k, k]".into(),
                got: filt.dims().to_vec(),
            });
        }
        let v = filt.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let k = kh * kw;
        let shared = (1..c).all(|ch| v[ch * k..(ch + 1) * k] == v[..k]);
        Ok(if shared {
            BlurFilter::Shared(filt.narrow(0, 0, 1)?.contiguous()?)
        } else {
            BlurFilter::PerChannel(filt.clone())
        })
    }
}

/// LPIPS `normalize_tensor`: `f / (sqrt(sum_c f^2) + 1e-10)` over the channel dim of `[B,C,H,W]`.
///
/// NOTE: the square root is taken of `sum_c f^2 + 1e-20`. In f32 this equals the reference
/// whenever the sum exceeds ~1e-13 (always, except for all-zero feature vectors, where both give
/// 0), but it keeps the gradient finite at an all-zero vector (post-ReLU features are often
/// zero): the reference's `sqrt` backward gives 0 * inf = NaN there, which PyTorch's ReLU
/// backward happens to mask and candle's (a multiplication) would not.
pub fn normalize_channels(f: &Tensor) -> Result<Tensor> {
    let n = (f.sqr()?.sum_keepdim(1)? + 1e-20)?.sqrt()?;
    Ok(f.broadcast_div(&(n + 1e-10)?)?)
}

/// The LPIPS v0.1 `ScalingLayer`: `(x - shift) / scale` per channel, with `shift` and `scale` of
/// shape `[1, 3, 1, 1]`.
pub fn scale_input(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_sub(shift)?.broadcast_div(scale)?)
}

/// The LPIPS v0.1 ScalingLayer constants (`lpips/lpips.py` `ScalingLayer`): shift
/// [-0.030, -0.088, -0.188], scale [0.458, 0.448, 0.450] (as float32, like the registered buffers).
pub fn lpips_scaling(device: &candle_core::Device, dtype: DType) -> Result<(Tensor, Tensor)> {
    let shift = Tensor::new(&[-0.030f32, -0.088, -0.188], device)?
        .reshape((1, 3, 1, 1))?
        .to_dtype(dtype)?;
    let scale = Tensor::new(&[0.458f32, 0.448, 0.450], device)?
        .reshape((1, 3, 1, 1))?
        .to_dtype(dtype)?;
    Ok((shift, scale))
}

/// Mean over the spatial dims of `[B, C, H, W]` -> `[B, C]`.
pub fn spatial_mean(x: &Tensor) -> Result<Tensor> {
    Ok(x.mean(D::Minus1)?.mean(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reflect_pad_matches_pytorch_layout() {
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = x.broadcast_as((1, 1, 3, 4)).unwrap().contiguous().unwrap();
        let y = reflect_pad2d(&x, 2).unwrap();
        assert_eq!(y.dims(), &[1, 1, 7, 8]);
        let row = y.get(0).unwrap().get(0).unwrap().get(0).unwrap();
        assert_eq!(
            row.to_vec1::<f32>().unwrap(),
            vec![2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0, 1.0]
        );
        let small = Tensor::zeros((1, 1, 2, 5), DType::F32, &Device::Cpu).unwrap();
        assert!(reflect_pad2d(&small, 2).is_err());
    }
}
