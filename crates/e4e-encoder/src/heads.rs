//! pSp/e4e head pieces: `GradualStyleBlock` (map2style) and the FPN `_upsample_add`.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use stylegan2::layers::{EqualLinear, EqualLinearConfig};

use crate::error::{E4eError, Result};

/// PyTorch `nn.LeakyReLU()` default slope, used by every pSp/e4e/HyperStyle head conv.
pub const TORCH_LEAKY_SLOPE: f64 = 0.01;

/// A `Conv2d(cin, cout, 3, stride, padding=1)` with bias (the head convs).
pub fn conv3x3(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    Ok(candle_nn::conv2d(cin, cout, 3, cfg, vb)?)
}

/// `nn.Sequential(conv, LeakyReLU, conv, LeakyReLU, ...)`: convs at even indices.
#[derive(Debug, Clone)]
pub struct ConvLeakyStack {
    convs: Vec<Conv2d>,
}

impl ConvLeakyStack {
    /// `layers` = `(cin, cout, stride)` per conv; named `0, 2, 4, ...` under `vb`.
    pub fn new(layers: &[(usize, usize, usize)], vb: VarBuilder) -> Result<Self> {
        let convs = layers
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, s))| conv3x3(cin, cout, s, vb.pp(2 * i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { convs })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for c in &self.convs {
            h = candle_nn::ops::leaky_relu(&c.forward(&h)?, TORCH_LEAKY_SLOPE)?;
        }
        Ok(h)
    }

    pub fn len(&self) -> usize {
        self.convs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }
}

/// pSp `GradualStyleBlock(in_c, out_c, spatial)`: `log2(spatial)` (at least 1) stride-2 3x3
/// convs with bias + LeakyReLU(0.01) (`convs.{0,2,..}`), view `[B, out_c]`, then
/// `EqualLinear(out_c, out_c)` (`linear`).
#[derive(Debug, Clone)]
pub struct GradualStyleBlock {
    convs: ConvLeakyStack,
    linear: EqualLinear,
    out_c: usize,
    spatial: usize,
}

impl GradualStyleBlock {
    pub fn new(in_c: usize, out_c: usize, spatial: usize, vb: VarBuilder) -> Result<Self> {
        if spatial == 0 || !spatial.is_power_of_two() {
            return Err(E4eError::Config(format!(
                "GradualStyleBlock spatial {spatial} must be a power of two"
            )));
        }
        let num_pools = spatial.trailing_zeros() as usize;
        let mut layers = vec![(in_c, out_c, 2)];
        for _ in 1..num_pools {
            layers.push((out_c, out_c, 2));
        }
        Ok(Self {
            convs: ConvLeakyStack::new(&layers, vb.pp("convs"))?,
            linear: EqualLinear::new(&EqualLinearConfig::new(out_c, out_c), vb.pp("linear"))?,
            out_c,
            spatial,
        })
    }

    /// `x` `[B, in_c, spatial, spatial]` -> `[B, out_c]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = x.dims4()?;
        if h != self.spatial || w != self.spatial {
            return Err(E4eError::Shape {
                what: "GradualStyleBlock input".into(),
                expected: format!("[B, C, {0}, {0}]", self.spatial),
                got: x.dims().to_vec(),
            });
        }
        let y = self.convs.forward(x)?.reshape((b, self.out_c))?;
        Ok(self.linear.forward(&y)?)
    }
}

/// Linear interpolation along `dim` with `align_corners=True` (differentiable:
/// `index_select` + weights).
fn resize_axis_align_corners(x: &Tensor, dim: usize, out: usize) -> Result<Tensor> {
    let inp = x.dim(dim)?;
    let dev = x.device();
    let (mut i0, mut i1, mut lam) = (Vec::new(), Vec::new(), Vec::new());
    for o in 0..out {
        let src = if out > 1 {
            o as f64 * (inp as f64 - 1.0) / (out as f64 - 1.0)
        } else {
            0.0
        };
        let a = (src.floor() as usize).min(inp - 1);
        let b = (a + 1).min(inp - 1);
        i0.push(a as u32);
        i1.push(b as u32);
        lam.push((src - a as f64) as f32);
    }
    let a = x.index_select(&Tensor::new(i0, dev)?, dim)?;
    let b = x.index_select(&Tensor::new(i1, dev)?, dim)?;
    let mut shape = vec![1usize; x.rank()];
    shape[dim] = out;
    let lam = Tensor::from_vec(lam, shape, dev)?.to_dtype(x.dtype())?;
    Ok((&a + (b - &a)?.broadcast_mul(&lam)?)?)
}

/// e4e `_upsample_add(x, y)`: `F.interpolate(x, size=y.shape[2:], mode="bilinear",
/// align_corners=True) + y`.
pub fn upsample_add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = y.dims4()?;
    let up = resize_axis_align_corners(&resize_axis_align_corners(x, 3, w)?, 2, h)?;
    Ok((up + y)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn align_corners_upsample_keeps_corners_and_interpolates() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[0f32, 1.0], [2.0, 3.0]]]], &dev).unwrap();
        let z = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let y = upsample_add(&x, &z).unwrap();
        let v: Vec<Vec<f32>> = y.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(
            v,
            vec![
                vec![0.0, 0.5, 1.0],
                vec![1.0, 1.5, 2.0],
                vec![2.0, 2.5, 3.0]
            ]
        );
    }
}
