//! Compute kernels of the sketch2medi workspace.
//!
//! [`conv`]: 2-D convolutions whose CPU f32 forward is a blocked im2col + `gemm` and whose input
//! gradient is itself a gemm convolution (candle's own CPU backward of `conv2d` is a direct
//! loop). Drop-in for `Tensor::conv2d` / `Tensor::conv_transpose2d` in models:
//!
//! ```
//! use candle_core::{Device, Tensor};
//! # fn main() -> candle_core::Result<()> {
//! let x = Tensor::ones((1, 3, 8, 8), candle_core::DType::F32, &Device::Cpu)?;
//! let w = Tensor::ones((4, 3, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
//! let y = s2m_kernels::conv::conv2d(&x, &w, 1, 1)?; // padding 1, stride 1
//! assert_eq!(y.dims(), &[1, 4, 8, 8]);
//! # Ok(()) }
//! ```
//!
//! The plain candle ops are the reference: the tests compare values and first- and second-order
//! gradients with them. [`conv::cpu_f32_untracked`] and [`conv::contiguous_f32`] are the helpers
//! other hand-written CPU fast paths (backbones, StyleGAN2) use to decide when they apply and to
//! read their inputs.

pub mod conv;
