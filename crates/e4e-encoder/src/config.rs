//! Serde configuration of the encoder E and its presets.

use backbones::ResNetDepth;
use serde::{Deserialize, Serialize};

use crate::error::{E4eError, Result};

/// The feature extractor under E.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EncoderBackbone {
    /// e4e/pSp IR-SE-50 (`input_layer`, `body.0..23`), the "ResNet-50" of the e4e paper.
    IrSe50,
    /// IR-SE-50 units (3/4/14/3) with other stage widths than e4e's 64/128/256/512; the FPN
    /// `latlayer1/2` map `widths[2]` / `widths[1]` to `widths[3]` channels.
    /// NOTE: an extension for narrow CPU models (the converted e4e test checkpoint); widths
    /// must be multiples of the SE reduction 16.
    IrSe50Widths { widths: [usize; 4] },
    /// ReStyle/HyperStyle ResNet body (`conv1`, `bn1`, `relu` = PReLU, `body.N` = torchvision
    /// blocks of layer1..layer4, no max pool). `widths` are the stage widths (torchvision:
    /// `[64, 128, 256, 512]`); the stem has `widths[0]` channels.
    ResNet {
        depth: ResNetDepth,
        widths: [usize; 4],
    },
}

impl EncoderBackbone {
    /// Channels of the last feature map (the pooled vector fed to `linear`).
    pub fn feature_channels(&self) -> usize {
        match self {
            Self::IrSe50 => backbones::IR_SE_WIDTHS[3],
            Self::IrSe50Widths { widths } => widths[3],
            Self::ResNet { depth, widths } => widths[3] * depth.expansion(),
        }
    }

    /// The IR-SE stage widths (None for ResNet bodies).
    pub fn ir_se_widths(&self) -> Option<[usize; 4]> {
        match self {
            Self::IrSe50 => Some(backbones::IR_SE_WIDTHS),
            Self::IrSe50Widths { widths } => Some(*widths),
            Self::ResNet { .. } => None,
        }
    }
}

/// Output head of E.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EncoderHead {
    /// One code `w` (`output_pool` + `linear`): e4e `BackboneEncoderUsingLastLayerIntoW` /
    /// HyperStyle `WEncoder`. Output `[B, style_dim]`.
    SingleW,
    /// W+ with e4e's progressive deltas (`Encoder4Editing` on IR-SE-50 with the FPN
    /// `latlayer1/2`; ReStyle `ResNetProgressiveBackboneEncoder` on ResNet bodies, every style
    /// from the last map). Output `[B, n_styles, style_dim]`.
    WPlus {
        n_styles: usize,
        /// Styles `< coarse_ind` read the coarsest map (e4e: 3).
        coarse_ind: usize,
        /// Styles `coarse_ind..middle_ind` read the middle map (e4e: 7); the rest the finest.
        middle_ind: usize,
    },
}

/// Configuration of the encoder E.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub backbone: EncoderBackbone,
    /// Input channels (sketch = 1; pSp's `--input_nc`).
    pub in_channels: usize,
    /// Square input size in pixels (a power of two, >= 32).
    pub input_size: usize,
    /// Dimension of w (the generator's `style_dim`).
    pub style_dim: usize,
    pub head: EncoderHead,
}

const TORCHVISION_WIDTHS: [usize; 4] = [64, 128, 256, 512];

impl EncoderConfig {
    /// IR-SE-50, 1-channel 256 px sketch, one 512-d w (e4e `SingleStyleCodeEncoder`).
    pub fn ir_se50() -> Self {
        Self {
            backbone: EncoderBackbone::IrSe50,
            in_channels: 1,
            input_size: 256,
            style_dim: 512,
            head: EncoderHead::SingleW,
        }
    }
    /// ResNet-34 body (ReStyle/HyperStyle non-face encoders), 1-channel 256 px, one 512-d w.
    pub fn resnet34() -> Self {
        Self {
            backbone: EncoderBackbone::ResNet {
                depth: ResNetDepth::R34,
                widths: TORCHVISION_WIDTHS,
            },
            ..Self::ir_se50()
        }
    }
    /// ResNet-50 body (2048-d features), 1-channel 256 px, one 512-d w.
    pub fn resnet50() -> Self {
        Self {
            backbone: EncoderBackbone::ResNet {
                depth: ResNetDepth::R50,
                widths: TORCHVISION_WIDTHS,
            },
            ..Self::ir_se50()
        }
    }
    /// Narrow CPU preset for `stylegan2::StyleGan2Config::phantom_64`: ResNet-18 body with
    /// widths 16/32/64/128, 64 px 1-channel input, w in R^128. About 0.7 M parameters.
    pub fn narrow_cpu() -> Self {
        Self {
            backbone: EncoderBackbone::ResNet {
                depth: ResNetDepth::R18,
                widths: [16, 32, 64, 128],
            },
            in_channels: 1,
            input_size: 64,
            style_dim: 128,
            head: EncoderHead::SingleW,
        }
    }
    /// Switches to a W+ head with `n_styles` codes and e4e's coarse/middle split (3, 7).
    pub fn with_w_plus(self, n_styles: usize) -> Self {
        Self {
            head: EncoderHead::WPlus {
                n_styles,
                coarse_ind: 3,
                middle_ind: 7,
            },
            ..self
        }
    }
    pub fn with_in_channels(self, in_channels: usize) -> Self {
        Self {
            in_channels,
            ..self
        }
    }
    pub fn with_style_dim(self, style_dim: usize) -> Self {
        Self { style_dim, ..self }
    }
    pub fn with_input_size(self, input_size: usize) -> Self {
        Self { input_size, ..self }
    }

    /// Matches a generator: `style_dim` from `gen_cfg`, and for a W+ head `n_styles` =
    /// `gen_cfg.n_latent()`.
    pub fn for_generator(self, gen_cfg: &stylegan2::StyleGan2Config) -> Self {
        let head = match self.head {
            EncoderHead::SingleW => EncoderHead::SingleW,
            EncoderHead::WPlus {
                coarse_ind,
                middle_ind,
                ..
            } => EncoderHead::WPlus {
                n_styles: gen_cfg.n_latent(),
                coarse_ind,
                middle_ind,
            },
        };
        Self {
            style_dim: gen_cfg.style_dim,
            head,
            ..self
        }
    }

    /// Feature map sizes of the three FPN levels (coarse, middle, fine) for IR-SE-50, or of
    /// the single last map (repeated) for ResNet bodies.
    pub fn style_map_sizes(&self) -> [usize; 3] {
        let s = self.input_size;
        match self.backbone {
            EncoderBackbone::IrSe50 | EncoderBackbone::IrSe50Widths { .. } => {
                [s / 16, s / 8, s / 4]
            }
            EncoderBackbone::ResNet { .. } => [s / 16; 3],
        }
    }

    /// Checks every invariant the model relies on.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(E4eError::Config(m));
        if self.in_channels == 0 {
            return bad("in_channels must be positive".into());
        }
        if self.input_size < 32 || !self.input_size.is_power_of_two() {
            return bad(format!(
                "input_size {} must be a power of two >= 32",
                self.input_size
            ));
        }
        if self.style_dim == 0 {
            return bad("style_dim must be positive".into());
        }
        if let EncoderBackbone::ResNet { widths, .. } = &self.backbone
            && widths.contains(&0)
        {
            return bad(format!("ResNet widths {widths:?} must be positive"));
        }
        if let EncoderBackbone::IrSe50Widths { widths } = &self.backbone
            && widths.iter().any(|&w| w == 0 || w % 16 != 0)
        {
            return bad(format!(
                "IR-SE widths {widths:?} must be positive multiples of 16 (the SE reduction)"
            ));
        }
        if let EncoderHead::WPlus {
            n_styles,
            coarse_ind,
            middle_ind,
        } = self.head
            && (n_styles == 0 || coarse_ind == 0 || coarse_ind > middle_ind)
        {
            return bad(format!(
                "W+ head needs n_styles >= 1 and 1 <= coarse_ind <= middle_ind \
                 (got {n_styles}, {coarse_ind}, {middle_ind})"
            ));
        }
        Ok(())
    }

    /// Number of codes the head produces (1 for a single w).
    pub fn n_styles(&self) -> usize {
        match self.head {
            EncoderHead::SingleW => 1,
            EncoderHead::WPlus { n_styles, .. } => n_styles,
        }
    }
}
