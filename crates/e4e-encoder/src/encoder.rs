//! The sketch encoder E.
//!
//! Mirrors (parameter names are the PyTorch state-dict keys of these modules):
//! - single w, IR-SE-50: e4e `models/encoders/psp_encoders.py`
//!   `BackboneEncoderUsingLastLayerIntoW` (= HyperStyle `WEncoder`): `input_layer.{0,1,2}`,
//!   `body.0..23`, `output_pool` (AdaptiveAvgPool2d(1), no parameters), `linear`
//!   (EqualLinear 512->512). Output `[B, 512]`.
//! - single w, ResNet: the same head on ReStyle/HyperStyle's ResNet body (`conv1`, `bn1`,
//!   `relu`, `body.N`, see [`crate::body`]) -> `output_pool`, `linear`.
//! - W+, IR-SE-50: e4e `Encoder4Editing`: `styles.{i}` = `GradualStyleBlock(512, 512, s)` with
//!   s = H/16 for i < coarse_ind, H/8 for i < middle_ind, else H/4; `latlayer1`
//!   (Conv1x1 256->512), `latlayer2` (Conv1x1 128->512). w0 = `styles[0](c3)` is replicated, then
//!   for i in 1..min(stage+1, n): `w[:, i] += styles[i](features)` with features c3, p2 =
//!   up(c3) + latlayer1(c2) from coarse_ind, p1 = up(p2) + latlayer2(c1) from middle_ind.
//! - W+, ResNet: ReStyle `ResNetProgressiveBackboneEncoder`: the same progressive deltas, every
//!   `styles.{i}` = `GradualStyleBlock(C, style_dim, H/16)` on the last map, no latlayers.
//!
//! NOTE (deviations): `style_dim` may differ from 512 (`linear` is then `[style_dim, C]` and the
//! style blocks are `GradualStyleBlock(C, style_dim)`); the single-w head returns `[B, S]`
//! rather than e4e's `[B, n_styles, S]` repeat (use [`Encoder::to_w_plus`]); ResNet-50 bodies
//! (2048-d features) and narrow widths (ResNet `widths`, IR-SE `IrSe50Widths`) are extensions
//! not found in the repos. e4e checkpoints convert with `tools/convert_e4e.py` (tested in
//! `tests/convert_e4e.rs` against e4e's own code).

use std::collections::HashMap;
use std::path::Path;

use backbones::{BackboneError, ExtraChannelInit, IrSe, IrSeConfig};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, VarBuilder};
use stylegan2::layers::{EqualLinear, EqualLinearConfig};

use crate::body::ResNetBody;
use crate::config::{EncoderBackbone, EncoderConfig, EncoderHead};
use crate::error::{E4eError, Result, check_image};
use crate::heads::{GradualStyleBlock, upsample_add};

#[derive(Debug, Clone)]
enum Body {
    IrSe(Box<IrSe>),
    ResNet(ResNetBody),
}

#[derive(Debug, Clone)]
enum Head {
    Single(EqualLinear),
    WPlus {
        styles: Vec<GradualStyleBlock>,
        latlayers: Option<(Conv2d, Conv2d)>,
        coarse_ind: usize,
        middle_ind: usize,
    },
}

/// The feature maps the heads read: (coarse c3, middle c2, fine c1) for IR-SE, the last map
/// only for ResNet bodies.
struct Maps {
    c3: Tensor,
    c2: Option<Tensor>,
    c1: Option<Tensor>,
}

/// The encoder E (see the module docs).
#[derive(Debug, Clone)]
pub struct Encoder {
    config: EncoderConfig,
    body: Body,
    head: Head,
}

fn conv1x1(cin: usize, cout: usize, vb: VarBuilder) -> Result<Conv2d> {
    Ok(candle_nn::conv2d(cin, cout, 1, Default::default(), vb)?)
}

impl Encoder {
    /// Builds E, reading its parameters from `vb` (a `VarMap` for training, a checkpoint, or
    /// [`crate::init::seeded_var_map`] for a seeded fresh model).
    pub fn new(config: EncoderConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let feat = config.backbone.feature_channels();
        let body = match &config.backbone {
            EncoderBackbone::ResNet { depth, widths } => Body::ResNet(ResNetBody::new(
                *depth,
                *widths,
                config.in_channels,
                vb.clone(),
            )?),
            EncoderBackbone::IrSe50 | EncoderBackbone::IrSe50Widths { .. } => {
                let widths = config
                    .backbone
                    .ir_se_widths()
                    .unwrap_or(backbones::IR_SE_WIDTHS);
                Body::IrSe(Box::new(IrSe::new(
                    IrSeConfig::ir_se50()
                        .with_in_channels(config.in_channels)
                        .with_widths(widths),
                    vb.clone(),
                )?))
            }
        };
        let head = match config.head {
            EncoderHead::SingleW => Head::Single(EqualLinear::new(
                &EqualLinearConfig::new(feat, config.style_dim),
                vb.pp("linear"),
            )?),
            EncoderHead::WPlus {
                n_styles,
                coarse_ind,
                middle_ind,
            } => {
                let sizes = config.style_map_sizes();
                let mut styles = Vec::with_capacity(n_styles);
                for i in 0..n_styles {
                    let s = if i < coarse_ind {
                        sizes[0]
                    } else if i < middle_ind {
                        sizes[1]
                    } else {
                        sizes[2]
                    };
                    styles.push(GradualStyleBlock::new(
                        feat,
                        config.style_dim,
                        s,
                        vb.pp("styles").pp(i),
                    )?);
                }
                // e4e: latlayer1 = Conv1x1(256 -> 512) on c2, latlayer2 = Conv1x1(128 -> 512) on c1.
                let latlayers = match config.backbone.ir_se_widths() {
                    Some(w) => Some((
                        conv1x1(w[2], w[3], vb.pp("latlayer1"))?,
                        conv1x1(w[1], w[3], vb.pp("latlayer2"))?,
                    )),
                    None => None,
                };
                Head::WPlus {
                    styles,
                    latlayers,
                    coarse_ind,
                    middle_ind,
                }
            }
        };
        Ok(Self { config, body, head })
    }

    /// Loads E from a safetensors file under the names in the module docs. A 3-channel
    /// pretrained stem (`input_layer.0.weight` or `conv1.weight`, e.g. from
    /// `tools/backbones_convert.py`) is adapted to `config.in_channels` with
    /// `backbones::resnet::adapt_conv1_weight` (1 channel: sum of the RGB filters). Every key and
    /// shape is checked first; all problems are reported at once.
    pub fn load(
        path: &Path,
        config: EncoderConfig,
        extra: ExtraChannelInit,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let t = backbones::weights::read_safetensors(path, dev)?;
        Self::from_tensors(&path.display().to_string(), t, config, extra, dtype, dev)
    }

    /// Like [`Encoder::load`] from an in-memory tensor map.
    pub fn from_tensors(
        source_name: &str,
        mut tensors: HashMap<String, Tensor>,
        config: EncoderConfig,
        extra: ExtraChannelInit,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let stem = match config.backbone {
            EncoderBackbone::IrSe50 | EncoderBackbone::IrSe50Widths { .. } => {
                "input_layer.0.weight"
            }
            EncoderBackbone::ResNet { .. } => "conv1.weight",
        };
        if let Some(w) = tensors.get(stem)
            && w.rank() == 4
            && w.dim(1)? == 3
            && config.in_channels != 3
        {
            let a = backbones::resnet::adapt_conv1_weight(w, config.in_channels, extra)?;
            tensors.insert(stem.to_string(), a);
        }
        let cfg = config.clone();
        Ok(backbones::weights::build_verified(
            source_name,
            tensors,
            dtype,
            dev,
            |vb| Self::new(cfg.clone(), vb).map_err(|e| BackboneError::Config(e.to_string())),
        )?)
    }

    /// Every parameter `(name, shape)` E reads, sorted by name (the PyTorch state-dict keys,
    /// BatchNorm buffers included, `num_batches_tracked` excluded).
    pub fn parameter_shapes(config: &EncoderConfig) -> Result<Vec<(String, Vec<usize>)>> {
        let cfg = config.clone();
        let mut v = backbones::weights::record_params(|vb| {
            Self::new(cfg, vb).map_err(|e| BackboneError::Config(e.to_string()))
        })?;
        v.sort();
        Ok(v)
    }

    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    fn maps(&self, x: &Tensor, train: bool) -> Result<Maps> {
        check_image(
            "encoder input",
            x,
            self.config.in_channels,
            self.config.input_size,
        )?;
        match &self.body {
            Body::IrSe(n) => {
                let m = n.forward_t(x, train)?;
                Ok(Maps {
                    c3: m.require("stage4")?.clone(),
                    c2: Some(m.require("stage3")?.clone()),
                    c1: Some(m.require("stage2")?.clone()),
                })
            }
            Body::ResNet(b) => Ok(Maps {
                c3: b.forward_t(x, train)?,
                c2: None,
                c1: None,
            }),
        }
    }

    /// All codes: `[B, style_dim]` for the single-w head, `[B, n_styles, style_dim]` with every
    /// delta for W+ (e4e's `Inference` stage). `train` selects batch-statistics BatchNorm (e4e
    /// trains with `.train()`). The latent average is **not** added (see
    /// [`Encoder::add_latent_avg`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_progressive(x, train, usize::MAX)
    }

    /// Eval-mode [`Encoder::forward_t`].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }

    /// W+ codes with only the deltas of slots `1..=stage` (e4e's progressive training; stage 0
    /// is w0 replicated). For the single-w head `stage` is ignored.
    pub fn forward_progressive(&self, x: &Tensor, train: bool, stage: usize) -> Result<Tensor> {
        let maps = self.maps(x, train)?;
        match &self.head {
            Head::Single(linear) => {
                let pooled = maps.c3.mean_keepdim(3)?.mean_keepdim(2)?.flatten_from(1)?;
                Ok(linear.forward(&pooled)?)
            }
            Head::WPlus {
                styles,
                latlayers,
                coarse_ind,
                middle_ind,
            } => {
                let n = styles.len();
                let w0 = styles[0].forward(&maps.c3)?;
                let mut rows = vec![w0.clone(); n];
                let mut features = maps.c3.clone();
                let mut p2: Option<Tensor> = None;
                for (i, style) in styles
                    .iter()
                    .enumerate()
                    .take(n.min(stage.saturating_add(1)))
                    .skip(1)
                {
                    if let (Some((lat1, lat2)), Some(c2), Some(c1)) =
                        (latlayers, maps.c2.as_ref(), maps.c1.as_ref())
                    {
                        if i == *coarse_ind {
                            let p = upsample_add(&maps.c3, &lat1.forward(c2)?)?;
                            features = p.clone();
                            p2 = Some(p);
                        } else if i == *middle_ind {
                            let base = p2.as_ref().unwrap_or(&maps.c3);
                            features = upsample_add(base, &lat2.forward(c1)?)?;
                        }
                    }
                    rows[i] = (&rows[i] + style.forward(&features)?)?;
                }
                Ok(Tensor::stack(&rows, 1)?)
            }
        }
    }

    /// `codes + latent_avg` (e4e/HyperStyle `start_from_latent_avg`); `latent_avg` is `[S]` or
    /// `[1, S]` and broadcasts over `[B, S]` or `[B, n, S]`.
    pub fn add_latent_avg(codes: &Tensor, latent_avg: &Tensor) -> Result<Tensor> {
        let s = *codes.dims().last().unwrap_or(&0);
        if latent_avg.elem_count() != s {
            return Err(E4eError::Shape {
                what: "latent_avg".into(),
                expected: format!("[{s}] or [1, {s}]"),
                got: latent_avg.dims().to_vec(),
            });
        }
        Ok(codes.broadcast_add(&latent_avg.flatten_all()?)?)
    }

    /// Replicates a single `[B, S]` code to `[B, n_latent, S]` (a W+ tensor for
    /// `stylegan2::GeneratorInput::w_plus`); `[B, n_latent, S]` passes through.
    pub fn to_w_plus(codes: &Tensor, n_latent: usize) -> Result<Tensor> {
        match codes.dims() {
            [b, s] => Ok(codes
                .unsqueeze(1)?
                .broadcast_as((*b, n_latent, *s))?
                .contiguous()?),
            [_, n, _] if *n == n_latent => Ok(codes.clone()),
            d => Err(E4eError::Shape {
                what: "encoder codes".into(),
                expected: format!("[B, S] or [B, {n_latent}, S]"),
                got: d.to_vec(),
            }),
        }
    }
}
