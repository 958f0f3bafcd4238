//! rosinality `ConvLayer(in, out, k, downsample, blur_kernel, bias, activate)`, a
//! `nn.Sequential`: with `downsample`, `[Blur, EqualConv2d(stride 2, pad 0), FusedLeakyReLU]`
//! (child indices 0, 1, 2), else `[EqualConv2d(pad k/2), FusedLeakyReLU]` (0, 1). The
//! EqualConv2d has a bias only when there is no activation (the activation carries it).

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::{
    Activation, DEFAULT_BLUR_KERNEL, EqualConv2d, EqualConv2dConfig, FusedLeakyReLU, Resample,
    unsupported_resample,
};
use crate::ops::{separable_taps, upfirdn2d_separable};

/// Arguments of rosinality's `ConvLayer`. [`ConvLayerConfig::new`] gives its defaults (no
/// resampling, blur `[1, 3, 3, 1]`, with bias, fused leaky ReLU).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayerConfig {
    pub in_ch: usize,
    pub out_ch: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// [`Resample::None`] or [`Resample::Down`] (blur, then a stride-2 conv).
    pub resample: Resample,
    /// 1-D blur taps used when downsampling.
    pub blur_kernel: Vec<f32>,
    /// Whether the linear layer has a bias (an activation always carries its own bias).
    pub bias: bool,
    pub activation: Activation,
}

impl ConvLayerConfig {
    /// `ConvLayer(in_ch, out_ch, kernel)`.
    pub fn new(in_ch: usize, out_ch: usize, kernel: usize) -> Self {
        Self {
            in_ch,
            out_ch,
            kernel,
            resample: Resample::None,
            blur_kernel: DEFAULT_BLUR_KERNEL.to_vec(),
            bias: true,
            activation: Activation::FusedLrelu,
        }
    }

    /// `downsample=True, blur_kernel=blur_kernel`.
    pub fn downsample(self, blur_kernel: &[f32]) -> Self {
        Self {
            resample: Resample::Down,
            blur_kernel: blur_kernel.to_vec(),
            ..self
        }
    }

    /// `activate=False, bias=False`: a bare (optionally downsampling) convolution.
    pub fn linear_without_bias(self) -> Self {
        Self {
            bias: false,
            activation: Activation::Linear,
            ..self
        }
    }
}

/// Discriminator convolution block.
#[derive(Debug, Clone)]
pub struct ConvLayer {
    /// Separable blur taps (2-D kernel sums to 1) and pads, for downsampling layers.
    blur: Option<(Vec<f64>, (i64, i64))>,
    conv: EqualConv2d,
    activate: Option<FusedLeakyReLU>,
}

impl ConvLayer {
    pub fn new(cfg: &ConvLayerConfig, vb: VarBuilder) -> Result<Self> {
        let kernel = cfg.kernel;
        let mut idx = 0usize;
        let blur = match cfg.resample {
            Resample::None => None,
            Resample::Down => {
                // rosinality: p = (len − factor) + (k − 1); pads ((p+1)/2, p/2):
                // (2,2) for k=3 (H → H+1), (1,1) for k=1 (H → H−1); then a stride-2 conv → H/2.
                let p = (cfg.blur_kernel.len() as i64 - 2) + (kernel as i64 - 1);
                idx += 1; // the Blur module occupies index 0 (its `kernel` buffer).
                Some((separable_taps(&cfg.blur_kernel, 1), ((p + 1) / 2, p / 2)))
            }
            Resample::Up => return Err(unsupported_resample("ConvLayer", cfg.resample)),
        };
        let activate = cfg.activation == Activation::FusedLrelu;
        let (stride, padding) = if blur.is_some() {
            (2, 0)
        } else {
            (1, kernel / 2)
        };
        let conv = EqualConv2d::new(
            &EqualConv2dConfig {
                stride,
                padding,
                bias: cfg.bias && !activate,
                ..EqualConv2dConfig::new(cfg.in_ch, cfg.out_ch, kernel)
            },
            vb.pp(idx),
        )?;
        let activate = if activate {
            Some(FusedLeakyReLU::new(cfg.out_ch, vb.pp(idx + 1))?)
        } else {
            None
        };
        Ok(Self {
            blur,
            conv,
            activate,
        })
    }

    /// `x` `[B, in, H, W]` -> `[B, out, H', W']` (H' = H/2 when downsampling).
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
