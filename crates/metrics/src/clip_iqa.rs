//! CLIP-IQA (Wang et al., AAAI 2023): no-reference quality in [0, 1], higher is better.
//!
//! Mirrors pyiqa's `CLIPIQA` (`pyiqa/archs/clipiqa_arch.py`, `model_type="clipiqa"`, backbone
//! RN50, `pos_embedding=False`) and the original IceClear/CLIP-IQA:
//! * input RGB in [0, 1] at **native resolution** (no resize; H, W >= 32), normalised with the
//!   OpenAI CLIP mean/std;
//! * image tower = OpenAI CLIP `ModifiedResNet` RN50 (3-conv stem + avg pool 2, bottlenecks
//!   (3, 4, 6, 3) with the stride as an AvgPool after conv2 and an AvgPool -> 1x1 conv -> BN
//!   shortcut) and the **attention pool** (mean token prepended, 32 heads, 2048 -> 1024),
//!   **without** the positional embedding (so any input size works);
//! * score per prompt pair = softmax over `logit_scale.exp() * cos(img, text_{+,-})`, the
//!   positive entry; several pairs are averaged (pyiqa).
//!
//! Parameter names are OpenAI CLIP's (`visual.conv1.weight`, `visual.bn1.running_var`,
//! `visual.layer1.0.downsample.0.weight`, `visual.attnpool.q_proj.weight`, ...).
//!
//! NOTE (text tower): the prompts are fixed, so the text features are **precomputed** by the
//! converter (`tools/metrics_convert_clip.py`, OpenAI CLIP's `encode_text`) and stored in the
//! weight file as `text_features` `[2P, 1024]` (pairs positive-first) with `logit_scale` (log)
//! and the prompts in the metadata; the metric needs only the image tower. candle-transformers'
//! CLIP text transformer was not used: it would need OpenAI -> HF key renaming and a BPE
//! tokenizer for two constant vectors. Default prompts: the original pair
//! `"Good photo."` / `"Bad photo."` (pyiqa's 5-pair ensemble: converter `--prompts pyiqa`).

use std::collections::HashMap;
use std::path::Path;

use backbones::BatchNorm2d;
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder, linear};

use crate::features::error::{MetricsError, Result};

/// OpenAI CLIP image normalisation.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The original CLIP-IQA prompt pair.
pub const DEFAULT_PROMPTS: [(&str, &str); 1] = [("Good photo.", "Bad photo.")];

fn conv(x: &Tensor, w: &Tensor, pad: usize, stride: usize) -> candle_core::Result<Tensor> {
    x.conv2d(w, pad, stride, 1, 1)
}

/// CLIP `Bottleneck` (stride as AvgPool after conv2).
#[derive(Debug, Clone)]
struct ClipBottleneck {
    conv1: Tensor,
    bn1: BatchNorm2d,
    conv2: Tensor,
    bn2: BatchNorm2d,
    conv3: Tensor,
    bn3: BatchNorm2d,
    stride: usize,
    downsample: Option<(Tensor, BatchNorm2d)>,
}

impl ClipBottleneck {
    fn new(
        inplanes: usize,
        planes: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> backbones::Result<Self> {
        let out = planes * 4;
        let downsample = if stride > 1 || inplanes != out {
            Some((
                vb.pp("downsample.0").get((out, inplanes, 1, 1), "weight")?,
                BatchNorm2d::new(out, 1e-5, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: vb.pp("conv1").get((planes, inplanes, 1, 1), "weight")?,
            bn1: BatchNorm2d::new(planes, 1e-5, vb.pp("bn1"))?,
            conv2: vb.pp("conv2").get((planes, planes, 3, 3), "weight")?,
            bn2: BatchNorm2d::new(planes, 1e-5, vb.pp("bn2"))?,
            conv3: vb.pp("conv3").get((out, planes, 1, 1), "weight")?,
            bn3: BatchNorm2d::new(out, 1e-5, vb.pp("bn3"))?,
            stride,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> backbones::Result<Tensor> {
        let h = self
            .bn1
            .forward_eval(&conv(x, &self.conv1, 0, 1)?)?
            .relu()?;
        let mut h = self
            .bn2
            .forward_eval(&conv(&h, &self.conv2, 1, 1)?)?
            .relu()?;
        if self.stride > 1 {
            h = h.avg_pool2d(self.stride)?;
        }
        let h = self.bn3.forward_eval(&conv(&h, &self.conv3, 0, 1)?)?;
        let id = match &self.downsample {
            Some((w, bn)) => {
                let s = if self.stride > 1 {
                    x.avg_pool2d(self.stride)?
                } else {
                    x.clone()
                };
                bn.forward_eval(&conv(&s, w, 0, 1)?)?
            }
            None => x.clone(),
        };
        Ok((h + id)?.relu()?)
    }
}

/// OpenAI CLIP `AttentionPool2d` without the positional embedding.
struct AttentionPool {
    q: Linear,
    k: Linear,
    v: Linear,
    c: Linear,
    heads: usize,
}

impl AttentionPool {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let tokens = x.reshape((b, c, h * w))?.transpose(1, 2)?; // [B, HW, C]
        let mean = tokens.mean_keepdim(1)?;
        let t = Tensor::cat(&[&mean, &tokens], 1)?.contiguous()?; // [B, L, C]
        let l = h * w + 1;
        let hd = c / self.heads;
        let q = (self.q.forward(&mean)? * (hd as f64).powf(-0.5))?; // [B, 1, C]
        let k = self.k.forward(&t)?;
        let v = self.v.forward(&t)?;
        let split = |z: &Tensor, n: usize| -> candle_core::Result<Tensor> {
            z.reshape((b, n, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(&q, 1)?, split(&k, l)?, split(&v, l)?); // [B, heads, n, hd]
        let att = q.matmul(&k.transpose(2, 3)?.contiguous()?)?; // [B, heads, 1, L]
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let o = att.matmul(&v)?; // [B, heads, 1, hd]
        let o = o.transpose(1, 2)?.reshape((b, c))?;
        self.c.forward(&o)
    }
}

/// OpenAI CLIP RN50 image tower (`visual.*`) with the attention pool.
pub struct ClipRn50Visual {
    stem: Vec<(Tensor, BatchNorm2d, usize)>,
    layers: Vec<Vec<ClipBottleneck>>,
    attnpool: AttentionPool,
}

impl ClipRn50Visual {
    /// Builds from parameters under `vb` (the `visual` prefix of an OpenAI CLIP state dict).
    pub fn new(vb: VarBuilder) -> backbones::Result<Self> {
        let width = 64;
        let stem_spec = [
            (1, 3, width / 2, 2),
            (2, width / 2, width / 2, 1),
            (3, width / 2, width, 1),
        ];
        let stem = stem_spec
            .iter()
            .map(|&(i, cin, cout, s)| {
                Ok((
                    vb.pp(format!("conv{i}")).get((cout, cin, 3, 3), "weight")?,
                    BatchNorm2d::new(cout, 1e-5, vb.pp(format!("bn{i}")))?,
                    s,
                ))
            })
            .collect::<backbones::Result<Vec<_>>>()?;
        let mut inplanes = width;
        let mut layers = Vec::new();
        for (li, (&blocks, mult)) in [3usize, 4, 6, 3].iter().zip([1usize, 2, 4, 8]).enumerate() {
            let planes = width * mult;
            let lvb = vb.pp(format!("layer{}", li + 1));
            let mut layer = Vec::new();
            for bi in 0..blocks {
                let stride = if li > 0 && bi == 0 { 2 } else { 1 };
                layer.push(ClipBottleneck::new(inplanes, planes, stride, lvb.pp(bi))?);
                inplanes = planes * 4;
            }
            layers.push(layer);
        }
        let a = vb.pp("attnpool");
        let e = width * 32;
        let attnpool = AttentionPool {
            q: linear(e, e, a.pp("q_proj"))?,
            k: linear(e, e, a.pp("k_proj"))?,
            v: linear(e, e, a.pp("v_proj"))?,
            c: linear(e, 1024, a.pp("c_proj"))?,
            heads: 32,
        };
        Ok(Self {
            stem,
            layers,
            attnpool,
        })
    }

    /// Image embeddings `[B, 1024]` (not normalised) of CLIP-normalised input `[B, 3, H, W]`.
    pub fn forward(&self, x: &Tensor) -> backbones::Result<Tensor> {
        let mut h = x.clone();
        for (w, bn, s) in &self.stem {
            h = bn.forward_eval(&conv(&h, w, 1, *s)?)?.relu()?;
        }
        h = h.avg_pool2d(2)?;
        for layer in &self.layers {
            for b in layer {
                h = b.forward(&h)?;
            }
        }
        Ok(self.attnpool.forward(&h)?)
    }
}

/// The CLIP-IQA metric: image tower + stored text features.
pub struct ClipIqa {
    visual: ClipRn50Visual,
    /// `[2P, 1024]`, L2-normalised, positive prompt first in each pair.
    text: Tensor,
    logit_scale: f64,
    prompts: Vec<(String, String)>,
    device: Device,
}

impl ClipIqa {
    /// Builds from an image tower and raw text features `[2P, D]` (`encode_text` outputs,
    /// pairs positive-first), `logit_scale` = the stored log value (ln 100 for OpenAI RN50).
    pub fn new(
        visual: ClipRn50Visual,
        text_features: &Tensor,
        logit_scale: f64,
        prompts: Vec<(String, String)>,
    ) -> Result<Self> {
        let n = text_features.dim(0)?;
        if n == 0 || n % 2 != 0 || (!prompts.is_empty() && n != 2 * prompts.len()) {
            return Err(MetricsError::Invalid(format!(
                "CLIP-IQA text features {:?} do not hold {} prompt pairs",
                text_features.dims(),
                prompts.len()
            )));
        }
        let t = text_features.to_dtype(DType::F32)?;
        let norm = t.sqr()?.sum_keepdim(1)?.sqrt()?;
        let device = t.device().clone();
        Ok(Self {
            visual,
            text: t.broadcast_div(&norm)?,
            logit_scale,
            prompts,
            device,
        })
    }

    /// Loads a file written by `tools/metrics_convert_clip.py` (`visual.*`, `text_features`,
    /// `logit_scale`; prompts in the metadata). A missing file is
    /// [`MetricsError::WeightsMissing`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        if !path.exists() {
            return Err(MetricsError::WeightsMissing(path.to_path_buf()));
        }
        let mut t: HashMap<String, Tensor> = backbones::weights::read_safetensors(path, device)?;
        let text = t.remove("text_features").ok_or_else(|| {
            MetricsError::io(
                path,
                "no `text_features` (convert with tools/metrics_convert_clip.py)",
            )
        })?;
        let logit_scale = match t.remove("logit_scale") {
            Some(s) => s.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0],
            None => 100f64.ln(),
        };
        let prompts = read_prompts(path)?;
        let visual_t = backbones::weights::strip_prefix(t, "visual.");
        let visual = backbones::weights::build_verified(
            &path.display().to_string(),
            visual_t,
            DType::F32,
            device,
            ClipRn50Visual::new,
        )?;
        Self::new(visual, &text, logit_scale, prompts)
    }

    pub fn prompts(&self) -> &[(String, String)] {
        &self.prompts
    }

    /// Raw image embeddings `[B, 1024]` of images in [0, 1].
    pub fn encode_image(&self, images: &Tensor) -> Result<Tensor> {
        let d = images.dims();
        if d.len() != 4 || d[1] != 3 || d[2] < 32 || d[3] < 32 {
            return Err(MetricsError::Invalid(format!(
                "CLIP-IQA input must be [B, 3, H, W] with H, W >= 32, got {d:?}"
            )));
        }
        let x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        let mean = Tensor::from_slice(&CLIP_MEAN, (1, 3, 1, 1), &self.device)?;
        let std = Tensor::from_slice(&CLIP_STD, (1, 3, 1, 1), &self.device)?;
        let x = x.broadcast_sub(&mean)?.broadcast_div(&std)?;
        Ok(self.visual.forward(&x)?)
    }

    /// Scores `[B]` in [0, 1] for images `[B, 3, H, W]` in [0, 1].
    pub fn score(&self, images: &Tensor) -> Result<Vec<f32>> {
        let f = self.encode_image(images)?;
        let f = f.broadcast_div(&f.sqr()?.sum_keepdim(1)?.sqrt()?)?;
        let logits = (f.matmul(&self.text.t()?)? * self.logit_scale.exp())?; // [B, 2P]
        let (b, n) = logits.dims2()?;
        let p = candle_nn::ops::softmax(&logits.reshape((b, n / 2, 2))?, D::Minus1)?;
        let pos = p.narrow(2, 0, 1)?.squeeze(2)?.mean(1)?;
        Ok(pos.to_vec1::<f32>()?)
    }
}

fn read_prompts(path: &Path) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(path).map_err(|e| MetricsError::io(path, e))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| MetricsError::io(path, e))?;
    let meta = header.metadata().clone().unwrap_or_default();
    match meta.get("prompts") {
        Some(s) => {
            let v: Vec<(String, String)> = serde_json::from_str(s)
                .map_err(|e| MetricsError::io(path, format!("metadata `prompts`: {e}")))?;
            Ok(v)
        }
        None => Ok(DEFAULT_PROMPTS
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()),
    }
}
