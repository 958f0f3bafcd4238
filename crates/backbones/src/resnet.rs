//! torchvision `resnet18/34/50/101` (`torchvision.models.resnet.ResNet` with `BasicBlock` /
//! `Bottleneck`, v1.5: the stride sits on the bottleneck's 3x3 conv), returning the stem and
//! C2..C5 feature maps plus the global-average-pooled vector.
//!
//! Parameter names equal torchvision's state-dict keys: `conv1`, `bn1`,
//! `layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}`, `fc`.
//!
//! Taps returned by [`ResNet::forward_t`] (for an H x W input):
//! - `stem`: relu(bn1(conv1(x))), 64 ch, H/2 (before the max pool);
//! - `c2`..`c5`: outputs of layer1..layer4, strides 4, 8, 16, 32;
//!   channels 64/128/256/512 (ResNet-18/34) or 256/512/1024/2048 (ResNet-50/101);
//! - `pool`: `[B, C]` global average of `c5` (the MoCo / pSp feature before `fc`);
//! - `logits`: `[B, num_classes]`, only when the config has an `fc`.
//!
//! The stem max pool (3x3, stride 2, padding 1) uses [`crate::ops::max_pool2d`], which has a
//! backward (candle's own has none for kernel != stride).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{BackboneError, Result, check_nchw};
use crate::features::FeatureMaps;
use crate::norm::{BN_EPS, BatchNorm2d};
use crate::ops;

/// The torchvision depths implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResNetDepth {
    R18,
    R34,
    R50,
    R101,
}

impl ResNetDepth {
    /// Blocks per stage (layer1..layer4).
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R34 | Self::R50 => [3, 4, 6, 3],
            Self::R101 => [3, 4, 23, 3],
        }
    }

    pub fn bottleneck(self) -> bool {
        matches!(self, Self::R50 | Self::R101)
    }

    /// Channel multiplier of a block's output over its width (1 basic, 4 bottleneck).
    pub fn expansion(self) -> usize {
        if self.bottleneck() { 4 } else { 1 }
    }

    /// Channels of C2..C5.
    pub fn stage_channels(self) -> [usize; 4] {
        let e = self.expansion();
        [64 * e, 128 * e, 256 * e, 512 * e]
    }
}

/// How the input channels beyond RGB are initialised when a 3-channel `conv1.weight` is adapted
/// (see [`adapt_conv1_weight`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ExtraChannelInit {
    /// Each extra channel gets the mean of the three RGB filters (a grey-level detector; keeps
    /// the response scale of pretrained filters). The default.
    MeanOfRgb,
    /// Extra channels start at zero: the network initially ignores them and computes exactly
    /// the pretrained function of the RGB channels.
    Zeros,
    /// ReStyle / HyperStyle practice: i.i.d. normal with standard deviation `std` (their code
    /// uses `torch.randn`, std 1), drawn from the workspace's seeded ChaCha8 stream.
    Normal { seed: u64, std: f64 },
}

/// Configuration of a [`ResNet`]; the presets are torchvision's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub depth: ResNetDepth,
    /// Channels of the input image (3 for RGB; `conv1.weight` is `[64, in_channels, 7, 7]`).
    pub in_channels: usize,
    /// `Some(n)` builds `fc` (`[n, C5]` + bias); `None` drops it (MoCo, pSp-style encoders).
    pub num_classes: Option<usize>,
}

impl ResNetConfig {
    fn preset(depth: ResNetDepth) -> Self {
        Self {
            depth,
            in_channels: 3,
            num_classes: Some(1000),
        }
    }
    pub fn resnet18() -> Self {
        Self::preset(ResNetDepth::R18)
    }
    pub fn resnet34() -> Self {
        Self::preset(ResNetDepth::R34)
    }
    pub fn resnet50() -> Self {
        Self::preset(ResNetDepth::R50)
    }
    pub fn resnet101() -> Self {
        Self::preset(ResNetDepth::R101)
    }
    /// The MoCo-v2 feature extractor: ResNet-50 without `fc` (the similarity loss uses `pool`).
    pub fn moco_v2() -> Self {
        Self {
            num_classes: None,
            ..Self::resnet50()
        }
    }
    pub fn with_in_channels(self, in_channels: usize) -> Self {
        Self {
            in_channels,
            ..self
        }
    }
    pub fn without_fc(self) -> Self {
        Self {
            num_classes: None,
            ..self
        }
    }
}

/// A bias-free `k x k` [`Conv2d`] with the given stride and padding, initialised like
/// `candle_nn::conv2d_no_bias` when `vb` creates it.
pub(crate) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Ok(Conv2d {
        weight: vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?,
        stride,
        padding,
    })
}

/// A bias-free square convolution with torchvision's parameter name (`<name>.weight`,
/// `[out, in, k, k]`), computed by [`s2m_kernels::conv::conv2d`]: on the CPU its f32 forward is the
/// block im2col + GEMM kernel and its input gradient a GEMM convolution (candle's op elsewhere).
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// The weight `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        s2m_kernels::conv::conv2d(x, &self.weight, self.padding, self.stride)
    }
}

/// `downsample = Sequential(conv1x1(stride), BatchNorm2d)` when the shape changes.
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl Downsample {
    pub fn new(cin: usize, cout: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(cin, cout, 1, stride, 0, vb.pp("0"))?,
            bn: BatchNorm2d::new(cout, BN_EPS, vb.pp("1"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv.forward(x)?, train)
    }
}

/// torchvision `BasicBlock` (ResNet-18/34): conv3x3(stride)-bn-relu-conv3x3-bn + identity, relu.
#[derive(Debug, Clone)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    pub fn new(cin: usize, width: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let downsample = if stride != 1 || cin != width {
            Some(Downsample::new(cin, width, stride, vb.pp("downsample"))?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv(cin, width, 3, stride, 1, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(width, BN_EPS, vb.pp("bn1"))?,
            conv2: conv(width, width, 3, 1, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(width, BN_EPS, vb.pp("bn2"))?,
            downsample,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self.bn2.forward_t(&self.conv2.forward(&y)?, train)?;
        let id = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        Ok((y + id)?.relu()?)
    }
}

/// torchvision `Bottleneck` (ResNet-50/101, v1.5): conv1x1-bn-relu, conv3x3(stride)-bn-relu,
/// conv1x1(x4)-bn, + identity, relu.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    conv3: Conv2d,
    bn3: BatchNorm2d,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    pub fn new(cin: usize, width: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let cout = width * 4;
        let downsample = if stride != 1 || cin != cout {
            Some(Downsample::new(cin, cout, stride, vb.pp("downsample"))?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv(cin, width, 1, 1, 0, vb.pp("conv1"))?,
            bn1: BatchNorm2d::new(width, BN_EPS, vb.pp("bn1"))?,
            conv2: conv(width, width, 3, stride, 1, vb.pp("conv2"))?,
            bn2: BatchNorm2d::new(width, BN_EPS, vb.pp("bn2"))?,
            conv3: conv(width, cout, 1, 1, 0, vb.pp("conv3"))?,
            bn3: BatchNorm2d::new(cout, BN_EPS, vb.pp("bn3"))?,
            downsample,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let y = self
            .bn2
            .forward_t(&self.conv2.forward(&y)?, train)?
            .relu()?;
        let y = self.bn3.forward_t(&self.conv3.forward(&y)?, train)?;
        let id = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        Ok((y + id)?.relu()?)
    }
}

/// One residual block of either kind.
#[derive(Debug, Clone)]
pub enum ResBlock {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl ResBlock {
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Self::Basic(b) => b.forward_t(x, train),
            Self::Bottleneck(b) => b.forward_t(x, train),
        }
    }
}

/// Builds torchvision's `layer{n}`: `blocks` blocks under `vb` (`vb.pp("0")`, ...), the first
/// with `stride`. Returns the blocks and the output channels. Public so that encoders with other
/// stems (ReStyle's `body.N` naming) can reuse the blocks.
pub fn make_layer(
    depth: ResNetDepth,
    cin: usize,
    width: usize,
    blocks: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<(Vec<ResBlock>, usize)> {
    let mut out = Vec::with_capacity(blocks);
    let mut c = cin;
    for i in 0..blocks {
        let s = if i == 0 { stride } else { 1 };
        if depth.bottleneck() {
            out.push(ResBlock::Bottleneck(Bottleneck::new(
                c,
                width,
                s,
                vb.pp(i),
            )?));
            c = width * 4;
        } else {
            out.push(ResBlock::Basic(BasicBlock::new(c, width, s, vb.pp(i))?));
            c = width;
        }
    }
    Ok((out, c))
}

/// A torchvision ResNet returning named feature maps (see the module docs for the taps).
#[derive(Debug, Clone)]
pub struct ResNet {
    config: ResNetConfig,
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: [Vec<ResBlock>; 4],
    fc: Option<Linear>,
}

const STAGE_TAPS: [&str; 4] = ["c2", "c3", "c4", "c5"];

impl ResNet {
    /// Builds the network, reading torchvision-named parameters from `vb`.
    pub fn new(config: ResNetConfig, vb: VarBuilder) -> Result<Self> {
        if config.in_channels == 0 {
            return Err(BackboneError::Config(
                "ResNet in_channels must be positive".into(),
            ));
        }
        let d = config.depth;
        let conv1 = conv(config.in_channels, 64, 7, 2, 3, vb.pp("conv1"))?;
        let bn1 = BatchNorm2d::new(64, BN_EPS, vb.pp("bn1"))?;
        let blocks = d.blocks();
        let widths = [64, 128, 256, 512];
        let mut c = 64;
        let mut layers: [Vec<ResBlock>; 4] = Default::default();
        for s in 0..4 {
            let stride = if s == 0 { 1 } else { 2 };
            let (l, cout) = make_layer(
                d,
                c,
                widths[s],
                blocks[s],
                stride,
                vb.pp(format!("layer{}", s + 1)),
            )?;
            layers[s] = l;
            c = cout;
        }
        let fc = match config.num_classes {
            Some(n) => Some(candle_nn::linear(c, n, vb.pp("fc"))?),
            None => None,
        };
        Ok(Self {
            config,
            conv1,
            bn1,
            layers,
            fc,
        })
    }

    /// Loads torchvision-named weights from a safetensors file (see `tools/backbones_convert.py`),
    /// verifying every key and shape first. When `config.in_channels != 3` and the file holds a
    /// 3-channel `conv1.weight`, it is adapted with [`adapt_conv1_weight`] and `extra`.
    pub fn load(
        path: &std::path::Path,
        config: ResNetConfig,
        extra: ExtraChannelInit,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tensors = crate::weights::read_safetensors(path, device)?;
        Self::from_tensors(
            &path.display().to_string(),
            tensors,
            config,
            extra,
            dtype,
            device,
        )
    }

    /// Like [`ResNet::load`] from an in-memory map of torchvision-named tensors.
    pub fn from_tensors(
        source_name: &str,
        mut tensors: std::collections::HashMap<String, Tensor>,
        config: ResNetConfig,
        extra: ExtraChannelInit,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if let Some(w) = tensors.get("conv1.weight")
            && w.rank() == 4
            && w.dim(1)? == 3
            && config.in_channels != 3
        {
            let adapted = adapt_conv1_weight(w, config.in_channels, extra)?;
            tensors.insert("conv1.weight".into(), adapted);
        }
        crate::weights::build_verified(source_name, tensors, dtype, device, |vb| {
            Self::new(config, vb)
        })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// Channels of the `pool` vector (512 for ResNet-18/34, 2048 for ResNet-50/101).
    pub fn feature_dim(&self) -> usize {
        self.config.depth.stage_channels()[3]
    }

    /// Runs the network; `train` selects batch-statistics BatchNorm. Returns the taps `stem`,
    /// `c2`..`c5`, `pool` and, with an `fc`, `logits`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<FeatureMaps> {
        check_nchw("ResNet input", x, self.config.in_channels, 1)?;
        let mut maps = FeatureMaps::new();
        let stem = self.bn1.forward_t(&self.conv1.forward(x)?, train)?.relu()?;
        let mut h = ops::max_pool2d(&stem, 3, 2, 1)?;
        maps.push("stem", stem);
        for (layer, name) in self.layers.iter().zip(STAGE_TAPS) {
            for b in layer {
                h = b.forward_t(&h, train)?;
            }
            maps.push(name, h.clone());
        }
        let pool = ops::global_avg_pool(&h)?;
        if let Some(fc) = &self.fc {
            maps.push("logits", fc.forward(&pool)?);
        }
        maps.push("pool", pool);
        Ok(maps)
    }

    /// Eval-mode forward (frozen BatchNorm statistics).
    pub fn forward(&self, x: &Tensor) -> Result<FeatureMaps> {
        self.forward_t(x, false)
    }

    /// Eval-mode `[B, C]` pooled features only (the MoCo similarity input).
    pub fn forward_pooled(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward(x)?.require("pool")?.clone())
    }
}

/// Adapts a pretrained 3-channel `conv1.weight` (`[O, 3, kh, kw]`) to `in_channels` inputs.
///
/// - `in_channels == 3`: unchanged.
/// - `in_channels == 1`: the **sum** of the RGB filters, so a grey image x gives exactly the
///   pretrained response to the RGB image (x, x, x).
/// - `in_channels > 3`: channels 0..3 keep the RGB filters (feed the RGB image first), each
///   extra channel is initialised by `extra` ([`ExtraChannelInit`]). This is the ReStyle /
///   HyperStyle layout; they use `Normal { std: 1.0 }` for the extras.
/// - `in_channels == 2`: rejected (no established rule).
pub fn adapt_conv1_weight(
    w: &Tensor,
    in_channels: usize,
    extra: ExtraChannelInit,
) -> Result<Tensor> {
    if w.rank() != 4 || w.dim(1)? != 3 {
        return Err(BackboneError::Shape {
            what: "conv1.weight to adapt".into(),
            expected: "[O, 3, kh, kw]".into(),
            got: w.dims().to_vec(),
        });
    }
    let (o, _, kh, kw) = w.dims4()?;
    match in_channels {
        3 => Ok(w.clone()),
        1 => Ok(w.sum_keepdim(1)?),
        2 | 0 => Err(BackboneError::Config(format!(
            "cannot adapt a 3-channel conv1 to {in_channels} input channels: supported are 1 \
             (sum of RGB filters), 3, and more than 3 (RGB first, extras initialised)"
        ))),
        n => {
            let extra_n = n - 3;
            let extra_t = match extra {
                ExtraChannelInit::MeanOfRgb => w
                    .mean_keepdim(1)?
                    .broadcast_as((o, extra_n, kh, kw))?
                    .contiguous()?,
                ExtraChannelInit::Zeros => {
                    Tensor::zeros((o, extra_n, kh, kw), w.dtype(), w.device())?
                }
                ExtraChannelInit::Normal { seed, std } => {
                    let mut rng = s2m_core::rng::rng_from_seed(seed);
                    let v: Vec<f32> = s2m_core::rng::randn_vec(&mut rng, o * extra_n * kh * kw)
                        .into_iter()
                        .map(|z| (z as f64 * std) as f32)
                        .collect();
                    Tensor::from_vec(v, (o, extra_n, kh, kw), w.device())?.to_dtype(w.dtype())?
                }
            };
            Ok(Tensor::cat(&[w, &extra_t], 1)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::synthetic_var_builder;

    #[test]
    fn taps_have_torchvision_shapes() {
        let dev = Device::Cpu;
        let net = ResNet::new(
            ResNetConfig::resnet18(),
            synthetic_var_builder(DType::F32, &dev),
        )
        .unwrap();
        let x = Tensor::zeros((2, 3, 64, 48), DType::F32, &dev).unwrap();
        let m = net.forward(&x).unwrap();
        assert_eq!(
            m.names(),
            ["stem", "c2", "c3", "c4", "c5", "logits", "pool"]
        );
        assert_eq!(m.get("stem").unwrap().dims(), &[2, 64, 32, 24]);
        assert_eq!(m.get("c2").unwrap().dims(), &[2, 64, 16, 12]);
        assert_eq!(m.get("c5").unwrap().dims(), &[2, 512, 2, 2]);
        assert_eq!(m.get("pool").unwrap().dims(), &[2, 512]);
        assert_eq!(m.get("logits").unwrap().dims(), &[2, 1000]);
    }

    #[test]
    fn param_names_match_torchvision() {
        let spec =
            crate::weights::record_params(|vb| ResNet::new(ResNetConfig::resnet50(), vb)).unwrap();
        let names: Vec<&str> = spec.iter().map(|(n, _)| n.as_str()).collect();
        for k in [
            "conv1.weight",
            "bn1.running_var",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.bias",
            "layer3.5.conv3.weight",
            "layer4.2.bn3.running_mean",
            "fc.weight",
        ] {
            assert!(names.contains(&k), "{k} missing");
        }
        // torchvision resnet50 state dict without num_batches_tracked: 53 convs + 53 BNs x 4
        // tensors + fc weight/bias = 53 + 212 + 2 = 267.
        assert_eq!(spec.len(), 267);
        let n_params: usize = spec
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n_params, 25_557_032, "torchvision resnet50 parameter count");
    }

    #[test]
    fn wrong_input_channels_is_a_shape_error() {
        let dev = Device::Cpu;
        let net = ResNet::new(
            ResNetConfig::resnet18(),
            synthetic_var_builder(DType::F32, &dev),
        )
        .unwrap();
        let x = Tensor::zeros((1, 4, 32, 32), DType::F32, &dev).unwrap();
        let e = net.forward(&x).unwrap_err().to_string();
        assert!(
            e.contains("ResNet input") && e.contains("[1, 4, 32, 32]"),
            "{e}"
        );
    }

    #[test]
    fn adapted_conv1_keeps_rgb_and_initialises_extras() {
        let dev = Device::Cpu;
        let w = crate::synthetic::synthetic_tensor(
            "conv1.weight",
            &(64, 3, 7, 7).into(),
            DType::F32,
            &dev,
        )
        .unwrap();
        let a = adapt_conv1_weight(&w, 5, ExtraChannelInit::MeanOfRgb).unwrap();
        assert_eq!(a.dims(), &[64, 5, 7, 7]);
        let rgb = a.narrow(1, 0, 3).unwrap();
        assert_eq!(
            (rgb - &w)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        let e4 = a.narrow(1, 4, 1).unwrap();
        let mean = w.mean_keepdim(1).unwrap();
        assert!(
            (e4 - mean)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                < 1e-7
        );
        let z = adapt_conv1_weight(&w, 4, ExtraChannelInit::Zeros).unwrap();
        assert_eq!(
            z.narrow(1, 3, 1)
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        let n1 = adapt_conv1_weight(&w, 4, ExtraChannelInit::Normal { seed: 3, std: 1.0 }).unwrap();
        let n2 = adapt_conv1_weight(&w, 4, ExtraChannelInit::Normal { seed: 3, std: 1.0 }).unwrap();
        let d = (n1.narrow(1, 3, 1).unwrap() - n2.narrow(1, 3, 1).unwrap()).unwrap();
        assert_eq!(
            d.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0,
            "seeded"
        );
        assert!(adapt_conv1_weight(&w, 2, ExtraChannelInit::Zeros).is_err());
    }

    #[test]
    fn grey_adaptation_is_exact_for_replicated_input() {
        let dev = Device::Cpu;
        let vb = synthetic_var_builder(DType::F32, &dev);
        let mut tensors = std::collections::HashMap::new();
        let spec =
            crate::weights::record_params(|vb| ResNet::new(ResNetConfig::resnet18(), vb)).unwrap();
        for (k, s) in &spec {
            tensors.insert(k.clone(), vb.get(s.as_slice(), k).unwrap());
        }
        let rgb = ResNet::new(ResNetConfig::resnet18(), vb.clone()).unwrap();
        let grey = ResNet::from_tensors(
            "synthetic",
            tensors,
            ResNetConfig::resnet18().with_in_channels(1),
            ExtraChannelInit::Zeros,
            DType::F32,
            &dev,
        )
        .unwrap();
        let g = Tensor::from_vec(
            (0..32 * 32)
                .map(|i| ((i as f32) * 0.37).sin())
                .collect::<Vec<_>>(),
            (1, 1, 32, 32),
            &dev,
        )
        .unwrap();
        let x3 = Tensor::cat(&[&g, &g, &g], 1).unwrap();
        let a = rgb.forward_pooled(&x3).unwrap();
        let b = grey.forward_pooled(&g).unwrap();
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "{d}");
    }

    #[test]
    fn stem_max_pool_has_a_backward() {
        let dev = Device::Cpu;
        let net = ResNet::new(
            ResNetConfig::resnet18().without_fc(),
            synthetic_var_builder(DType::F32, &dev),
        )
        .unwrap();
        let x =
            candle_core::Var::from_tensor(&Tensor::ones((1, 3, 32, 32), DType::F32, &dev).unwrap())
                .unwrap();
        let loss = net
            .forward_pooled(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        assert_eq!(g.get(&x).unwrap().dims(), &[1, 3, 32, 32]);
    }
}
