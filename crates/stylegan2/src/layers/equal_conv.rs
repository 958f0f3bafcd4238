//! rosinality `EqualConv2d(in, out, k, stride, padding, bias)`: stored weight `[out,in,k,k]`
//! ~ N(0,1), runtime scale 1/√(in·k²); optional `bias` `[out]` (zero-initialised).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};

/// Arguments of rosinality's `EqualConv2d`. [`EqualConv2dConfig::new`] gives its defaults
/// (stride 1, padding 0, with bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EqualConv2dConfig {
    pub in_ch: usize,
    pub out_ch: usize,
    /// Square kernel side.
    pub kernel: usize,
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Whether the conv has a `bias` `[out]`.
    pub bias: bool,
}

impl EqualConv2dConfig {
    /// `EqualConv2d(in_ch, out_ch, kernel)`.
    pub fn new(in_ch: usize, out_ch: usize, kernel: usize) -> Self {
        Self {
            in_ch,
            out_ch,
            kernel,
            stride: 1,
            padding: 0,
            bias: true,
        }
    }
}

/// Equalised-lr 2-D convolution (`weight`, optional `bias`).
#[derive(Debug, Clone)]
pub struct EqualConv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    scale: f64,
    stride: usize,
    padding: usize,
    in_ch: usize,
}

impl EqualConv2d {
    pub fn new(cfg: &EqualConv2dConfig, vb: VarBuilder) -> Result<Self> {
        let &EqualConv2dConfig {
            in_ch,
            out_ch,
            kernel,
            stride,
            padding,
            bias,
        } = cfg;
        let weight = vb.get_with_hints(
            (out_ch, in_ch, kernel, kernel),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(out_ch, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            scale: 1.0 / ((in_ch * kernel * kernel) as f64).sqrt(),
            stride,
            padding,
            in_ch,
        })
    }

    /// `x` `[B, in, H, W]`. Keep H == W at stride 2: candle's conv2d backward derives the
    /// output padding from H only.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_shape(
            x,
            "EqualConv2d input",
            &[None, Some(self.in_ch), None, None],
        )?;
        let w = (&self.weight * self.scale)?;
        let out = x.conv2d(&w, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            // [out] -> [1,out,1,1]
            Some(b) => Ok(out.broadcast_add(&b.reshape((1, (), 1, 1))?)?),
            None => Ok(out),
        }
    }
}
