//! Latent bookkeeping of rosinality's `Generator.forward`: the mapping network z -> w
//! (`style.*`), the mean latent and truncation towards it, style mixing at `inject_index`, and
//! the broadcast of one w to all `n_latent` W+ entries.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use s2m_core::rng::{Rng, randn_vec};

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_finite, check_shape};
use crate::generator::{Generator, GeneratorInput};
use crate::layers::{EqualLinear, EqualLinearConfig, PixelNorm};

/// rosinality `style` = `nn.Sequential(PixelNorm, EqualLinear × n_mlp)`: z `[B,S]` → w `[B,S]`.
#[derive(Debug, Clone)]
pub struct MappingNetwork {
    layers: Vec<EqualLinear>,
    style_dim: usize,
}

impl MappingNetwork {
    /// `vb` is the mapping network's root (`style`); the layers are `style.1 … style.n_mlp`
    /// (`style.0` is the parameter-free PixelNorm).
    pub fn new(cfg: &StyleGan2Config, vb: VarBuilder) -> Result<Self> {
        let s = cfg.style_dim;
        let layer = EqualLinearConfig::fused_lrelu(s, s).with_lr_mul(cfg.lr_mlp);
        let layers = (1..=cfg.n_mlp)
            .map(|i| EqualLinear::new(&layer, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            style_dim: s,
        })
    }

    /// z `[B,S]` -> w `[B,S]`.
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        check_shape(z, "z", &[None, Some(self.style_dim)])?;
        let mut x = PixelNorm.forward(z)?;
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        Ok(x)
    }
}

crate::layers::impl_module!(MappingNetwork);

/// The latent input of [`Generator::forward`].
#[derive(Debug, Clone)]
pub enum Latents {
    /// One or two z `[B,S]` (two = style mixing), mapped through the mapping network.
    Z(Vec<Tensor>),
    /// One or two w `[B,S]` (rosinality `input_is_latent=True` with 2-D styles).
    W(Vec<Tensor>),
    /// W+ `[B, n_latent, S]`, used as is.
    WPlus(Tensor),
}

/// Draws a style-mixing crossover uniformly in `1..=n_latent-1` (rosinality
/// `random.randint(1, n_latent - 1)`).
pub fn random_inject_index(rng: &mut Rng, n_latent: usize) -> usize {
    use rand::Rng as _;
    rng.random_range(1..n_latent.max(2))
}

impl Generator {
    /// Mapping network z `[B,S]` → w `[B,S]` (rosinality `get_latent`).
    pub fn mapping(&self, z: &Tensor) -> Result<Tensor> {
        check_shape(z, "z", &[None, Some(self.cfg.style_dim)])?;
        check_finite(z, "z")?;
        self.style.forward(z)
    }

    /// Mean of the mapping of `n` seeded N(0,1) z's, `[1,S]`, detached (rosinality
    /// `mean_latent`; `generate.py` uses 4096, HyperStyle 1e5). Runs in chunks of 4096.
    pub fn mean_latent(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        if n == 0 {
            return Err(StyleGan2Error::Input("mean_latent needs n >= 1".into()));
        }
        let s = self.cfg.style_dim;
        let mut sum = Tensor::zeros((1, s), DType::F64, &self.device)?;
        let mut done = 0;
        while done < n {
            let m = (n - done).min(4096);
            let z = Tensor::from_vec(randn_vec(rng, m * s), (m, s), &self.device)?
                .to_dtype(self.dtype)?;
            let w = self.style.forward(&z)?.detach();
            sum = (sum + w.to_dtype(DType::F64)?.sum_keepdim(0)?)?;
            done += m;
        }
        Ok((sum / n as f64)?.to_dtype(self.dtype)?)
    }

    /// Resolves `input.latents` (mapping, truncation, mixing) into W+ `[B,n_latent,S]`.
    pub fn resolve_latents(&self, input: &GeneratorInput) -> Result<Tensor> {
        let s = self.cfg.style_dim;
        let n = self.cfg.n_latent();
        let mut styles: Vec<Tensor> = match &input.latents {
            Latents::Z(zs) | Latents::W(zs) => {
                let is_z = matches!(input.latents, Latents::Z(_));
                let what = if is_z { "z" } else { "w" };
                if zs.is_empty() || zs.len() > 2 {
                    return Err(StyleGan2Error::Input(format!(
                        "expected 1 or 2 {what} tensors (2 = style mixing), got {}",
                        zs.len()
                    )));
                }
                let b = zs[0].dims().first().copied();
                let mut out = Vec::new();
                for (i, t) in zs.iter().enumerate() {
                    let name = format!("{what}[{i}]");
                    check_shape(t, &name, &[b, Some(s)])?;
                    check_finite(t, &name)?;
                    out.push(if is_z {
                        self.style.forward(t)?
                    } else {
                        t.clone()
                    });
                }
                out
            }
            Latents::WPlus(w) => {
                check_shape(w, "W+ latents", &[None, Some(n), Some(s)])?;
                check_finite(w, "W+ latents")?;
                vec![w.clone()]
            }
        };
        if let Some((psi, mean)) = &input.truncation {
            if !psi.is_finite() {
                return Err(StyleGan2Error::Input(format!("truncation ψ = {psi}")));
            }
            check_shape(mean, "truncation mean latent", &[Some(1), Some(s)])?;
            check_finite(mean, "truncation mean latent")?;
            styles = styles
                .iter()
                .map(|st| {
                    // [1,S] broadcasts against [B,S] and [B,n_latent,S].
                    let d = (st.broadcast_sub(mean)? * *psi)?;
                    Ok(d.broadcast_add(mean)?)
                })
                .collect::<Result<Vec<_>>>()?;
        }
        let b = styles[0].dim(0)?;
        if styles.len() == 1 {
            let st = &styles[0];
            if st.rank() == 3 {
                return Ok(st.clone());
            }
            // [B,S] -> [B,1,S] -> [B,n,S]; contiguous so per-layer slices feed matmul cheaply.
            return Ok(st.unsqueeze(1)?.broadcast_as((b, n, s))?.contiguous()?);
        }
        let idx = input.inject_index.ok_or_else(|| {
            StyleGan2Error::Input(
                "two styles given (style mixing) but no inject_index; draw one with \
                 random_inject_index"
                    .into(),
            )
        })?;
        if !(1..n).contains(&idx) {
            return Err(StyleGan2Error::Input(format!(
                "inject_index must be in 1..{n}, got {idx}"
            )));
        }
        let a = styles[0].unsqueeze(1)?.broadcast_as((b, idx, s))?;
        let c = styles[1].unsqueeze(1)?.broadcast_as((b, n - idx, s))?;
        Ok(Tensor::cat(&[a, c], 1)?)
    }
}
