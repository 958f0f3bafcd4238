//! torchvision `alexnet().features` up to relu5 (index 11; the final max pool is not run),
//! returning the LPIPS taps `relu1`..`relu5` (outputs of feature indices 1, 4, 7, 9, 11;
//! channels 64, 192, 384, 256, 256).
//!
//! Parameter names are torchvision's `features.{0,3,6,8,10}.{weight,bias}`. The two 3x3/s2 max
//! pools use [`crate::ops::max_pool2d`], which has a backward (candle's has none for
//! kernel != stride), so LPIPS-alex can be a training loss.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use crate::error::{Result, check_nchw};
use crate::features::FeatureMaps;
use crate::ops;

pub const ALEXNET_TAPS: [&str; 5] = ["relu1", "relu2", "relu3", "relu4", "relu5"];

/// AlexNet feature trunk returning the five LPIPS taps.
#[derive(Debug, Clone)]
pub struct AlexNetFeatures {
    convs: Vec<Conv2d>,
}

impl AlexNetFeatures {
    /// Builds from torchvision-named parameters under `vb` (root of an `alexnet` state dict).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        // (index, in, out, kernel, stride, padding) as in torchvision.models.AlexNet.
        let spec = [
            (0, 3, 64, 11, 4, 2),
            (3, 64, 192, 5, 1, 2),
            (6, 192, 384, 3, 1, 1),
            (8, 384, 256, 3, 1, 1),
            (10, 256, 256, 3, 1, 1),
        ];
        let convs = spec
            .iter()
            .map(|&(i, cin, cout, k, stride, padding)| {
                let cfg = Conv2dConfig {
                    padding,
                    stride,
                    ..Default::default()
                };
                Ok(candle_nn::conv2d(cin, cout, k, cfg, f.pp(i))?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { convs })
    }

    /// Loads a torchvision `alexnet` state dict from safetensors (classifier keys ignored).
    pub fn load(
        path: &std::path::Path,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> Result<Self> {
        crate::weights::load_verified(path, dtype, device, Self::new)
    }

    /// Runs the trunk on `[B, 3, H, W]` (H, W >= 31 so every stage is non-empty).
    pub fn forward(&self, x: &Tensor) -> Result<FeatureMaps> {
        check_nchw("AlexNet input", x, 3, 31)?;
        let mut maps = FeatureMaps::new();
        let mut h = x.clone();
        for (i, c) in self.convs.iter().enumerate() {
            // Max pools (features.2 and features.5) precede conv 1 and conv 2.
            if i == 1 || i == 2 {
                h = ops::max_pool2d(&h, 3, 2, 0)?;
            }
            h = c.forward(&h)?.relu()?;
            maps.push(ALEXNET_TAPS[i], h.clone());
        }
        Ok(maps)
    }
}
