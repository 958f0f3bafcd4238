//! rosinality `ToRGB(in, style_dim, upsample=True)`: `conv` = ModulatedConv2d(in, 3, 1,
//! demodulate=False), `bias` `[1,3,1,1]`; the previous skip image is upsampled ×2
//! (`upsample.kernel` buffer, upfirdn2d up=2, pads (2,1)) and added.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};
use crate::layers::ModulatedConv2d;
use crate::ops::{separable_taps, upfirdn2d_separable};

/// Projects features to RGB and accumulates the skip image.
#[derive(Debug, Clone)]
pub struct ToRgb {
    conv: ModulatedConv2d,
    bias: Tensor,
    /// Separable ×2 upsampling taps for the skip input (absent for `to_rgb1`).
    upsample: Option<Vec<f64>>,
}

impl ToRgb {
    pub fn new(
        vb: VarBuilder,
        in_ch: usize,
        style_dim: usize,
        upsample: bool,
        blur_taps: &[f32],
    ) -> Result<Self> {
        let upsample = if upsample {
            Some(separable_taps(blur_taps, 2))
        } else {
            None
        };
        Ok(Self {
            conv: ModulatedConv2d::new(
                vb.pp("conv"),
                in_ch,
                3,
                1,
                style_dim,
                false,
                false,
                blur_taps,
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
