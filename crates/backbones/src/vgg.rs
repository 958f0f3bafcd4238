//! torchvision `vgg16().features` up to relu5_3 (index 29; the final max pool is not run),
//! returning the taps LPIPS and DISTS use: `relu1_2`, `relu2_2`, `relu3_3`, `relu4_3`, `relu5_3`
//! (outputs of feature indices 3, 8, 15, 22, 29; channels 64, 128, 256, 512, 512).
//!
//! Parameter names are torchvision's `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.{weight,bias}`.
//! [`VggPool::L2`] swaps each 2x2 max pool (indices 4, 9, 16, 23) for DISTS's L2 pooling
//! ([`crate::ops::l2_pool`]); the conv weights are the same torchvision ones.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Result, check_nchw};
use crate::features::FeatureMaps;
use crate::ops;

/// The pooling between VGG stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum VggPool {
    /// torchvision `MaxPool2d(2, 2)` (LPIPS).
    #[default]
    Max,
    /// DISTS `L2pooling(filter_size=5, stride=2)`: sqrt(blur3x3(x^2)), stride 2, padding 1.
    L2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vgg16Config {
    pub pool: VggPool,
}

impl Vgg16Config {
    /// LPIPS `vgg` trunk.
    pub fn lpips() -> Self {
        Self { pool: VggPool::Max }
    }
    /// DISTS trunk.
    pub fn dists() -> Self {
        Self { pool: VggPool::L2 }
    }
}

/// `(feature index, in, out)` of VGG16's 13 convs, grouped by stage.
const STAGES: [&[(usize, usize, usize)]; 5] = [
    &[(0, 3, 64), (2, 64, 64)],
    &[(5, 64, 128), (7, 128, 128)],
    &[(10, 128, 256), (12, 256, 256), (14, 256, 256)],
    &[(17, 256, 512), (19, 512, 512), (21, 512, 512)],
    &[(24, 512, 512), (26, 512, 512), (28, 512, 512)],
];

pub const VGG16_TAPS: [&str; 5] = ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"];

/// VGG16 feature trunk returning the five LPIPS/DISTS taps.
#[derive(Debug, Clone)]
pub struct Vgg16Features {
    config: Vgg16Config,
    stages: Vec<Vec<Conv2d>>,
}

impl Vgg16Features {
    /// Builds from torchvision-named parameters under `vb` (pass the root of a full `vgg16`
    /// state dict: the `features.` prefix is added here).
    pub fn new(config: Vgg16Config, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let cfg = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let stages = STAGES
            .iter()
            .map(|convs| {
                convs
                    .iter()
                    .map(|&(i, cin, cout)| Ok(candle_nn::conv2d(cin, cout, 3, cfg, f.pp(i))?))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { config, stages })
    }

    /// Loads a torchvision `vgg16` state dict from safetensors (the classifier keys are ignored).
    pub fn load(
        path: &std::path::Path,
        config: Vgg16Config,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> Result<Self> {
        crate::weights::load_verified(path, dtype, device, |vb| Self::new(config, vb))
    }

    pub fn config(&self) -> &Vgg16Config {
        &self.config
    }

    /// Runs the trunk on `[B, 3, H, W]` (H, W >= 16 so relu5_3 is non-empty). The input is used
    /// as given: LPIPS/DISTS apply their own scaling first.
    pub fn forward(&self, x: &Tensor) -> Result<FeatureMaps> {
        check_nchw("VGG16 input", x, 3, 16)?;
        let mut maps = FeatureMaps::new();
        let mut h = x.clone();
        for (s, convs) in self.stages.iter().enumerate() {
            if s > 0 {
                h = match self.config.pool {
                    VggPool::Max => ops::max_pool2d(&h, 2, 2, 0)?,
                    VggPool::L2 => ops::l2_pool(&h)?,
                };
            }
            for c in convs {
                h = c.forward(&h)?.relu()?;
            }
            maps.push(VGG16_TAPS[s], h.clone());
        }
        Ok(maps)
    }
}
