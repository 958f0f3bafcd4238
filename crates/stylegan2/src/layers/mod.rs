//! Building blocks of rosinality's `model.py`, one struct per module, loaded with rosinality's
//! parameter names through `candle_nn::VarBuilder` (`vb.pp("...")` mirrors the module path).
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

pub use constant_input::ConstantInput;
pub use conv_layer::ConvLayer;
pub use equal_conv::EqualConv2d;
pub use equal_linear::EqualLinear;
pub use fused_lrelu::FusedLeakyReLU;
pub use modconv::{ModulatedConv2d, per_sample_conv_im2col};
pub use noise::NoiseInjection;
pub use pixel_norm::PixelNorm;
pub use res_block::ResBlock;
pub use styled_conv::StyledConv;
pub use to_rgb::ToRgb;
