//! ST-LPIPS, shift-tolerant LPIPS (abhijay9/ShiftTolerant-LPIPS, the `stlpips-pytorch` 0.0.2
//! package: `stlpips.py` `LPIPS(net=..., variant='shift_tolerant')` over
//! `invariant_networks.py` `alexnet`/`vggnet` and `models_lpf` `Downsample`).
//!
//! Same distance as LPIPS v0.1 (ScalingLayer, channel unit-normalisation, squared difference,
//! `lin{k}` 1x1 convs, spatial mean, sum over 5 taps); the trunks are anti-aliased and trained
//! from scratch (not ImageNet weights). Every strided op becomes stride 1 followed by a BlurPool
//! ([`crate::ops::blur_pool`]: reflection pad 2, binomial 3x3, stride 2):
//!
//! ```text
//! alex (state-dict names under net.):
//!   slice1: 0 conv 3->64 k11 s1 p2 | 1 BlurPool(64) | ReLU                  -> tap 1
//!   slice2: MaxPool 3/s1 | 4 BlurPool(64) | 5 conv 64->192 k5 p2 | ReLU     -> tap 2
//!   slice3: MaxPool 3/s1 | 8 BlurPool(192) | 9 conv 192->384 k3 p1 | ReLU   -> tap 3
//!   slice4: 11 conv 384->256 k3 p1 | ReLU                                    -> tap 4
//!   slice5: 13 conv 256->256 k3 p1 | ReLU                                    -> tap 5
//! vgg16: torchvision VGG16 features where every MaxPool(2, s2) is MaxPool(2, s1) + BlurPool:
//!   slice1: 0, 2 | slice2: 5 blur, 6, 8 | slice3: 11 blur, 12, 14, 16 |
//!   slice4: 19 blur, 20, 22, 24 | slice5: 27 blur, 28, 30, 32      (convs 3x3 p1, each + ReLU)
//! ```
//!
//! The weight files hold the whole network: `scaling_layer.{shift,scale}`, `net.slice*`
//! (convs and the BlurPool `filt` buffers) and `lin{0..4}.model.1.weight`; all are read.
//! `weights/stlpips_alex.safetensors` ships with the repository; the VGG file (59 MB) does not.
//!
//! NOTE: like [`crate::lpips`], the trunk runs once on `[x0; x1]` (separately for a constant
//! target), and the channel
//! normalisation keeps gradients finite at all-zero feature vectors.

use std::path::Path;

use backbones::ops::max_pool2d;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use crate::checks::{RANGE_TOL, check_pair, check_range};
use crate::error::Result;
use crate::lpips::{LinLayers, LpipsNet, run_pair, sum_layers};
use crate::ops::{self, BlurFilter};
use crate::weights;

fn conv(cin: usize, cout: usize, k: usize, padding: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        ..Default::default()
    };
    Ok(candle_nn::conv2d(cin, cout, k, cfg, vb)?)
}

fn blur(c: usize, vb: VarBuilder) -> Result<BlurFilter> {
    BlurFilter::new(&vb.get((c, 1, 3, 3), "filt")?)
}

/// Output side of `BlurPool` on a side of `n` (reflect pad 2, k3, s2); `None` when PyTorch's
/// reflection pad would reject it (pad must be < n).
fn blur_len(n: usize) -> Option<usize> {
    (n > 2).then(|| (n + 4 - 3) / 2 + 1)
}

/// One stage of the anti-aliased VGG: optional `(max pool 2/s1, BlurPool filt index, channels)`
/// then `(conv index, in, out)` 3x3 convs, each followed by ReLU.
type VggStage = (Option<(usize, usize)>, &'static [(usize, usize, usize)]);

const ST_VGG: [VggStage; 5] = [
    (None, &[(0, 3, 64), (2, 64, 64)]),
    (Some((5, 64)), &[(6, 64, 128), (8, 128, 128)]),
    (
        Some((11, 128)),
        &[(12, 128, 256), (14, 256, 256), (16, 256, 256)],
    ),
    (
        Some((19, 256)),
        &[(20, 256, 512), (22, 512, 512), (24, 512, 512)],
    ),
    (
        Some((27, 512)),
        &[(28, 512, 512), (30, 512, 512), (32, 512, 512)],
    ),
];

/// The anti-aliased AlexNet of ST-LPIPS (`invariant_networks.alexnet(variant='shift_tolerant')`).
#[derive(Debug, Clone)]
pub struct StAlexTrunk {
    conv1: Conv2d,
    blur1: BlurFilter,
    blur2: BlurFilter,
    conv2: Conv2d,
    blur3: BlurFilter,
    conv3: Conv2d,
    conv4: Conv2d,
    conv5: Conv2d,
}

impl StAlexTrunk {
    /// Reads `slice*.*` under `vb` (pass `vb.pp("net")` for a full ST-LPIPS state dict).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: conv(3, 64, 11, 2, vb.pp("slice1.0"))?,
            blur1: blur(64, vb.pp("slice1.1"))?,
            blur2: blur(64, vb.pp("slice2.4"))?,
            conv2: conv(64, 192, 5, 2, vb.pp("slice2.5"))?,
            blur3: blur(192, vb.pp("slice3.8"))?,
            conv3: conv(192, 384, 3, 1, vb.pp("slice3.9"))?,
            conv4: conv(384, 256, 3, 1, vb.pp("slice4.11"))?,
            conv5: conv(256, 256, 3, 1, vb.pp("slice5.13"))?,
        })
    }

    /// The five taps (relu1..relu5) of `[B, 3, H, W]` (already scaled).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let t1 = ops::blur_pool(&self.conv1.forward(x)?, &self.blur1)?.relu()?;
        let h = ops::blur_pool(&max_pool2d(&t1, 3, 1, 0)?, &self.blur2)?;
        let t2 = self.conv2.forward(&h)?.relu()?;
        let h = ops::blur_pool(&max_pool2d(&t2, 3, 1, 0)?, &self.blur3)?;
        let t3 = self.conv3.forward(&h)?.relu()?;
        let t4 = self.conv4.forward(&t3)?.relu()?;
        let t5 = self.conv5.forward(&t4)?.relu()?;
        Ok(vec![t1, t2, t3, t4, t5])
    }

    /// Whether a side of `n` pixels runs through the trunk (PyTorch's reflection pads need
    /// every padded map to be larger than 2).
    pub fn accepts(n: usize) -> bool {
        // conv k11 p2 (n - 6), BlurPool; max pool 3/s1 (-2), BlurPool; again.
        let Some(h) = n.checked_sub(6).and_then(blur_len) else {
            return false;
        };
        let Some(h) = h.checked_sub(2).and_then(blur_len) else {
            return false;
        };
        h.checked_sub(2).and_then(blur_len).is_some()
    }
}

/// The anti-aliased VGG16 of ST-LPIPS (`invariant_networks.vggnet(variant='shift_tolerant')`).
#[derive(Debug, Clone)]
pub struct StVggTrunk {
    stages: Vec<(Option<BlurFilter>, Vec<Conv2d>)>,
}

impl StVggTrunk {
    /// Reads `slice{1..5}.*` under `vb` (pass `vb.pp("net")` for a full ST-LPIPS state dict).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let stages = ST_VGG
            .iter()
            .enumerate()
            .map(|(s, (pool, convs))| {
                let svb = vb.pp(format!("slice{}", s + 1));
                let pool = match pool {
                    Some((i, c)) => Some(blur(*c, svb.pp(i))?),
                    None => None,
                };
                let convs = convs
                    .iter()
                    .map(|&(i, cin, cout)| conv(cin, cout, 3, 1, svb.pp(i)))
                    .collect::<Result<Vec<_>>>()?;
                Ok((pool, convs))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { stages })
    }

    /// The five taps (relu1_2..relu5_3) of `[B, 3, H, W]` (already scaled).
    pub fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = x.clone();
        let mut taps = Vec::with_capacity(5);
        for (pool, convs) in &self.stages {
            if let Some(f) = pool {
                h = ops::blur_pool(&max_pool2d(&h, 2, 1, 0)?, f)?;
            }
            for c in convs {
                h = c.forward(&h)?.relu()?;
            }
            taps.push(h.clone());
        }
        Ok(taps)
    }

    /// Whether a side of `n` pixels runs through the trunk.
    pub fn accepts(n: usize) -> bool {
        let mut h = n;
        for _ in 0..4 {
            match h.checked_sub(1).and_then(blur_len) {
                Some(v) => h = v,
                None => return false,
            }
        }
        h >= 1
    }
}

#[derive(Debug, Clone)]
enum StTrunk {
    Alex(Box<StAlexTrunk>),
    Vgg(StVggTrunk),
}

/// ST-LPIPS (see the module docs).
#[derive(Debug, Clone)]
pub struct StLpips {
    net: LpipsNet,
    trunk: StTrunk,
    lins: LinLayers,
    shift: Tensor,
    scale: Tensor,
    min_size: usize,
}

impl StLpips {
    /// Builds from a complete ST-LPIPS state dict under `vb` (`scaling_layer.*`, `net.*`, `lin*`).
    pub fn new(net: LpipsNet, vb: VarBuilder) -> Result<Self> {
        let shift = vb.pp("scaling_layer").get((1, 3, 1, 1), "shift")?;
        let scale = vb.pp("scaling_layer").get((1, 3, 1, 1), "scale")?;
        let trunk = match net {
            LpipsNet::Alex => StTrunk::Alex(Box::new(StAlexTrunk::new(vb.pp("net"))?)),
            LpipsNet::Vgg => StTrunk::Vgg(StVggTrunk::new(vb.pp("net"))?),
        };
        let lins = LinLayers::new(net, vb)?;
        let accepts: fn(usize) -> bool = match net {
            LpipsNet::Alex => StAlexTrunk::accepts,
            LpipsNet::Vgg => StVggTrunk::accepts,
        };
        let min_size = (1..512).find(|&n| accepts(n)).unwrap_or(512);
        Ok(Self {
            net,
            trunk,
            lins,
            shift,
            scale,
            min_size,
        })
    }

    /// Loads a converted ST-LPIPS file, checking every key and shape first.
    pub fn load(net: LpipsNet, path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let t = weights::read(path, device)?;
        Ok(backbones::weights::build_verified(
            &path.display().to_string(),
            t,
            dtype,
            device,
            |vb| {
                Self::new(net, vb).map_err(|e| match e {
                    crate::LossError::Backbone(b) => b,
                    other => backbones::BackboneError::Config(other.to_string()),
                })
            },
        )?)
    }

    /// Loads [`weights::STLPIPS_ALEX`] / [`weights::STLPIPS_VGG`] from `dir`.
    pub fn from_dir(net: LpipsNet, dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Self::load(net, &dir.join(Self::file_name(net)), dtype, device)
    }

    /// The shipped ST-LPIPS alex from the repository's `weights/` (works offline).
    pub fn shipped_alex(device: &Device) -> Result<Self> {
        Self::from_dir(
            LpipsNet::Alex,
            &weights::shipped_weights_dir(),
            DType::F32,
            device,
        )
    }

    /// The file name in a weights folder.
    pub fn file_name(net: LpipsNet) -> &'static str {
        match net {
            LpipsNet::Alex => weights::STLPIPS_ALEX,
            LpipsNet::Vgg => weights::STLPIPS_VGG,
        }
    }

    pub fn net(&self) -> LpipsNet {
        self.net
    }

    /// Smallest image side the anti-aliased trunk accepts (its reflection pads need room):
    /// 21 px for alex, 18 px for vgg.
    pub fn min_size(&self) -> usize {
        self.min_size
    }

    /// Per-layer distances (5 tensors `[B]`) without input checks.
    pub fn layers_unchecked(&self, x0: &Tensor, x1: &Tensor) -> Result<Vec<Tensor>> {
        let taps = |x: &Tensor| -> Result<Vec<Tensor>> {
            let x = ops::scale_input(x, &self.shift, &self.scale)?;
            match &self.trunk {
                StTrunk::Alex(t) => t.forward(&x),
                StTrunk::Vgg(t) => t.forward(&x),
            }
        };
        let (t0, t1) = run_pair(taps, x0, x1)?;
        self.lins.layer_distances(&t0, &t1)
    }

    /// ST-LPIPS `[B]` without input checks (differentiable w.r.t. both inputs).
    pub fn distance_unchecked(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        sum_layers(&self.layers_unchecked(x0, x1)?)
    }

    /// ST-LPIPS `[B]` between two `[B, 3, H, W]` batches in [-1, 1] (both ranges checked).
    pub fn distance(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        let what = format!("ST-LPIPS-{}", self.net.name());
        check_pair(&what, x0, x1, 3, self.min_size)?;
        check_range(&format!("{what} first image"), x0, -1.0, 1.0, RANGE_TOL)?;
        check_range(&format!("{what} second image"), x1, -1.0, 1.0, RANGE_TOL)?;
        self.distance_unchecked(x0, x1)
    }

    /// Training loss: batch mean of ST-LPIPS(pred, target); the target's range is checked,
    /// `pred` (an unclamped generator output) is not.
    pub fn loss(&self, pred: &Tensor, target: &Tensor) -> Result<Tensor> {
        let what = format!("ST-LPIPS-{} loss", self.net.name());
        check_pair(&what, pred, target, 3, self.min_size)?;
        check_range(&format!("{what} target"), target, -1.0, 1.0, RANGE_TOL)?;
        Ok(self.distance_unchecked(pred, target)?.mean_all()?)
    }
}
