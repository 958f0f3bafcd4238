//! rosinality `ResBlock(in, out, blur_kernel)`: `conv1` = ConvLayer(in, in, 3), `conv2` =
//! ConvLayer(in, out, 3, downsample), `skip` = ConvLayer(in, out, 1, downsample,
//! activate=False, bias=False); `out = (conv2(conv1(x)) + skip(x)) / √2`.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::layers::ConvLayer;

/// Residual downsampling block of the discriminator.
#[derive(Debug, Clone)]
pub struct ResBlock {
    conv1: ConvLayer,
    conv2: ConvLayer,
    skip: ConvLayer,
}

impl ResBlock {
    pub fn new(vb: VarBuilder, in_ch: usize, out_ch: usize, blur_taps: &[f32]) -> Result<Self> {
        Ok(Self {
            conv1: ConvLayer::new(
                vb.pp("conv1"),
                in_ch,
                in_ch,
                3,
                false,
                blur_taps,
                true,
                true,
            )?,
            conv2: ConvLayer::new(
                vb.pp("conv2"),
                in_ch,
                out_ch,
                3,
                true,
                blur_taps,
                true,
                true,
            )?,
            skip: ConvLayer::new(
                vb.pp("skip"),
                in_ch,
                out_ch,
                1,
                true,
                blur_taps,
                false,
                false,
            )?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.conv2.forward(&self.conv1.forward(x)?)?;
        let skip = self.skip.forward(x)?;
        Ok(((out + skip)? / std::f64::consts::SQRT_2)?)
    }
}
