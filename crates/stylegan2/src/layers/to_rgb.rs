//! rosinality `ToRGB(in, style_dim, upsample=True)`: `conv` = ModulatedConv2d(in, 3, 1,
//! demodulate=False), `bias` `[1,3,1,1]`; the previous skip image is upsampled ×2
//! (`upsample.kernel` buffer, upfirdn2d up=2, pads (2,1)) and added.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};
use crate::layers::{
    DEFAULT_BLUR_KERNEL, ModulatedConv2d, ModulatedConv2dConfig, Resample, unsupported_resample,
};
use crate::ops::{separable_taps, upfirdn2d_separable};

/// Arguments of rosinality's `ToRGB`. [`ToRgbConfig::new`] gives a layer without a skip
/// input (`to_rgb1`, rosinality `upsample=False`); [`ToRgbConfig::upsample`] the others.
#[derive(Debug, Clone, PartialEq)]
pub struct ToRgbConfig {
    pub in_ch: usize,
    /// Dimension S of the style input.
    pub style_dim: usize,
    /// [`Resample::Up`]: the previous resolution's RGB image is upsampled ×2 and added.
    pub resample: Resample,
    /// 1-D blur taps of the skip upsampling.
    pub blur_kernel: Vec<f32>,
}

impl ToRgbConfig {
    /// `ToRGB(in_ch, style_dim, upsample=False)`.
    pub fn new(in_ch: usize, style_dim: usize) -> Self {
        Self {
            in_ch,
            style_dim,
            resample: Resample::None,
            blur_kernel: DEFAULT_BLUR_KERNEL.to_vec(),
        }
    }

    /// `upsample=True, blur_kernel=blur_kernel`.
    pub fn upsample(self, blur_kernel: &[f32]) -> Self {
        Self {
            resample: Resample::Up,
            blur_kernel: blur_kernel.to_vec(),
            ..self
        }
    }
}

/// Projects features to RGB and accumulates the skip image.
#[derive(Debug, Clone)]
pub struct ToRgb {
    conv: ModulatedConv2d,
    bias: Tensor,
    /// Separable ×2 upsampling taps for the skip input (absent for `to_rgb1`).
    upsample: Option<Vec<f64>>,
}

impl ToRgb {
    pub fn new(cfg: &ToRgbConfig, vb: VarBuilder) -> Result<Self> {
        let upsample = match cfg.resample {
            Resample::None => None,
            Resample::Up => Some(separable_taps(&cfg.blur_kernel, 2)),
            Resample::Down => return Err(unsupported_resample("ToRGB", cfg.resample)),
        };
        Ok(Self {
            conv: ModulatedConv2d::new(
                &ModulatedConv2dConfig::new(cfg.in_ch, 3, 1, cfg.style_dim).without_demodulation(),
                vb.pp("conv"),
            )?,
            bias: vb.get_with_hints((1, 3, 1, 1), "bias", Init::Const(0.0))?,
            upsample,
        })
    }

    pub fn conv(&self) -> &ModulatedConv2d {
        &self.conv
    }

    /// `skip` is the RGB image of the previous resolution `[B,3,H/2,W/2]` (required exactly
    /// when this layer upsamples).
    pub fn forward(
        &self,
        x: &Tensor,
        style: &Tensor,
        skip: Option<&Tensor>,
        offset: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = self
            .conv
            .forward(x, style, offset)?
            .broadcast_add(&self.bias)?;
        match (skip, &self.upsample) {
            (Some(skip), Some(k)) => {
                let (b, _, h, w) = out.dims4()?;
                check_shape(
                    skip,
                    "ToRGB skip",
                    &[Some(b), Some(3), Some(h / 2), Some(w / 2)],
                )?;
                // rosinality Upsample: p = len − factor = 2 → pads ((p+1)/2 + 1, p/2) = (2, 1).
                Ok((out + upfirdn2d_separable(skip, k, 2, 1, (2, 1))?)?)
            }
            (Some(skip), None) => Ok((out + skip)?),
            (None, _) => Ok(out),
        }
    }
}
