//! pix2pix configuration: the official `unet_256` + `basic` PatchGAN and the narrow 64 px preset.

use serde::{Deserialize, Serialize};

use crate::error::{BaselinesError, Result};

/// `--norm` of the junyanz code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// BatchNorm2d (affine, running stats); convs before it have no bias. pix2pix's default.
    Batch,
    /// InstanceNorm2d (affine = false, no running stats); convs keep their bias.
    Instance,
}

/// `UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer, use_dropout)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Channels of the input (1 for a sketch).
    pub input_nc: usize,
    /// Channels of the output image.
    pub output_nc: usize,
    /// Stride-2 downsamplings; an input of `2^num_downs` px reaches 1x1 at the bottleneck
    /// (`unet_256`: 8, `unet_128`: 7, 64 px: 6). At least 5.
    pub num_downs: usize,
    /// Filters of the outermost conv; levels use `ngf * (1, 2, 4, 8, 8, ...)`.
    pub ngf: usize,
    pub norm: NormKind,
    /// Dropout 0.5 after the decoder of the `num_downs - 5` levels above the innermost (pix2pix: on).
    pub use_dropout: bool,
}

impl UnetConfig {
    /// Filters of level `k` (0 = outermost): `ngf * 2^min(k, 3)`.
    pub fn inner_nc(&self, level: usize) -> usize {
        self.ngf << level.min(3)
    }

    /// Whether level `k` (0 = outermost) carries a dropout layer (levels 4 ..= num_downs - 2).
    pub fn has_dropout(&self, level: usize) -> bool {
        self.use_dropout && level >= 4 && level + 1 < self.num_downs
    }

    /// The smallest input side the U-Net accepts (the innermost level must see 2x2).
    pub fn min_size(&self) -> usize {
        1 << self.num_downs
    }

    pub fn validate(&self) -> Result<()> {
        if self.input_nc == 0 || self.output_nc == 0 || self.ngf == 0 {
            return Err(BaselinesError::Config(format!(
                "U-Net channels must be positive (input_nc {}, output_nc {}, ngf {})",
                self.input_nc, self.output_nc, self.ngf
            )));
        }
        if !(5..=12).contains(&self.num_downs) {
            return Err(BaselinesError::Config(format!(
                "U-Net num_downs = {} (the official UnetGenerator needs at least 5; at most 12 here)",
                self.num_downs
            )));
        }
        Ok(())
    }
}

/// `NLayerDiscriminator(input_nc, ndf, n_layers, norm_layer)` (`--netD basic` = 3 layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchGanConfig {
    /// Channels judged: pix2pix sees `cat(sketch, image)`, so `input_nc + output_nc` of G.
    pub input_nc: usize,
    pub ndf: usize,
    pub n_layers: usize,
    pub norm: NormKind,
}

impl PatchGanConfig {
    /// Filters of the conv at sequence position `n` (0 = first): `ndf * min(2^n, 8)`.
    pub fn nf(&self, n: usize) -> usize {
        self.ndf * (1usize << n.min(3)).min(8)
    }

    pub fn validate(&self) -> Result<()> {
        if self.input_nc == 0 || self.ndf == 0 || self.n_layers == 0 || self.n_layers > 8 {
            return Err(BaselinesError::Config(format!(
                "PatchGAN needs input_nc, ndf > 0 and 1 <= n_layers <= 8 (got {}, {}, {})",
                self.input_nc, self.ndf, self.n_layers
            )));
        }
        Ok(())
    }

    /// The output side for an input of `size` px (stride-2 convs 4/2/1, then two 4/1/1 convs),
    /// or `None` when the input is too small.
    pub fn output_size(&self, size: usize) -> Option<usize> {
        let mut s = size;
        for _ in 0..self.n_layers {
            if s < 2 {
                return None;
            }
            s = (s + 2 - 4) / 2 + 1;
        }
        for _ in 0..2 {
            if s < 3 {
                return None;
            }
            s -= 1;
        }
        Some(s)
    }
}

/// A pix2pix model: G, D, the image side and the L1 weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pix2PixConfig {
    /// Side of the (square) training images, a multiple of `2^num_downs`.
    pub image_size: usize,
    pub generator: UnetConfig,
    pub discriminator: PatchGanConfig,
    /// `--lambda_L1` (100).
    pub lambda_l1: f64,
}

impl Pix2PixConfig {
    /// The official pix2pix defaults (`--netG unet_256 --ngf 64 --norm batch`, dropout on,
    /// `--netD basic --ndf 64`, `--lambda_L1 100`) at 256 px, with a 1-channel sketch in and an
    /// RGB image out (`--input_nc 1 --output_nc 3`). 54.41 M (G) + 2.77 M (D) parameters.
    pub fn official_256() -> Self {
        Self::with(256, 8, 64, 64)
    }

    /// The official layout at 64 px (`UnetGenerator(num_downs = 6)`, which `define_G` has no name
    /// for), ngf = ndf = 64: one dropout level. 29.24 M + 2.77 M parameters.
    pub fn official_64() -> Self {
        Self::with(64, 6, 64, 64)
    }

    /// NOTE: the preset for 64 px on the 2-core CPU: the official layout with num_downs = 6 and
    /// ngf = ndf = 32 (a quarter of the parameters: 7.31 M for G, 0.70 M for D). Everything else
    /// (BatchNorm, dropout 0.5 on the one level above the innermost, n_layers 3, lambda 100) is
    /// the official one.
    pub fn narrow_64() -> Self {
        Self::with(64, 6, 32, 32)
    }

    /// A tiny config for tests and committed parity fixtures (ngf = ndf = 2, 64 px; 29 k + 3 k
    /// parameters).
    pub fn tiny_64() -> Self {
        Self::with(64, 6, 2, 2)
    }

    fn with(image_size: usize, num_downs: usize, ngf: usize, ndf: usize) -> Self {
        let generator = UnetConfig {
            input_nc: 1,
            output_nc: 3,
            num_downs,
            ngf,
            norm: NormKind::Batch,
            use_dropout: true,
        };
        Self {
            image_size,
            discriminator: PatchGanConfig {
                input_nc: generator.input_nc + generator.output_nc,
                ndf,
                n_layers: 3,
                norm: NormKind::Batch,
            },
            generator,
            lambda_l1: 100.0,
        }
    }

    /// The same config with other channel counts (D follows: `input_nc + output_nc`).
    pub fn with_channels(mut self, input_nc: usize, output_nc: usize) -> Self {
        self.generator.input_nc = input_nc;
        self.generator.output_nc = output_nc;
        self.discriminator.input_nc = input_nc + output_nc;
        self
    }

    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        self.discriminator.validate()?;
        let m = self.generator.min_size();
        if self.image_size == 0 || !self.image_size.is_multiple_of(m) {
            return Err(BaselinesError::Config(format!(
                "image_size {} must be a positive multiple of 2^num_downs = {m}",
                self.image_size
            )));
        }
        if self.discriminator.input_nc != self.generator.input_nc + self.generator.output_nc {
            return Err(BaselinesError::Config(format!(
                "pix2pix D judges cat(sketch, image): input_nc {} != {} + {}",
                self.discriminator.input_nc, self.generator.input_nc, self.generator.output_nc
            )));
        }
        if self.discriminator.output_size(self.image_size).is_none() {
            return Err(BaselinesError::Config(format!(
                "image_size {} is too small for a PatchGAN with {} layers",
                self.image_size, self.discriminator.n_layers
            )));
        }
        if !(self.lambda_l1.is_finite() && self.lambda_l1 >= 0.0) {
            return Err(BaselinesError::Config(format!(
                "lambda_l1 = {} must be finite and >= 0",
                self.lambda_l1
            )));
        }
        Ok(())
    }
}
