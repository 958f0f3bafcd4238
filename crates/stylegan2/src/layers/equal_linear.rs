//! rosinality `EqualLinear(in, out, bias, bias_init, lr_mul, activation)`: equalised learning
//! rate linear layer. Stored weight `[out, in]` ~ N(0, 1/lr_mul²); runtime weight =
//! stored · lr_mul/√in, runtime bias = stored · lr_mul. With `activation = "fused_lrelu"` the
//! bias goes into the fused leaky ReLU instead of the affine map.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};
use crate::ops::fused_leaky_relu;

/// Equalised-lr linear layer (`weight`, `bias`).
#[derive(Debug, Clone)]
pub struct EqualLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    scale: f64,
    lr_mul: f64,
    activation: bool,
    in_dim: usize,
}

impl EqualLinear {
    /// `activation = true` is rosinality's `activation="fused_lrelu"`.
    pub fn new(
        vb: VarBuilder,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        bias_init: f64,
        lr_mul: f64,
        activation: bool,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (out_dim, in_dim),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0 / lr_mul,
            },
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(out_dim, "bias", Init::Const(bias_init))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            scale: lr_mul / (in_dim as f64).sqrt(),
            lr_mul,
            activation,
            in_dim,
        })
    }

    /// `x` `[B, in]` -> `[B, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_shape(x, "EqualLinear input", &[None, Some(self.in_dim)])?;
        // [out, in] -> scaled, transposed view [in, out].
        let w = (&self.weight * self.scale)?.t()?;
        // A W+ slice `[B, S]` has row stride n_latent * S: the CPU gemm takes any stride, but
        // the CUDA matmul needs contiguous rows (a no-op copy-free call when already so).
        let out = x.contiguous()?.matmul(&w)?;
        let bias = match &self.bias {
            Some(b) => Some((b * self.lr_mul)?),
            None => None,
        };
        if self.activation {
            fused_leaky_relu(&out, bias.as_ref())
        } else {
            match bias {
                Some(b) => Ok(out.broadcast_add(&b)?),
                None => Ok(out),
            }
        }
    }
}
