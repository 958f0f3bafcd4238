//! The PatchGAN discriminator (junyanz `NLayerDiscriminator`, `--netD basic` = 3 layers).
//!
//! ```text
//! model.0   Conv 4/2/1 (bias) in -> ndf, model.1 LReLU 0.2
//! model.{2,5,..}  Conv 4/2/1 (bias only with InstanceNorm), norm, LReLU   (n_layers - 1 times)
//! next      Conv 4/1/1, norm, LReLU                                       (-> ndf * min(2^n, 8))
//! last      Conv 4/1/1 (bias) -> 1, no sigmoid (the loss takes logits)
//! ```
//! At 64 px with 3 layers: 64 -> 32 -> 16 -> 8 -> 7 -> 6 (a 6x6 patch map); at 256 px 30x30.
//! CycleGAN's discriminators are the same class (on one domain, with InstanceNorm).

use candle_core::Tensor;
use candle_nn::{Module, VarBuilder};

use crate::error::{BaselinesError, Result};
use crate::layers::{BatchNorm2d, Conv2d, NORMAL_002, Norm2d, NormMode, Padding, leaky_relu_02};
use crate::pix2pix::config::{NormKind, PatchGanConfig};

struct Layer {
    conv: Conv2d,
    norm: Option<Norm2d>,
    act: bool,
}

/// `NLayerDiscriminator`: `[B, input_nc, S, S]` -> patch logits `[B, 1, s, s]`.
pub struct PatchGan {
    cfg: PatchGanConfig,
    layers: Vec<Layer>,
}

impl PatchGan {
    /// Parameters under `model.N` (pass the root `VarBuilder`).
    pub fn new(cfg: &PatchGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let vb = vb.pp("model");
        let use_bias = cfg.norm == NormKind::Instance;
        let norm = |c, vb| -> Result<Norm2d> {
            Ok(match cfg.norm {
                NormKind::Batch => Norm2d::Batch(BatchNorm2d::new(c, vb)?),
                NormKind::Instance => Norm2d::Instance,
            })
        };
        let mut layers = vec![Layer {
            conv: Conv2d::new(
                cfg.input_nc,
                cfg.ndf,
                4,
                2,
                Padding::Zero(1),
                true,
                NORMAL_002,
                vb.pp("0"),
            )?,
            norm: None,
            act: true,
        }];
        let mut idx = 2;
        for n in 1..=cfg.n_layers {
            // n < n_layers: stride 2; n == n_layers: the stride-1 conv before the output.
            let stride = if n < cfg.n_layers { 2 } else { 1 };
            let (c_in, c_out) = (cfg.nf(n - 1), cfg.nf(n));
            layers.push(Layer {
                conv: Conv2d::new(
                    c_in,
                    c_out,
                    4,
                    stride,
                    Padding::Zero(1),
                    use_bias,
                    NORMAL_002,
                    vb.pp(idx.to_string()),
                )?,
                norm: Some(norm(c_out, vb.pp((idx + 1).to_string()))?),
                act: true,
            });
            idx += 3;
        }
        layers.push(Layer {
            conv: Conv2d::new(
                cfg.nf(cfg.n_layers),
                1,
                4,
                1,
                Padding::Zero(1),
                true,
                NORMAL_002,
                vb.pp(idx.to_string()),
            )?,
            norm: None,
            act: false,
        });
        Ok(Self {
            cfg: cfg.clone(),
            layers,
        })
    }

    pub fn config(&self) -> &PatchGanConfig {
        &self.cfg
    }

    /// `x`: `[B, input_nc, S, S]` (pix2pix: `cat(sketch, image)`); returns logits.
    pub fn forward(&self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        let d = x.dims();
        let ok = d.len() == 4
            && d[0] > 0
            && d[1] == self.cfg.input_nc
            && d[2] == d[3]
            && self.cfg.output_size(d[2]).is_some();
        if !ok {
            return Err(BaselinesError::Shape {
                what: "PatchGAN input".into(),
                expected: format!(
                    "[B, {}, S, S] with S large enough for {} layers",
                    self.cfg.input_nc, self.cfg.n_layers
                ),
                got: d.to_vec(),
            });
        }
        let mut h = x.clone();
        for l in &self.layers {
            h = l.conv.forward(&h)?;
            if let Some(n) = &l.norm {
                h = n.forward(&h, mode)?;
            }
            if l.act {
                h = leaky_relu_02(&h)?;
            }
        }
        Ok(h)
    }

    /// The BatchNorm layers in forward order.
    pub fn batch_norms(&self) -> Vec<&BatchNorm2d> {
        self.layers
            .iter()
            .filter_map(|l| match &l.norm {
                Some(Norm2d::Batch(bn)) => Some(bn),
                _ => None,
            })
            .collect()
    }
}
