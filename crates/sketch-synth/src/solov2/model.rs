//! The SOLOv2 network: ResNet backbone + FPN + instance head (category and kernel branches over
//! S x S grids with coordinate channels) + the unified mask-feature branch, under mmdetection 3.x
//! parameter names (`backbone.*`, `neck.*`, `mask_head.*`).
//!
//! Reference: mmdetection `mmdet/models/necks/fpn.py` (`FPN`),
//! `mmdet/models/dense_heads/solov2_head.py` (`SOLOV2Head`, `MaskFeatModule`) and
//! `solo_head.py` (`resize_feats`), read at 0bd9f8e; SOLOv2 paper (Wang et al., NeurIPS 2020).
//!
//! Every resize inside the graph is differentiable: bilinear via
//! [`backbones::ops::resize_bilinear`] (candle's `upsample_bilinear2d` has no backward) and
//! nearest via `index_select` (candle's `upsample_nearest2d` backward overwrites gradients,
//! which breaks the FPN where P5 is both upsampled and used directly).
//!
//! NOTE: the backbone always runs with frozen BatchNorm statistics (mmdet `norm_eval=True`);
//! `frozen_stages=1` (no gradient to the stem and layer1) is the optimiser's business.

use backbones::{ResNet, ResNetConfig, ops};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{GroupNorm, Init, VarBuilder};

use super::config::{MASK_STRIDE, NUM_LEVELS, SoloV2Config};
use super::error::{Result, SoloError, check_nchw};

/// GroupNorm epsilon (PyTorch default).
pub const GN_EPS: f64 = 1e-5;
/// Prior probability of the category bias init (`bias_prob = 0.01`).
pub const CLS_PRIOR: f64 = 0.01;

/// A stride-1 `k x k` convolution with padding `k / 2` (PyTorch `Conv2d`): the forward is
/// candle's `conv2d`, the backward [`s2m_kernels::conv::conv2d`]'s gemm-based input gradient
/// (candle's is a direct loop, several times slower than the forward on the CPU).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    padding: usize,
}

impl Conv {
    /// The weight `[Cout, Cin, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = s2m_kernels::conv::conv2d(x, &self.weight, self.padding, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
            None => Ok(y),
        }
    }
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    bias: Option<Init>,
    winit: Init,
    vb: VarBuilder,
) -> Result<Conv> {
    let weight = vb.get_with_hints((cout, cin, k, k), "weight", winit)?;
    let bias = match bias {
        Some(init) => Some(vb.get_with_hints(cout, "bias", init)?),
        None => None,
    };
    Ok(Conv {
        weight,
        bias,
        padding: k / 2,
    })
}

fn normal(std: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

/// mmcv `ConvModule(conv (no bias), GN, ReLU)`: parameters `conv.weight`, `gn.weight`, `gn.bias`.
#[derive(Debug, Clone)]
pub struct ConvGn {
    conv: Conv,
    gn: GroupNorm,
}

impl ConvGn {
    /// Builds the module (`k` x `k` conv, padding `k / 2`, normal(0.01) init, GN gamma 1 beta 0).
    pub fn new(cin: usize, cout: usize, k: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        let conv = conv(cin, cout, k, None, normal(0.01), vb.pp("conv"))?;
        let g = vb.pp("gn");
        let w = g.get_with_hints(cout, "weight", Init::Const(1.0))?;
        let b = g.get_with_hints(cout, "bias", Init::Const(0.0))?;
        let gn = GroupNorm::new(w, b, cout, groups, GN_EPS)?;
        Ok(Self { conv, gn })
    }

    /// conv -> GN -> ReLU.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.gn.forward(&self.conv.forward(x)?)?.relu()?)
    }
}

/// Differentiable `F.interpolate(mode="nearest", size=(h, w))` (PyTorch's legacy nearest:
/// `src = floor(dst * in / out)`).
pub fn resize_nearest(x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let idx = |inp: usize, out: usize, dev: &Device| -> Result<Tensor> {
        let scale = inp as f32 / out as f32;
        let v: Vec<u32> = (0..out)
            .map(|o| ((o as f32 * scale).floor() as usize).min(inp - 1) as u32)
            .collect();
        Ok(Tensor::new(v, dev)?)
    };
    let (ih, iw) = (x.dim(2)?, x.dim(3)?);
    let mut y = x.clone();
    if iw != w {
        y = y.index_select(&idx(iw, w, x.device())?, 3)?;
    }
    if ih != h {
        y = y.index_select(&idx(ih, h, x.device())?, 2)?;
    }
    Ok(y)
}

/// mmdet `generate_coordinate`: `[B, 2, H, W]`, channel 0 = x = linspace(-1, 1, W) along the
/// columns, channel 1 = y = linspace(-1, 1, H) along the rows.
pub fn coordinate_channels(
    b: usize,
    h: usize,
    w: usize,
    dtype: DType,
    dev: &Device,
) -> Result<Tensor> {
    let lin = |n: usize| -> Vec<f32> {
        if n == 1 {
            return vec![-1.0];
        }
        let step = 2.0 / (n - 1) as f32;
        // torch.linspace fills the first half from the start and the second from the end.
        (0..n)
            .map(|i| {
                if i < n / 2 {
                    -1.0 + step * i as f32
                } else {
                    1.0 - step * (n - 1 - i) as f32
                }
            })
            .collect()
    };
    let x = Tensor::from_vec(lin(w), (1, 1, 1, w), dev)?.broadcast_as((b, 1, h, w))?;
    let y = Tensor::from_vec(lin(h), (1, 1, h, 1), dev)?.broadcast_as((b, 1, h, w))?;
    // `cat` of broadcast views is a strided view for B > 1; index_select needs contiguous.
    Ok(Tensor::cat(&[x, y], 1)?.to_dtype(dtype)?.contiguous()?)
}

/// mmdet `FPN(in_channels, out_channels, num_outs=5)`: `lateral_convs.i.conv`,
/// `fpn_convs.i.conv` (with bias, no norm, no activation); nearest top-down; P6 = P5[::2, ::2].
#[derive(Debug, Clone)]
pub struct Fpn {
    lateral: Vec<Conv>,
    fpn: Vec<Conv>,
}

impl Fpn {
    /// Builds the neck for backbone stages of `in_channels`.
    pub fn new(in_channels: [usize; 4], out: usize, vb: VarBuilder) -> Result<Self> {
        let mut lateral = Vec::new();
        let mut fpn = Vec::new();
        for (i, &c) in in_channels.iter().enumerate() {
            let xavier = |fan_in: usize| {
                // xavier_uniform: bound sqrt(6 / (fan_in + fan_out)).
                let fan_out = out * if fan_in == c { 1 } else { 9 };
                let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                }
            };
            lateral.push(conv(
                c,
                out,
                1,
                Some(Init::Const(0.0)),
                xavier(c),
                vb.pp(format!("lateral_convs.{i}.conv")),
            )?);
            fpn.push(conv(
                out,
                out,
                3,
                Some(Init::Const(0.0)),
                xavier(out * 9),
                vb.pp(format!("fpn_convs.{i}.conv")),
            )?);
        }
        Ok(Self { lateral, fpn })
    }

    fn device(&self) -> Device {
        self.fpn[0].weight().device().clone()
    }

    /// C2..C5 -> P2..P6.
    pub fn forward(&self, c: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut lat = self
            .lateral
            .iter()
            .zip(c)
            .map(|(l, x)| l.forward(x))
            .collect::<candle_core::Result<Vec<_>>>()?;
        for i in (1..lat.len()).rev() {
            let (h, w) = (lat[i - 1].dim(2)?, lat[i - 1].dim(3)?);
            let up = resize_nearest(&lat[i], h, w)?;
            lat[i - 1] = (&lat[i - 1] + up)?;
        }
        let mut outs = self
            .fpn
            .iter()
            .zip(&lat)
            .map(|(f, x)| f.forward(x))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let p6 = ops::subsample(&outs[outs.len() - 1], 2)?;
        outs.push(p6);
        Ok(outs)
    }
}

/// mmdet `MaskFeatModule`: `convs_all_levels.{i}.conv{j}` (ConvGn, each followed by a bilinear
/// x2 upsample for levels i >= 1), coordinates concatenated to the last level's input, sum, then
/// `conv_pred` (1x1 ConvGn with ReLU) to E channels at 1/4 resolution.
#[derive(Debug, Clone)]
pub struct MaskFeatHead {
    levels: Vec<Vec<ConvGn>>,
    conv_pred: ConvGn,
}

impl MaskFeatHead {
    /// Builds the branch over P2..P5 (start_level 0, end_level 3).
    pub fn new(cfg: &SoloV2Config, vb: VarBuilder) -> Result<Self> {
        let (cin, hid, g) = (cfg.fpn_channels, cfg.mask_feat_channels, cfg.gn_groups);
        let mut levels = Vec::new();
        for i in 0..4 {
            let lv = vb.pp(format!("convs_all_levels.{i}"));
            let mut convs = Vec::new();
            if i == 0 {
                convs.push(ConvGn::new(cin, hid, 3, g, lv.pp("conv0"))?);
            } else {
                for j in 0..i {
                    let chn = match (j, i) {
                        (0, 3) => cin + 2,
                        (0, _) => cin,
                        _ => hid,
                    };
                    convs.push(ConvGn::new(chn, hid, 3, g, lv.pp(format!("conv{j}")))?);
                }
            }
            levels.push(convs);
        }
        let conv_pred = ConvGn::new(hid, cfg.mask_channels, 1, g, vb.pp("conv_pred"))?;
        Ok(Self { levels, conv_pred })
    }

    /// P2..P5 -> F `[B, E, H/4, W/4]`.
    pub fn forward(&self, p: &[Tensor]) -> Result<Tensor> {
        let mut sum = self.levels[0][0].forward(&p[0])?;
        for (i, convs) in self.levels.iter().enumerate().skip(1) {
            let mut x = p[i].clone();
            if i == self.levels.len() - 1 {
                let (b, _, h, w) = x.dims4()?;
                let c = coordinate_channels(b, h, w, x.dtype(), x.device())?;
                x = Tensor::cat(&[&x, &c], 1)?;
            }
            for cv in convs {
                x = cv.forward(&x)?;
                let (h, w) = (x.dim(2)?, x.dim(3)?);
                x = ops::resize_bilinear(&x, 2 * h, 2 * w)?;
            }
            sum = (sum + x)?;
        }
        self.conv_pred.forward(&sum)
    }
}

/// mmdet `SOLOV2Head` (no DCN): `kernel_convs.i`, `cls_convs.i` (ConvGn towers),
/// `conv_kernel`, `conv_cls` (3x3 with bias) and `mask_feature_head` ([`MaskFeatHead`]).
#[derive(Debug, Clone)]
pub struct SoloV2Head {
    kernel_convs: Vec<ConvGn>,
    cls_convs: Vec<ConvGn>,
    conv_kernel: Conv,
    conv_cls: Conv,
    mask_feature_head: MaskFeatHead,
    num_grids: Vec<usize>,
}

impl SoloV2Head {
    /// Builds the head (init: convs normal(0.01), category bias -ln(99)).
    pub fn new(cfg: &SoloV2Config, vb: VarBuilder) -> Result<Self> {
        let (cin, f, g) = (cfg.fpn_channels, cfg.feat_channels, cfg.gn_groups);
        let mut kernel_convs = Vec::new();
        let mut cls_convs = Vec::new();
        for i in 0..cfg.stacked_convs {
            let kc = if i == 0 { cin + 2 } else { f };
            kernel_convs.push(ConvGn::new(
                kc,
                f,
                3,
                g,
                vb.pp(format!("kernel_convs.{i}")),
            )?);
            let cc = if i == 0 { cin } else { f };
            cls_convs.push(ConvGn::new(cc, f, 3, g, vb.pp(format!("cls_convs.{i}")))?);
        }
        let conv_kernel = conv(
            f,
            cfg.mask_channels,
            3,
            Some(Init::Const(0.0)),
            normal(0.01),
            vb.pp("conv_kernel"),
        )?;
        let prior = -((1.0 - CLS_PRIOR) / CLS_PRIOR).ln();
        let conv_cls = conv(
            f,
            cfg.num_classes,
            3,
            Some(Init::Const(prior)),
            normal(0.01),
            vb.pp("conv_cls"),
        )?;
        let mask_feature_head = MaskFeatHead::new(cfg, vb.pp("mask_feature_head"))?;
        Ok(Self {
            kernel_convs,
            cls_convs,
            conv_kernel,
            conv_cls,
            mask_feature_head,
            num_grids: cfg.num_grids.clone(),
        })
    }

    /// P2..P6 -> (category logits `[B,S,S,C]`, kernels `[B,E,S,S]`) per level and F.
    pub fn forward(&self, p: &[Tensor]) -> Result<SoloV2Output> {
        let mask_feats = self.mask_feature_head.forward(&p[..4])?;
        // mmdet `SOLOHead.resize_feats`: P2 down to P3's size, P6 up to P5's size.
        let (h3, w3) = (p[1].dim(2)?, p[1].dim(3)?);
        let (h5, w5) = (p[3].dim(2)?, p[3].dim(3)?);
        let feats = [
            ops::resize_bilinear(&p[0], h3, w3)?,
            p[1].clone(),
            p[2].clone(),
            p[3].clone(),
            ops::resize_bilinear(&p[4], h5, w5)?,
        ];
        let mut cls = Vec::with_capacity(NUM_LEVELS);
        let mut kernels = Vec::with_capacity(NUM_LEVELS);
        for (x, &s) in feats.iter().zip(&self.num_grids) {
            let (b, c, h, w) = x.dims4()?;
            let coord = coordinate_channels(b, h, w, x.dtype(), x.device())?;
            let x = Tensor::cat(&[x, &coord], 1)?;
            let kf = ops::resize_bilinear(&x, s, s)?;
            let mut cf = kf.narrow(1, 0, c)?;
            let mut kf = kf;
            for m in &self.kernel_convs {
                kf = m.forward(&kf)?;
            }
            kernels.push(self.conv_kernel.forward(&kf)?);
            for m in &self.cls_convs {
                cf = m.forward(&cf)?;
            }
            cls.push(self.conv_cls.forward(&cf)?.permute((0, 2, 3, 1))?);
        }
        Ok(SoloV2Output {
            cls_logits: cls,
            kernels,
            mask_feats,
        })
    }
}

/// Raw network outputs for a batch.
#[derive(Debug, Clone)]
pub struct SoloV2Output {
    /// Per level: category logits `[B, S, S, C]` (before the sigmoid).
    pub cls_logits: Vec<Tensor>,
    /// Per level: dynamic kernels `[B, E, S, S]`.
    pub kernels: Vec<Tensor>,
    /// Unified mask features F `[B, E, H/4, W/4]`.
    pub mask_feats: Tensor,
}

impl SoloV2Output {
    /// Category logits of all levels flattened to `[B, cells, C]` (level-major, then row-major
    /// cells, as mmdet's flattening).
    pub fn flat_cls_logits(&self) -> Result<Tensor> {
        let v = self
            .cls_logits
            .iter()
            .map(|t| {
                let (b, s, s2, c) = t.dims4()?;
                t.reshape((b, s * s2, c))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&v, 1)?)
    }

    /// Kernels of all levels flattened to `[B, cells, E]` (same cell order as
    /// [`Self::flat_cls_logits`]).
    pub fn flat_kernels(&self) -> Result<Tensor> {
        let v = self
            .kernels
            .iter()
            .map(|t| {
                let (b, e, s, s2) = t.dims4()?;
                t.reshape((b, e, s * s2))?.transpose(1, 2)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&v, 1)?.contiguous()?)
    }
}

/// Dynamic 1x1 convolution (reference A5): mask logits `[N, H, W]` of the mask features
/// `f` (`[E, H, W]`, one image) with kernels `[N, E]`, as one `[N,E] x [E,HW]` matmul.
pub fn dynamic_conv(f: &Tensor, kernels: &Tensor) -> Result<Tensor> {
    let (e, h, w) = f.dims3().map_err(|_| SoloError::Shape {
        what: "dynamic_conv mask features".into(),
        expected: "[E, H, W]".into(),
        got: f.dims().to_vec(),
    })?;
    let kd = kernels.dims();
    if kd.len() != 2 || kd[1] != e {
        return Err(SoloError::Shape {
            what: "dynamic_conv kernels".into(),
            expected: format!("[N, {e}]"),
            got: kd.to_vec(),
        });
    }
    let n = kd[0];
    let m = kernels.matmul(&f.reshape((e, h * w))?)?;
    Ok(m.reshape((n, h, w))?)
}

/// The whole SOLOv2 model.
#[derive(Debug, Clone)]
pub struct SoloV2 {
    config: SoloV2Config,
    backbone: ResNet,
    neck: Fpn,
    head: SoloV2Head,
}

impl SoloV2 {
    /// Builds the model from `vb` (`backbone.*`, `neck.*`, `mask_head.*`).
    pub fn new(config: SoloV2Config, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let rc = ResNetConfig {
            depth: config.backbone,
            in_channels: config.in_channels,
            num_classes: None,
        };
        let backbone = ResNet::new(rc, vb.pp("backbone"))?;
        let neck = Fpn::new(
            config.backbone_channels(),
            config.fpn_channels,
            vb.pp("neck"),
        )?;
        let head = SoloV2Head::new(&config, vb.pp("mask_head"))?;
        Ok(Self {
            config,
            backbone,
            neck,
            head,
        })
    }

    /// Loads a safetensors file under mmdet names, checking every key and shape first (extra
    /// keys such as `backbone.fc.*` or `num_batches_tracked` are ignored).
    pub fn load(
        path: &std::path::Path,
        config: SoloV2Config,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let tensors = backbones::weights::read_safetensors(path, device)?;
        let name = path.display().to_string();
        Ok(backbones::weights::build_verified(
            &name,
            tensors,
            dtype,
            device,
            |vb| {
                Self::new(config.clone(), vb)
                    .map_err(|e| backbones::BackboneError::Config(e.to_string()))
            },
        )?)
    }

    /// The configuration.
    pub fn config(&self) -> &SoloV2Config {
        &self.config
    }

    /// The device of the weights.
    pub fn device(&self) -> Device {
        self.neck.device()
    }

    /// Normalised images `[B, C, H, W]` (H, W multiples of 32) -> raw outputs, with the
    /// backbone's BatchNorm on its frozen statistics (mmdet `norm_eval=True`).
    pub fn forward(&self, x: &Tensor) -> Result<SoloV2Output> {
        self.forward_t(x, false)
    }

    /// Like [`Self::forward`]; `backbone_batch_stats` normalises the backbone with batch
    /// statistics and updates its running statistics (PyTorch train mode). NOTE: the reference
    /// keeps BN frozen (`norm_eval=True`) because its backbone is ImageNet-pretrained; a
    /// backbone trained from scratch (no pretrained weights can be had here) needs batch
    /// statistics, see `solov2::train::BackboneNorm`.
    pub fn forward_t(&self, x: &Tensor, backbone_batch_stats: bool) -> Result<SoloV2Output> {
        check_nchw("SOLOv2 input", x, self.config.in_channels, 32)?;
        let maps = self.backbone.forward_t(x, backbone_batch_stats)?;
        let c = ["c2", "c3", "c4", "c5"]
            .iter()
            .map(|n| maps.require(n).cloned())
            .collect::<backbones::Result<Vec<_>>>()?;
        let p = self.neck.forward(&c)?;
        let out = self.head.forward(&p)?;
        let (_, _, h, w) = x.dims4()?;
        let fd = out.mask_feats.dims();
        if fd[2] * MASK_STRIDE != h || fd[3] * MASK_STRIDE != w {
            return Err(SoloError::Shape {
                what: "mask features".into(),
                expected: format!("[B, E, {}, {}]", h / MASK_STRIDE, w / MASK_STRIDE),
                got: fd.to_vec(),
            });
        }
        Ok(out)
    }
}

/// Sigmoid of category logits (differentiable, candle-nn's).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::sigmoid(x)?)
}
