//! The latent discriminator D_w and its losses.
//!
//! Mirrors e4e `models/discriminator.py` `LatentCodesDiscriminator(style_dim=512, n_mlp=4)`:
//! `mlp = Sequential(Linear(S, S), LeakyReLU(0.2), Linear(S, S), LeakyReLU(0.2),
//! Linear(S, S), LeakyReLU(0.2), Linear(S, 1))`, plain `nn.Linear` (no equalised lr), keys
//! `mlp.{0,2,4,6}.{weight,bias}`; 788,481 parameters at S = 512.
//!
//! Training (e4e `coach.py`, paper Eq. 3-5): real w = mapping(z) (no truncation), fake w =
//! E(x) + w_avg under no-grad; [`d_loss`] = mean softplus(-D(real)) + mean softplus(D(fake));
//! every `d_reg_every` = 16 steps the lazy R1 term [`r1_loss`] = gamma/2 * R1 * d_reg_every with
//! gamma = 10; E's adversarial term [`g_adv_loss`] = mean softplus(-D(E(x) + w_avg)) weighted
//! by lambda_adv (e4e `--w_discriminator_lambda`, README 0.1). The losses are the `losses`
//! crate's `d_logistic_loss`, `g_nonsaturating_loss` and `r1_penalty`.
//!
//! NOTE: e4e hard-codes the last layer as `Linear(512, 1)`; here it is `Linear(S, 1)` so narrow
//! generators (S = 128) work.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::{E4eError, Result};

/// e4e's R1 weight `--r1` for the latent discriminator.
pub const R1_GAMMA: f64 = 10.0;
/// e4e's `--d_reg_every`.
pub const D_REG_EVERY: usize = 16;
/// The slope of D_w's LeakyReLUs.
pub const LEAKY_SLOPE: f64 = 0.2;

/// Configuration of D_w.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatentDiscriminatorConfig {
    /// Width of every hidden layer and of the input w.
    pub style_dim: usize,
    /// Number of linear layers (e4e: 4 = 3 hidden + output).
    pub n_mlp: usize,
}

impl LatentDiscriminatorConfig {
    /// e4e's `LatentCodesDiscriminator(512, 4)`.
    pub fn e4e() -> Self {
        Self {
            style_dim: 512,
            n_mlp: 4,
        }
    }
    /// Same structure for a generator with `style_dim` (e.g. 128 for `phantom_64`).
    pub fn for_style_dim(style_dim: usize) -> Self {
        Self {
            style_dim,
            n_mlp: 4,
        }
    }
}

/// D_w (see the module docs).
#[derive(Debug, Clone)]
pub struct LatentDiscriminator {
    config: LatentDiscriminatorConfig,
    mlp: Vec<Linear>,
}

impl LatentDiscriminator {
    pub fn new(config: LatentDiscriminatorConfig, vb: VarBuilder) -> Result<Self> {
        if config.style_dim == 0 || config.n_mlp == 0 {
            return Err(E4eError::Config(format!(
                "latent discriminator needs style_dim >= 1 and n_mlp >= 1 (got {config:?})"
            )));
        }
        let s = config.style_dim;
        let vb = vb.pp("mlp");
        let mut mlp = Vec::with_capacity(config.n_mlp);
        for i in 0..config.n_mlp {
            let out = if i + 1 == config.n_mlp { 1 } else { s };
            mlp.push(candle_nn::linear(s, out, vb.pp(2 * i))?);
        }
        Ok(Self { config, mlp })
    }

    /// A fresh D_w with PyTorch's default `nn.Linear` init (kaiming-uniform weights with bound
    /// 1/sqrt(fan_in), uniform biases with the same bound) drawn from a seeded stream.
    pub fn init(
        config: LatentDiscriminatorConfig,
        seed: u64,
        dtype: DType,
        dev: &Device,
    ) -> Result<(Self, VarMap)> {
        let bound = 1.0 / (config.style_dim.max(1) as f64).sqrt();
        crate::init::seeded_var_map(seed, dtype, dev, |vb| {
            // Present every parameter with PyTorch's init before `new` requests them.
            let m = vb.pp("mlp");
            for i in 0..config.n_mlp {
                let out = if i + 1 == config.n_mlp {
                    1
                } else {
                    config.style_dim
                };
                let u = candle_nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                m.pp(2 * i)
                    .get_with_hints((out, config.style_dim), "weight", u)?;
                m.pp(2 * i).get_with_hints(out, "bias", u)?;
            }
            Self::new(config, vb)
        })
    }

    pub fn config(&self) -> &LatentDiscriminatorConfig {
        &self.config
    }

    /// `w` `[B, S]` -> logits `[B, 1]`.
    pub fn forward(&self, w: &Tensor) -> Result<Tensor> {
        if w.rank() != 2 || w.dim(1)? != self.config.style_dim || w.dim(0)? == 0 {
            return Err(E4eError::Shape {
                what: "latent discriminator input".into(),
                expected: format!("[B, {}]", self.config.style_dim),
                got: w.dims().to_vec(),
            });
        }
        let mut h = w.clone();
        let last = self.mlp.len() - 1;
        for (i, l) in self.mlp.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = candle_nn::ops::leaky_relu(&h, LEAKY_SLOPE)?;
            }
        }
        Ok(h)
    }
}

/// D_w's loss on real w = mapping(z) and fake w = E(x) + w_avg (detach the fake first).
pub fn d_loss(d: &LatentDiscriminator, real_w: &Tensor, fake_w: &Tensor) -> Result<Tensor> {
    let real = d.forward(real_w)?;
    let fake = d.forward(fake_w)?;
    Ok(losses::d_logistic_loss(&real, &fake)?)
}

/// E's adversarial term `mean softplus(-D(w))` on its codes (for W+ codes `[B, n, S]` the mean
/// over the active slots, as e4e does).
pub fn g_adv_loss(d: &LatentDiscriminator, w: &Tensor) -> Result<Tensor> {
    let flat = match w.rank() {
        2 => w.clone(),
        3 => w.flatten_to(1)?,
        _ => {
            return Err(E4eError::Shape {
                what: "codes for the adversarial loss".into(),
                expected: "[B, S] or [B, n, S]".into(),
                got: w.dims().to_vec(),
            });
        }
    };
    Ok(losses::g_nonsaturating_loss(&d.forward(&flat)?)?)
}

/// The lazy R1 term `gamma / 2 * R1 * d_reg_every` with R1 = mean_b ||dD/dw||^2 at real w
/// (e4e: gamma = [`R1_GAMMA`], d_reg_every = [`D_REG_EVERY`]). Needs
/// `CANDLE_GRAD_DO_NOT_DETACH=1` (checked by `losses::r1_penalty`).
pub fn r1_loss(
    d: &LatentDiscriminator,
    real_w: &Tensor,
    gamma: f64,
    d_reg_every: usize,
) -> Result<Tensor> {
    let r1 = losses::r1_penalty(
        |x: &Tensor| {
            d.forward(x)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        },
        real_w,
    )?;
    Ok((r1.penalty * (gamma / 2.0 * d_reg_every as f64))?)
}
