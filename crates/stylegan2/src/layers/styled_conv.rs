//! rosinality `StyledConv(in, out, k, style_dim, upsample, blur_kernel, demodulate=True)`:
//! `conv` (ModulatedConv2d) → `noise` (NoiseInjection) → `activate` (FusedLeakyReLU). Noise is
//! added before the bias and the activation, as in the reference.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::{FusedLeakyReLU, ModulatedConv2d, NoiseInjection};

/// One synthesis convolution with its noise input and activation.
#[derive(Debug, Clone)]
pub struct StyledConv {
    conv: ModulatedConv2d,
    noise: NoiseInjection,
    activate: FusedLeakyReLU,
}

impl StyledConv {
    pub fn new(
        vb: VarBuilder,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        style_dim: usize,
        upsample: bool,
        blur_taps: &[f32],
    ) -> Result<Self> {
        Ok(Self {
            conv: ModulatedConv2d::new(
                vb.pp("conv"),
                in_ch,
                out_ch,
                kernel,
                style_dim,
                true,
                upsample,
                blur_taps,
            )?,
            noise: NoiseInjection::new(vb.pp("noise"))?,
            activate: FusedLeakyReLU::new(vb.pp("activate"), out_ch)?,
        })
    }

    pub fn conv(&self) -> &ModulatedConv2d {
        &self.conv
    }

    pub fn forward(
        &self,
        x: &Tensor,
        style: &Tensor,
        noise: Option<&Tensor>,
        offset: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = self.conv.forward(x, style, offset)?;
        let (nw, bias) = (self.noise.weight(), self.activate.bias());
        if crate::fast::applies(&[&out, nw, bias])
            && noise.is_none_or(|n| crate::fast::applies(&[n]))
        {
            // Inference on the CPU: noise, bias, leaky ReLU and gain in one pass.
            return crate::fast::noise_bias_lrelu(&out, noise.map(|n| (n, nw)), bias);
        }
        let out = self.noise.forward(&out, noise)?;
        self.activate.forward(&out)
    }
}
