//! The hypernetwork H: HyperStyle `models/hypernetworks/hypernetwork.py`
//! `SharedWeightsHyperNetResNet` (and, with `HyperConfig::own_block` =
//! [`OwnBlock::Separable`], `SharedWeightsHyperNetResNetSeparable`).
//!
//! Names (the PyTorch state-dict keys): `conv1` (7x7 s2, `in_channels` -> 64, no bias), `bn1`,
//! `relu` (PReLU), `body.0..15` (torchvision ResNet-34 BasicBlocks of layer1..layer4, no max
//! pool; see `e4e_encoder::body`), `shared_weight_hypernet.{w1,b1,w2,b2}`, and
//! `refinement_blocks.{slot}.*` for every tuned slot (`ModuleList` index = slot, untuned slots
//! are `None` and have no keys).
//!
//! Input channels (the Sketch2MedI choice): `[ŷ_R, ŷ_G, ŷ_B, sketch]` ([`HyperNetwork::input`]).
//! The current image takes channels 0..3 so that, when an ImageNet `conv1.weight` is loaded,
//! the RGB image keeps the pretrained RGB filters unchanged (HyperStyle's `[x, ŷ]` gives them
//! to its 3-channel target image); the sketch channel is initialised by
//! `backbones::ExtraChannelInit` — default [`DEFAULT_SKETCH_CHANNEL_INIT`] = mean of the RGB
//! filters (a grey-level detector with pretrained scale); `Normal { std: 1 }` reproduces
//! HyperStyle's `randn` rule.
//!
//! NOTE (deviations): PyTorch's state dict repeats the shared tensors under every
//! `refinement_blocks.{j}.hypernet.*`; here they are read once under `shared_weight_hypernet`
//! (`tools/convert_hyperstyle.py` checks the copies equal and keeps one). The output table comes
//! from the generator config (`stylegan2::modulated_layer_shapes`), not HyperStyle's hard-coded
//! config-f `PARAMETERS`; for config-f at 256/512/1024 they agree slot for slot
//! (tests/hypernet.rs), so HyperStyle checkpoints load unchanged. ToRGB slots are not tunable.
//!
//! Parity: tests/convert_hyperstyle.rs runs checkpoints saved by HyperStyle's own code
//! (yuval-alaluf/hyperstyle `a723c7310312`) through the converter and compares every Δ and the
//! gradients with HyperStyle's forward (`tools/hyperstyle_fixtures.py`).

use std::collections::HashMap;
use std::path::Path;

use backbones::{BackboneError, ExtraChannelInit};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use e4e_encoder::ResNetBody;
use stylegan2::{StyleGan2Config, WeightOffsets};

use crate::blocks::{
    HyperRefinementBlock, RefinementBlock, RefinementBlockConfig, RefinementBlockSeparable,
    SharedWeightsHypernet,
};
use crate::config::{BlockKind, HyperConfig, OutputSlot, OwnBlock, output_table};
use crate::error::{RefinerError, Result};

/// How the sketch channel of `conv1` is initialised when a 3-channel pretrained stem is loaded.
pub const DEFAULT_SKETCH_CHANNEL_INIT: ExtraChannelInit = ExtraChannelInit::MeanOfRgb;

#[derive(Debug, Clone)]
enum Block {
    Own(RefinementBlock),
    Separable(RefinementBlockSeparable),
    Shared(HyperRefinementBlock),
}

/// H (see the module docs).
#[derive(Debug, Clone)]
pub struct HyperNetwork {
    config: HyperConfig,
    body: ResNetBody,
    shared: Option<SharedWeightsHypernet>,
    blocks: Vec<(OutputSlot, Block)>,
}

impl HyperNetwork {
    /// Builds H for a generator with config `gen_cfg`.
    pub fn new(config: HyperConfig, gen_cfg: &StyleGan2Config, vb: VarBuilder) -> Result<Self> {
        let table = output_table(&config, gen_cfg)?;
        let body = ResNetBody::new(config.depth, config.widths, config.in_channels, vb.clone())?;
        let feat = body.out_channels();
        let spatial = config.feature_size();
        let shared_shape = table
            .iter()
            .find(|s| s.kind == BlockKind::Shared)
            .map(|s| (s.layer.out_ch, s.layer.in_ch, s.layer.kernel));
        let shared = match shared_shape {
            Some((out, inp, k)) => Some(SharedWeightsHypernet::new(
                config.hyper_code,
                inp,
                out,
                k,
                vb.pp("shared_weight_hypernet"),
            )?),
            None => None,
        };
        let rb = vb.pp("refinement_blocks");
        let mut blocks = Vec::with_capacity(table.len());
        for slot in table {
            let vb = rb.pp(slot.layer.slot);
            let block = match slot.kind {
                BlockKind::Shared => Block::Shared(HyperRefinementBlock::new(
                    feat,
                    config.hyper_inner,
                    config.hyper_code,
                    spatial,
                    vb,
                )?),
                BlockKind::Own => {
                    let cfg = RefinementBlockConfig {
                        n_channels: feat,
                        inner_c: config.refine_inner,
                        out_c: config.refine_out,
                        spatial,
                        out_ch: slot.layer.out_ch,
                        in_ch: slot.layer.in_ch,
                        kernel: slot.layer.kernel,
                    };
                    match config.own_block {
                        OwnBlock::Pooled => Block::Own(RefinementBlock::new(&cfg, vb)?),
                        OwnBlock::Separable => {
                            Block::Separable(RefinementBlockSeparable::new(&cfg, vb)?)
                        }
                    }
                }
            };
            blocks.push((slot, block));
        }
        Ok(Self {
            config,
            body,
            shared,
            blocks,
        })
    }

    /// Loads H from safetensors (HyperStyle names without the `hypernet.` prefix). A 3-channel
    /// ImageNet `conv1.weight` is adapted: channels 0..3 (the image) keep it, the sketch
    /// channel gets `extra` (see the module docs). Every key is checked first.
    pub fn load(
        path: &Path,
        config: HyperConfig,
        gen_cfg: &StyleGan2Config,
        extra: ExtraChannelInit,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let t = backbones::weights::read_safetensors(path, dev)?;
        Self::from_tensors(
            &path.display().to_string(),
            t,
            config,
            gen_cfg,
            extra,
            dtype,
            dev,
        )
    }

    /// Like [`HyperNetwork::load`] from an in-memory tensor map.
    pub fn from_tensors(
        source_name: &str,
        mut tensors: HashMap<String, Tensor>,
        config: HyperConfig,
        gen_cfg: &StyleGan2Config,
        extra: ExtraChannelInit,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        if let Some(w) = tensors.get("conv1.weight")
            && w.rank() == 4
            && w.dim(1)? == 3
            && config.in_channels != 3
        {
            let a = backbones::resnet::adapt_conv1_weight(w, config.in_channels, extra)?;
            tensors.insert("conv1.weight".into(), a);
        }
        let cfg = config.clone();
        Ok(backbones::weights::build_verified(
            source_name,
            tensors,
            dtype,
            dev,
            |vb| {
                Self::new(cfg.clone(), gen_cfg, vb)
                    .map_err(|e| BackboneError::Config(e.to_string()))
            },
        )?)
    }

    /// Every parameter `(name, shape)` H reads, sorted by name.
    pub fn parameter_shapes(
        config: &HyperConfig,
        gen_cfg: &StyleGan2Config,
    ) -> Result<Vec<(String, Vec<usize>)>> {
        let mut v = backbones::weights::record_params(|vb| {
            Self::new(config.clone(), gen_cfg, vb).map_err(|e| BackboneError::Config(e.to_string()))
        })?;
        v.sort();
        Ok(v)
    }

    pub fn config(&self) -> &HyperConfig {
        &self.config
    }

    /// The tuned slots, in slot order.
    pub fn output_slots(&self) -> impl Iterator<Item = &OutputSlot> {
        self.blocks.iter().map(|(s, _)| s)
    }

    /// H's input `[image, sketch]`: `image` `[B, 3, H, W]` (the current ŷ in [-1, 1]; resized
    /// bilinearly to `input_size` when needed, as HyperStyle's `face_pool`) and `sketch`
    /// `[B, 1, input_size, input_size]`.
    pub fn input(&self, sketch: &Tensor, image: &Tensor) -> Result<Tensor> {
        let n = self.config.input_size;
        if self.config.in_channels <= 3 {
            return Err(RefinerError::Config(format!(
                "[image, sketch] needs in_channels >= 4 (config has {})",
                self.config.in_channels
            )));
        }
        let extra = self.config.in_channels - 3;
        let sd = sketch.dims();
        if sd.len() != 4 || sd[1] != extra || sd[2] != n || sd[3] != n {
            return Err(RefinerError::Shape {
                what: "sketch for H".into(),
                expected: format!("[B, {extra}, {n}, {n}]"),
                got: sd.to_vec(),
            });
        }
        let id = image.dims();
        if id.len() != 4 || id[1] != 3 || id[0] != sd[0] {
            return Err(RefinerError::Shape {
                what: "image for H".into(),
                expected: format!("[{}, 3, H, W]", sd[0]),
                got: id.to_vec(),
            });
        }
        let image = if id[2] != n || id[3] != n {
            backbones::ops::resize_bilinear(image, n, n)?
        } else {
            image.clone()
        };
        Ok(Tensor::cat(&[&image, sketch], 1)?)
    }

    /// One application of H: input `[B, in_channels, n, n]` -> one Δ per tuned slot
    /// (`[B, out, in, k, k]`). `train` selects batch-statistics BatchNorm.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<WeightOffsets> {
        let n = self.config.input_size;
        let d = x.dims();
        if d.len() != 4 || d[0] == 0 || d[1] != self.config.in_channels || d[2] != n || d[3] != n {
            return Err(RefinerError::Shape {
                what: "hypernetwork input".into(),
                expected: format!("[B, {}, {n}, {n}]", self.config.in_channels),
                got: d.to_vec(),
            });
        }
        let feat = self.body.forward_t(x, train)?;
        let mut out = WeightOffsets::new();
        for (slot, block) in &self.blocks {
            let delta = match block {
                Block::Own(b) => b.forward(&feat)?,
                Block::Separable(b) => b.forward(&feat)?,
                Block::Shared(b) => {
                    let h = self.shared.as_ref().ok_or_else(|| {
                        RefinerError::Config("shared block without a shared hypernet".into())
                    })?;
                    b.forward(&feat, h)?
                }
            };
            out.insert(slot.layer.slot, delta);
        }
        Ok(out)
    }

    /// Eval-mode [`HyperNetwork::forward_t`].
    pub fn forward(&self, x: &Tensor) -> Result<WeightOffsets> {
        self.forward_t(x, false)
    }
}
