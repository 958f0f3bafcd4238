//! rosinality `StyledConv(in, out, k, style_dim, upsample, blur_kernel, demodulate=True)`:
//! `conv` (ModulatedConv2d) → `noise` (NoiseInjection) → `activate` (FusedLeakyReLU). Noise is
//! added before the bias and the activation, as in the reference.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::{FusedLeakyReLU, ModulatedConv2d, ModulatedConv2dConfig, NoiseInjection};

/// One synthesis convolution with its noise input and activation.
#[derive(Debug, Clone)]
pub struct StyledConv {
    conv: ModulatedConv2d,
    noise: NoiseInjection,
    activate: FusedLeakyReLU,
}

impl StyledConv {
    /// `cfg` are the arguments of the modulated conv (rosinality passes them through; it is
    /// always demodulated in the generator).
    pub fn new(cfg: &ModulatedConv2dConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: ModulatedConv2d::new(cfg, vb.pp("conv"))?,
            noise: NoiseInjection::new(vb.pp("noise"))?,
            activate: FusedLeakyReLU::new(cfg.out_ch, vb.pp("activate"))?,
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
