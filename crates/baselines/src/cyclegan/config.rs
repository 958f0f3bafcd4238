//! CycleGAN configuration: the official `resnet_9blocks` + `basic` PatchGAN (InstanceNorm, LSGAN,
//! lambda 10 / 10, identity 0.5, pool 50) and the narrow 64 px preset for the CPU.

use serde::{Deserialize, Serialize};

use crate::error::{BaselinesError, Result};
use crate::pix2pix::{NormKind, PatchGanConfig};

/// `ResnetGenerator(input_nc, output_nc, ngf, norm_layer, use_dropout, n_blocks,
/// padding_type='reflect')` (`--netG resnet_9blocks` / `resnet_6blocks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResnetConfig {
    /// Channels of the input.
    pub input_nc: usize,
    /// Channels of the output.
    pub output_nc: usize,
    /// Filters of the first 7x7 conv; the two downsamplings give `2 ngf` and `4 ngf`.
    pub ngf: usize,
    /// Residual blocks at `4 ngf` channels (6 at <= 128 px, 9 at 256 px officially).
    pub n_blocks: usize,
    pub norm: NormKind,
    /// Dropout 0.5 inside each block (CycleGAN: off, `no_dropout`); shifts the second conv of a
    /// block from `conv_block.5` to `conv_block.6`.
    pub use_dropout: bool,
}

impl ResnetConfig {
    /// The channels of the residual blocks (`ngf * 4`).
    pub fn block_channels(&self) -> usize {
        self.ngf * 4
    }

    pub fn validate(&self) -> Result<()> {
        if self.input_nc == 0 || self.output_nc == 0 || self.ngf == 0 {
            return Err(BaselinesError::Config(format!(
                "ResNet generator channels must be positive (input_nc {}, output_nc {}, ngf {})",
                self.input_nc, self.output_nc, self.ngf
            )));
        }
        if self.n_blocks > 64 {
            return Err(BaselinesError::Config(format!(
                "ResNet generator n_blocks = {} (at most 64 here)",
                self.n_blocks
            )));
        }
        Ok(())
    }

    /// Whether `size` px is accepted: a multiple of 4 (two stride-2 convs and their transposes
    /// give the size back), and large enough for the reflection pads (3 at full size, 1 at
    /// quarter size).
    pub fn accepts_size(&self, size: usize) -> bool {
        size >= 8 && size.is_multiple_of(4)
    }
}

/// The weights of the CycleGAN objective (`--lambda_A`, `--lambda_B`, `--lambda_identity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleLossConfig {
    /// Weight of the cycle loss `|G_B(G_A(A)) - A|_1` (10).
    pub lambda_a: f64,
    /// Weight of the cycle loss `|G_A(G_B(B)) - B|_1` (10).
    pub lambda_b: f64,
    /// Identity weight relative to the cycle weights (0.5): `|G_A(B) - B|_1` is weighted
    /// `lambda_b * lambda_identity`, `|G_B(A) - A|_1` is weighted `lambda_a * lambda_identity`.
    /// Needs `input_nc == output_nc` when positive (the official code asserts it).
    pub lambda_identity: f64,
}

impl Default for CycleLossConfig {
    fn default() -> Self {
        Self {
            lambda_a: 10.0,
            lambda_b: 10.0,
            lambda_identity: 0.5,
        }
    }
}

/// A CycleGAN model: G_A (A -> B), G_B (B -> A), D_A (judges B images), D_B (judges A images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleGanConfig {
    /// Side of the (square) training images, a multiple of 4.
    pub image_size: usize,
    /// G_A: `input_nc -> output_nc`; G_B is the same with the channels swapped.
    pub generator: ResnetConfig,
    /// D_A's config (on `output_nc` channels); D_B is the same on `input_nc` channels.
    pub discriminator: PatchGanConfig,
    pub loss: CycleLossConfig,
    /// `--pool_size` (50); 0 disables the pool.
    pub pool_size: usize,
}

impl CycleGanConfig {
    /// The official CycleGAN defaults (`--netG resnet_9blocks --ngf 64 --norm instance`, no
    /// dropout, `--netD basic --ndf 64`, `--gan_mode lsgan`, lambda_A = lambda_B = 10,
    /// `--lambda_identity 0.5`, `--pool_size 50`) at 256 px, 3 channels on both sides.
    /// 11.378 M parameters per G, 2.765 M per D.
    pub fn official_256() -> Self {
        Self::with(256, 64, 64, 9)
    }

    /// The official layout at 64 px (`resnet_6blocks`, the official choice at <= 128 px),
    /// ngf = ndf = 64.
    pub fn official_64() -> Self {
        Self::with(64, 64, 64, 6)
    }

    /// NOTE: the preset for 64 px on the 2-core CPU: `resnet_6blocks` with ngf = ndf = 16
    /// (about 1/16 of the official parameters: 0.50 M per G, 0.17 M per D). Everything else
    /// (InstanceNorm, reflection padding, LSGAN, lambdas, pool 50) is the official one.
    pub fn narrow_64() -> Self {
        Self::with(64, 16, 16, 6)
    }

    /// A tiny config for tests and the committed parity fixture (ngf = ndf = 4, 6 blocks).
    pub fn tiny_64() -> Self {
        Self::with(64, 4, 4, 6)
    }

    fn with(image_size: usize, ngf: usize, ndf: usize, n_blocks: usize) -> Self {
        Self {
            image_size,
            generator: ResnetConfig {
                input_nc: 3,
                output_nc: 3,
                ngf,
                n_blocks,
                norm: NormKind::Instance,
                use_dropout: false,
            },
            discriminator: PatchGanConfig {
                input_nc: 3,
                ndf,
                n_layers: 3,
                norm: NormKind::Instance,
            },
            loss: CycleLossConfig::default(),
            pool_size: 50,
        }
    }

    /// The same config with other channel counts: G_A `input_nc -> output_nc`, D_A on
    /// `output_nc`. With different counts the identity loss is impossible (the official code
    /// asserts `input_nc == output_nc`), so `lambda_identity` is set to 0, as the official
    /// sketch setup requires (`--input_nc 1 --output_nc 3 --lambda_identity 0`).
    pub fn with_channels(mut self, input_nc: usize, output_nc: usize) -> Self {
        self.generator.input_nc = input_nc;
        self.generator.output_nc = output_nc;
        self.discriminator.input_nc = output_nc;
        if input_nc != output_nc {
            self.loss.lambda_identity = 0.0;
        }
        self
    }

    /// G_B's config (channels swapped).
    pub fn generator_b(&self) -> ResnetConfig {
        let mut g = self.generator.clone();
        std::mem::swap(&mut g.input_nc, &mut g.output_nc);
        g
    }

    /// D_A's config (judges domain-B images, `output_nc` channels).
    pub fn discriminator_a(&self) -> PatchGanConfig {
        let mut d = self.discriminator.clone();
        d.input_nc = self.generator.output_nc;
        d
    }

    /// D_B's config (judges domain-A images, `input_nc` channels).
    pub fn discriminator_b(&self) -> PatchGanConfig {
        let mut d = self.discriminator.clone();
        d.input_nc = self.generator.input_nc;
        d
    }

    pub fn validate(&self) -> Result<()> {
        self.generator.validate()?;
        self.discriminator.validate()?;
        if !self.generator.accepts_size(self.image_size) {
            return Err(BaselinesError::Config(format!(
                "image_size {} must be a multiple of 4 and at least 8",
                self.image_size
            )));
        }
        if self.discriminator.input_nc != self.generator.output_nc {
            return Err(BaselinesError::Config(format!(
                "D_A judges domain-B images: input_nc {} != G_A's output_nc {}",
                self.discriminator.input_nc, self.generator.output_nc
            )));
        }
        if self.discriminator.output_size(self.image_size).is_none() {
            return Err(BaselinesError::Config(format!(
                "image_size {} is too small for a PatchGAN with {} layers",
                self.image_size, self.discriminator.n_layers
            )));
        }
        let l = &self.loss;
        for (name, v) in [
            ("lambda_a", l.lambda_a),
            ("lambda_b", l.lambda_b),
            ("lambda_identity", l.lambda_identity),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(BaselinesError::Config(format!(
                    "{name} = {v} must be finite and >= 0"
                )));
            }
        }
        if l.lambda_identity > 0.0 && self.generator.input_nc != self.generator.output_nc {
            return Err(BaselinesError::Config(format!(
                "the identity loss needs input_nc == output_nc (got {} and {}); set lambda_identity to 0",
                self.generator.input_nc, self.generator.output_nc
            )));
        }
        Ok(())
    }
}
