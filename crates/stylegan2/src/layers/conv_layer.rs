//! rosinality `ConvLayer(in, out, k, downsample, blur_kernel, bias, activate)`, a
//! `nn.Sequential`: with `downsample`, `[Blur, EqualConv2d(stride 2, pad 0), FusedLeakyReLU]`
//! (child indices 0, 1, 2), else `[EqualConv2d(pad k/2), FusedLeakyReLU]` (0, 1). The
//! EqualConv2d has a bias only when there is no activation (the activation carries it).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::{EqualConv2d, FusedLeakyReLU};
use crate::ops::{separable_taps, upfirdn2d_separable};

/// Discriminator convolution block.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// Separable blur taps (2-D kernel sums to 1) and pads, for downsampling layers.
    blur: Option<(Vec<f64>, (i64, i64))>,
    conv: EqualConv2d,
    activate: Option<FusedLeakyReLU>,
}

impl ConvLayer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vb: VarBuilder,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        downsample: bool,
        blur_taps: &[f32],
        bias: bool,
        activate: bool,
    ) -> Result<Self> {
        let mut idx = 0usize;
        let blur = if downsample {
            // rosinality: p = (len − factor) + (k − 1); pads ((p+1)/2, p/2):
            // (2,2) for k=3 (H → H+1), (1,1) for k=1 (H → H−1); then a stride-2 conv → H/2.
            let p = (blur_taps.len() as i64 - 2) + (kernel as i64 - 1);
            idx += 1; // the Blur module occupies index 0 (its `kernel` buffer).
            Some((separable_taps(blur_taps, 1), ((p + 1) / 2, p / 2)))
        } else {
            None
        };
        let (stride, padding) = if downsample { (2, 0) } else { (1, kernel / 2) };
        let conv = EqualConv2d::new(
            vb.pp(idx),
            in_ch,
            out_ch,
            kernel,
            stride,
            padding,
            bias && !activate,
        )?;
        let activate = if activate {
            Some(FusedLeakyReLU::new(vb.pp(idx + 1), out_ch)?)
        } else {
            None
        };
        Ok(Self {
            blur,
            conv,
            activate,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.blur {
            Some((k, pads)) => upfirdn2d_separable(x, k, 1, 1, *pads)?,
            None => x.clone(),
        };
        let out = self.conv.forward(&x)?;
        match &self.activate {
            Some(a) => a.forward(&out),
            None => Ok(out),
        }
    }
}
