//! rosinality `ResBlock(in, out, blur_kernel)`: `conv1` = ConvLayer(in, in, 3), `conv2` =
//! ConvLayer(in, out, 3, downsample), `skip` = ConvLayer(in, out, 1, downsample,
//! activate=False, bias=False); `out = (conv2(conv1(x)) + skip(x)) / √2`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::{ConvLayer, ConvLayerConfig, DEFAULT_BLUR_KERNEL};

/// Arguments of rosinality's `ResBlock`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResBlockConfig {
    pub in_ch: usize,
    pub out_ch: usize,
    /// 1-D blur taps of the downsampling convs.
    pub blur_kernel: Vec<f32>,
}

impl ResBlockConfig {
    /// `ResBlock(in_ch, out_ch)` with the default blur `[1, 3, 3, 1]`.
    pub fn new(in_ch: usize, out_ch: usize) -> Self {
        Self {
            in_ch,
            out_ch,
            blur_kernel: DEFAULT_BLUR_KERNEL.to_vec(),
        }
    }

    pub fn with_blur_kernel(self, blur_kernel: &[f32]) -> Self {
        Self {
            blur_kernel: blur_kernel.to_vec(),
            ..self
        }
    }
}

/// Residual downsampling block of the discriminator.
#[derive(Debug, Clone)]
pub struct ResBlock {
    conv1: ConvLayer,
    conv2: ConvLayer,
    skip: ConvLayer,
}

impl ResBlock {
    pub fn new(cfg: &ResBlockConfig, vb: VarBuilder) -> Result<Self> {
        let (in_ch, out_ch, blur) = (cfg.in_ch, cfg.out_ch, &cfg.blur_kernel);
        Ok(Self {
            conv1: ConvLayer::new(&ConvLayerConfig::new(in_ch, in_ch, 3), vb.pp("conv1"))?,
            conv2: ConvLayer::new(
                &ConvLayerConfig::new(in_ch, out_ch, 3).downsample(blur),
                vb.pp("conv2"),
            )?,
            skip: ConvLayer::new(
                &ConvLayerConfig::new(in_ch, out_ch, 1)
                    .downsample(blur)
                    .linear_without_bias(),
                vb.pp("skip"),
            )?,
        })
    }

    /// `x` `[B, in, H, W]` -> `[B, out, H/2, W/2]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.conv2.forward(&self.conv1.forward(x)?)?;
        let skip = self.skip.forward(x)?;
        Ok(((out + skip)? / std::f64::consts::SQRT_2)?)
    }
}
