//! Building blocks of rosinality's `model.py`, one struct per module, loaded with rosinality's
//! parameter names through `candle_nn::VarBuilder` (`vb.pp("...")` mirrors the module path).
//!
//! Every constructor takes its config first and the `VarBuilder` last, `new(&cfg, vb)`; the
//! configs' `new` gives rosinality's keyword defaults, so a call reads like the reference:
//!
//! ```
//! # use candle_core::{DType, Device};
//! # use candle_nn::{VarBuilder, VarMap};
//! use stylegan2::layers::{EqualLinear, EqualLinearConfig, ModulatedConv2d, ModulatedConv2dConfig};
//! # let vm = VarMap::new();
//! # let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
//! // EqualLinear(512, 512, lr_mul=0.01, activation="fused_lrelu")
//! let mlp = EqualLinear::new(
//!     &EqualLinearConfig::fused_lrelu(512, 512).with_lr_mul(0.01),
//!     vb.pp("style.1"),
//! )?;
//! // ModulatedConv2d(512, 512, 3, 512, upsample=True, blur_kernel=[1, 3, 3, 1])
//! let conv = ModulatedConv2d::new(
//!     &ModulatedConv2dConfig::new(512, 512, 3, 512).upsample(&[1.0, 3.0, 3.0, 1.0]),
//!     vb.pp("convs.0.conv"),
//! )?;
//! # Ok::<(), stylegan2::StyleGan2Error>(())
//! ```
//!
//! Layers whose forward is a function of one tensor also implement [`candle_core::Module`]
//! (their inherent `forward` returns the crate's typed error, the trait's a candle error).
//!
//! Blur/upsample kernels are registered *buffers* in rosinality; here they are recomputed from
//! the config as separable 1-D taps (the kernel is an outer product, and the separable FIR is
//! much faster in candle), so a `VarMap` never turns them into trainable variables; the loader
//! checks that a checkpoint's buffers hold the same values.

mod constant_input;
mod conv_layer;
mod equal_conv;
mod equal_linear;
mod fused_lrelu;
mod modconv;
mod noise;
mod pixel_norm;
mod res_block;
mod styled_conv;
mod to_rgb;

use crate::error::StyleGan2Error;

pub use constant_input::ConstantInput;
pub use conv_layer::{ConvLayer, ConvLayerConfig};
pub use equal_conv::{EqualConv2d, EqualConv2dConfig};
pub use equal_linear::{EqualLinear, EqualLinearConfig};
pub use fused_lrelu::FusedLeakyReLU;
pub use modconv::{ModulatedConv2d, ModulatedConv2dConfig, per_sample_conv_im2col};
pub use noise::NoiseInjection;
pub use pixel_norm::PixelNorm;
pub use res_block::{ResBlock, ResBlockConfig};
pub use styled_conv::StyledConv;
pub use to_rgb::{ToRgb, ToRgbConfig};

/// rosinality's default `blur_kernel=[1, 3, 3, 1]` (the 1-D taps of the 4×4 binomial blur).
pub const DEFAULT_BLUR_KERNEL: [f32; 4] = [1.0, 3.0, 3.0, 1.0];

/// Resampling of a layer by a factor of 2 (rosinality's `upsample` / `downsample` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resample {
    /// Same resolution.
    #[default]
    None,
    /// ×2: transposed conv + blur (modulated convs), blur-upsampled skip (ToRGB).
    Up,
    /// ÷2: blur + stride-2 conv (discriminator convs).
    Down,
}

/// Activation after an affine map (rosinality `activation=None` / `"fused_lrelu"`,
/// `activate=False` / `True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation; the bias (if any) is added by the layer itself.
    #[default]
    Linear,
    /// `leaky_relu(x + bias, 0.2) · √2` ([`crate::ops::fused_leaky_relu`]); the bias goes into
    /// the activation.
    FusedLrelu,
}

/// Error for a resampling direction a layer does not implement.
fn unsupported_resample(layer: &str, resample: Resample) -> StyleGan2Error {
    StyleGan2Error::Config(format!("{layer} does not support resample {resample:?}"))
}

/// A crate error as a candle error, for the [`candle_core::Module`] impls (candle errors pass
/// through unchanged).
pub(crate) fn into_candle_error(e: StyleGan2Error) -> candle_core::Error {
    match e {
        StyleGan2Error::Candle(e) => e,
        e => candle_core::Error::wrap(e),
    }
}

/// `impl candle_core::Module` through the type's inherent `forward(&self, &Tensor)`.
macro_rules! impl_module {
    ($($t:ty),* $(,)?) => {$(
        impl candle_core::Module for $t {
            fn forward(&self, xs: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
                <$t>::forward(self, xs).map_err($crate::layers::into_candle_error)
            }
        }
    )*};
}
pub(crate) use impl_module;

impl_module!(
    PixelNorm,
    EqualLinear,
    EqualConv2d,
    FusedLeakyReLU,
    ConvLayer,
    ResBlock,
);

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Module};
    use candle_nn::{VarBuilder, VarMap};
    use s2m_core::testing::randn;

    use super::*;

    fn same(a: &candle_core::Tensor, b: &candle_core::Tensor) -> bool {
        let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        a == b
    }

    /// `Module::forward` is the inherent forward; a shape error keeps its message.
    #[test]
    fn module_forward_is_the_inherent_forward() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let lin = EqualLinear::new(
            &EqualLinearConfig::fused_lrelu(6, 4).with_lr_mul(0.5),
            vb.pp("lin"),
        )
        .unwrap();
        let x = randn(&[3, 6], 1);
        assert!(same(
            &Module::forward(&lin, &x).unwrap(),
            &lin.forward(&x).unwrap()
        ));
        let err = Module::forward(&lin, &randn(&[3, 5], 2)).unwrap_err();
        assert!(err.to_string().contains("EqualLinear input"), "{err}");

        let block = ResBlock::new(&ResBlockConfig::new(2, 3), vb.pp("block")).unwrap();
        let x = randn(&[2, 2, 8, 8], 3);
        let y = Module::forward(&block, &x).unwrap();
        assert_eq!(y.dims(), &[2, 3, 4, 4]);
        assert!(same(&y, &block.forward(&x).unwrap()));
    }

    /// The configs' defaults are rosinality's keyword defaults.
    #[test]
    fn configs_default_to_the_reference_arguments() {
        let l = EqualLinearConfig::new(3, 4);
        assert!(l.bias && l.bias_init == 0.0 && l.lr_mul == 1.0);
        assert_eq!(l.activation, Activation::Linear);
        let m = ModulatedConv2dConfig::new(3, 4, 3, 8);
        assert!(m.demodulate);
        assert_eq!(m.resample, Resample::None);
        assert_eq!(m.blur_kernel, DEFAULT_BLUR_KERNEL);
        let c = ConvLayerConfig::new(3, 4, 3);
        assert!(c.bias);
        assert_eq!(c.activation, Activation::FusedLrelu);
        let e = EqualConv2dConfig::new(3, 4, 3);
        assert!(e.bias && e.stride == 1 && e.padding == 0);
    }

    #[test]
    fn unsupported_resampling_is_refused() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let modconv = ModulatedConv2dConfig {
            resample: Resample::Down,
            ..ModulatedConv2dConfig::new(2, 2, 3, 4)
        };
        assert!(ModulatedConv2d::new(&modconv, vb.pp("a")).is_err());
        let conv = ConvLayerConfig {
            resample: Resample::Up,
            ..ConvLayerConfig::new(2, 2, 3)
        };
        assert!(ConvLayer::new(&conv, vb.pp("b")).is_err());
        let rgb = ToRgbConfig {
            resample: Resample::Down,
            ..ToRgbConfig::new(2, 4)
        };
        assert!(ToRgb::new(&rgb, vb.pp("c")).is_err());
    }
}
