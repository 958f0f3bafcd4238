//! Serde configuration of the hypernetwork H, and the table of output slots derived from the
//! generator's config.

use backbones::ResNetDepth;
use serde::{Deserialize, Serialize};
use stylegan2::{ModulatedLayerShape, StyleGan2Config, modulated_layer_shapes};

use crate::error::{RefinerError, Result};

/// Which generator slots H refines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayersToTune {
    /// HyperStyle's default `--layers_to_tune 0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24`
    /// mapped to this generator: every non-ToRGB modulated conv (`conv1`, `convs.*`).
    AllConvs,
    /// Explicit slot indices (`stylegan2::modulated_layer_shapes` order). ToRGB slots are
    /// rejected.
    Slots(Vec<usize>),
}

/// Which tuned slots share the one `SharedWeightsHypernet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SharedLayers {
    /// Every tuned slot whose shape equals `conv1`'s (C4 -> C4, 3x3). For a 256 px config-f
    /// generator this is exactly HyperStyle's hard-coded `[0, 2, 3, 5, 6, 8, 9, 11, 12]`.
    SameShapeAsConv1,
    /// No sharing: every tuned slot gets its own `RefinementBlock`.
    None,
    /// Explicit slots; they must all be tuned and have one shape.
    Slots(Vec<usize>),
}

/// The head of the slots that do not share the hypernet (HyperStyle's `--encoder_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OwnBlock {
    /// `SharedWeightsHyperNetResNet` (HyperStyle's model): `RefinementBlock`, per (out, in)
    /// channel offsets repeated over k x k.
    #[default]
    Pooled,
    /// `SharedWeightsHyperNetResNetSeparable` (its ablation): `RefinementBlockSeparable`, full
    /// k x k offsets from a `SeparableBlock`.
    Separable,
}

/// Configuration of H (`SharedWeightsHyperNetResNet`, or with [`OwnBlock::Separable`]
/// `SharedWeightsHyperNetResNetSeparable`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperConfig {
    /// Input channels: 4 = [current image RGB (pretrained filters), sketch].
    pub in_channels: usize,
    /// Square input size (a power of two >= 32); H's features are `input_size / 16`.
    pub input_size: usize,
    /// Body depth (HyperStyle: ResNet-34).
    pub depth: ResNetDepth,
    /// Stage widths (torchvision: 64/128/256/512).
    pub widths: [usize; 4],
    /// `RefinementBlock` inner width (HyperStyle 256) and output width (512).
    pub refine_inner: usize,
    pub refine_out: usize,
    /// `HyperRefinementBlock` inner width (HyperStyle 128) and code size = the shared
    /// hypernet's `z_dim` (512).
    pub hyper_inner: usize,
    pub hyper_code: usize,
    pub layers_to_tune: LayersToTune,
    pub shared: SharedLayers,
    /// The non-shared slots' head (absent in older files: [`OwnBlock::Pooled`]).
    #[serde(default)]
    pub own_block: OwnBlock,
}

impl HyperConfig {
    /// HyperStyle's H: ResNet-34, 256 px, widths and block sizes of the original.
    pub fn hyperstyle() -> Self {
        Self {
            in_channels: 4,
            input_size: 256,
            depth: ResNetDepth::R34,
            widths: [64, 128, 256, 512],
            refine_inner: 256,
            refine_out: 512,
            hyper_inner: 128,
            hyper_code: 512,
            layers_to_tune: LayersToTune::AllConvs,
            shared: SharedLayers::SameShapeAsConv1,
            own_block: OwnBlock::Pooled,
        }
    }
    /// Narrow CPU preset for `phantom_64`: ResNet-18 body with widths 16/32/64/128, 64 px
    /// input, blocks 32/64 wide, code 64.
    pub fn narrow_cpu() -> Self {
        Self {
            input_size: 64,
            depth: ResNetDepth::R18,
            widths: [16, 32, 64, 128],
            refine_inner: 32,
            refine_out: 64,
            hyper_inner: 32,
            hyper_code: 64,
            ..Self::hyperstyle()
        }
    }

    /// Test-sized preset for a 32 px generator (e.g. `e4e_encoder::testing::tiny_generator_config`):
    /// ResNet-18 body with widths 8/8/16/16, blocks 8/16 wide, code 16. Far too small for use.
    pub fn tiny_test() -> Self {
        Self {
            input_size: 32,
            widths: [8, 8, 16, 16],
            refine_inner: 8,
            refine_out: 16,
            hyper_inner: 8,
            hyper_code: 16,
            ..Self::narrow_cpu()
        }
    }

    /// Spatial size of the body's last map.
    pub fn feature_size(&self) -> usize {
        self.input_size / 16
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(RefinerError::Config(m));
        if self.in_channels == 0 {
            return bad("in_channels must be positive".into());
        }
        if self.input_size < 32 || !self.input_size.is_power_of_two() {
            return bad(format!(
                "input_size {} must be a power of two >= 32",
                self.input_size
            ));
        }
        if self.widths.contains(&0)
            || [
                self.refine_inner,
                self.refine_out,
                self.hyper_inner,
                self.hyper_code,
            ]
            .contains(&0)
        {
            return bad(format!("widths and block sizes must be positive: {self:?}"));
        }
        Ok(())
    }
}

/// How one tuned slot is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// `HyperRefinementBlock` + the shared hypernet: full k x k offsets.
    Shared,
    /// `RefinementBlock` (per (out, in) channel offsets repeated over k x k) or, with
    /// [`OwnBlock::Separable`], `RefinementBlockSeparable`.
    Own,
}

/// One tuned output slot of H.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSlot {
    pub layer: ModulatedLayerShape,
    pub kind: BlockKind,
}

/// The slots H produces for a generator, derived from `gen` with
/// `stylegan2::modulated_layer_shapes` (HyperStyle hard-codes this table for config-f).
pub fn output_table(cfg: &HyperConfig, gen_cfg: &StyleGan2Config) -> Result<Vec<OutputSlot>> {
    cfg.validate()?;
    let shapes = modulated_layer_shapes(gen_cfg)?;
    let tuned: Vec<ModulatedLayerShape> = match &cfg.layers_to_tune {
        LayersToTune::AllConvs => shapes.iter().filter(|s| !s.is_to_rgb).cloned().collect(),
        LayersToTune::Slots(v) => {
            let mut v = v.clone();
            v.sort_unstable();
            v.dedup();
            let mut out = Vec::new();
            for slot in v {
                let s = shapes.iter().find(|s| s.slot == slot).ok_or_else(|| {
                    RefinerError::Config(format!(
                        "layers_to_tune: slot {slot} does not exist (generator has {} slots)",
                        shapes.len()
                    ))
                })?;
                if s.is_to_rgb {
                    return Err(RefinerError::Config(format!(
                        "layers_to_tune: slot {slot} ({}) is a ToRGB layer; only convs are tuned",
                        s.name
                    )));
                }
                out.push(s.clone());
            }
            out
        }
    };
    if tuned.is_empty() {
        return Err(RefinerError::Config(
            "layers_to_tune selects no layer".into(),
        ));
    }
    let key = |s: &ModulatedLayerShape| (s.out_ch, s.in_ch, s.kernel);
    let shared: Vec<usize> = match &cfg.shared {
        SharedLayers::None => Vec::new(),
        SharedLayers::SameShapeAsConv1 => {
            let c1 = key(&shapes[0]);
            tuned
                .iter()
                .filter(|s| key(s) == c1)
                .map(|s| s.slot)
                .collect()
        }
        SharedLayers::Slots(v) => {
            let mut first = None;
            for slot in v {
                let s = tuned.iter().find(|s| s.slot == *slot).ok_or_else(|| {
                    RefinerError::Config(format!("shared slot {slot} is not tuned"))
                })?;
                match first {
                    None => first = Some(key(s)),
                    Some(k) if k != key(s) => {
                        return Err(RefinerError::Config(format!(
                            "shared slots must have one shape; slot {slot} is {:?}, not {k:?}",
                            key(s)
                        )));
                    }
                    _ => {}
                }
            }
            v.clone()
        }
    };
    Ok(tuned
        .into_iter()
        .map(|layer| OutputSlot {
            kind: if shared.contains(&layer.slot) {
                BlockKind::Shared
            } else {
                BlockKind::Own
            },
            layer,
        })
        .collect())
}
