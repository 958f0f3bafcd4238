//! rosinality `EqualLinear(in, out, bias, bias_init, lr_mul, activation)`: equalised learning
//! rate linear layer. Stored weight `[out, in]` ~ N(0, 1/lr_mul²); runtime weight =
//! stored · lr_mul/√in, runtime bias = stored · lr_mul. With `activation = "fused_lrelu"` the
//! bias goes into the fused leaky ReLU instead of the affine map.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::error::{Result, check_shape};
use crate::layers::Activation;
use crate::ops::fused_leaky_relu;

/// Arguments of rosinality's `EqualLinear`. [`EqualLinearConfig::new`] gives its defaults
/// (bias initialised to 0, `lr_mul` 1, no activation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EqualLinearConfig {
    pub in_dim: usize,
    pub out_dim: usize,
    /// Whether the layer has a `bias` `[out]`.
    pub bias: bool,
    /// Initial value of every bias entry (1 for the style modulations, so styles start at 1).
    pub bias_init: f64,
    /// Learning-rate multiplier (0.01 in the mapping network): scales the runtime weight and
    /// bias, and the stored weight is initialised with std 1/`lr_mul`.
    pub lr_mul: f64,
    pub activation: Activation,
}

impl EqualLinearConfig {
    /// `EqualLinear(in_dim, out_dim)`: biased, linear.
    pub fn new(in_dim: usize, out_dim: usize) -> Self {
        Self {
            in_dim,
            out_dim,
            bias: true,
            bias_init: 0.0,
            lr_mul: 1.0,
            activation: Activation::Linear,
        }
    }

    /// `EqualLinear(in_dim, out_dim, activation="fused_lrelu")`.
    pub fn fused_lrelu(in_dim: usize, out_dim: usize) -> Self {
        Self {
            activation: Activation::FusedLrelu,
            ..Self::new(in_dim, out_dim)
        }
    }

    pub fn with_bias_init(self, bias_init: f64) -> Self {
        Self { bias_init, ..self }
    }

    pub fn with_lr_mul(self, lr_mul: f64) -> Self {
        Self { lr_mul, ..self }
    }

    pub fn without_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }
}

/// Equalised-lr linear layer (`weight`, `bias`).
#[derive(Debug, Clone)]
pub struct EqualLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    scale: f64,
    lr_mul: f64,
    activation: Activation,
    in_dim: usize,
}

impl EqualLinear {
    pub fn new(cfg: &EqualLinearConfig, vb: VarBuilder) -> Result<Self> {
        let &EqualLinearConfig {
            in_dim,
            out_dim,
            bias,
            bias_init,
            lr_mul,
            activation,
        } = cfg;
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
        match self.activation {
            Activation::FusedLrelu => fused_leaky_relu(&out, bias.as_ref()),
            Activation::Linear => match bias {
                Some(b) => Ok(out.broadcast_add(&b)?),
                None => Ok(out),
            },
        }
    }
}
