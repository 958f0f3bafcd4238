//! SOLOv2 losses (mmdetection `SOLOV2Head.loss_by_feat`, reference A7):
//!
//! - category: sigmoid focal loss (alpha 0.25, gamma 2) over every cell, class and image,
//!   summed and divided by `num_pos + 1` (distinct positive cells of the batch), weight 1;
//! - mask: Dice loss 1 - 2 sum(pq) / (sum(p^2) + 0.001 + sum(q^2) + 0.001) per mask target
//!   (p = sigmoid of the dynamic-conv logits at 1/4 resolution), summed over all targets and
//!   divided by `num_pos`, weight 3 (0 when the batch has no positive).
//!
//! Everything is built from differentiable candle ops (the stable softplus of
//! [`s2m_train::gan::softplus`], relu + log(1 + exp(-|x|))).

use candle_core::{D, Tensor};
use s2m_train::gan::softplus;

use super::config::SoloV2Config;
use super::error::{Result, SoloError};
use super::model::{SoloV2Output, dynamic_conv, sigmoid};
use super::targets::ImageTargets;

/// Loss terms of a batch (scalars).
#[derive(Debug, Clone)]
pub struct SoloLosses {
    /// Weighted focal loss.
    pub cls: Tensor,
    /// Weighted Dice loss.
    pub mask: Tensor,
    /// cls + mask.
    pub total: Tensor,
    /// Distinct positive cells in the batch.
    pub num_pos: usize,
}

/// Sigmoid focal loss, summed over all elements (mmcv `sigmoid_focal_loss`, reduction sum):
/// t * alpha * (1 - p)^gamma * -log p + (1 - t) * (1 - alpha) * p^gamma * -log(1 - p).
pub fn sigmoid_focal_loss_sum(
    logits: &Tensor,
    targets: &Tensor,
    alpha: f32,
    gamma: f32,
) -> Result<Tensor> {
    if logits.dims() != targets.dims() {
        return Err(SoloError::Shape {
            what: "focal loss targets".into(),
            expected: format!("{:?} (the logits' shape)", logits.dims()),
            got: targets.dims().to_vec(),
        });
    }
    let p = sigmoid(logits)?;
    let one_minus_p = p.affine(-1.0, 1.0)?;
    let pos =
        (one_minus_p.powf(gamma as f64)? * softplus(&logits.neg()?)?)?.affine(alpha as f64, 0.0)?;
    let neg = (p.powf(gamma as f64)? * softplus(logits)?)?.affine(1.0 - alpha as f64, 0.0)?;
    let t = targets;
    let l = ((t * pos)? + (t.affine(-1.0, 1.0)? * neg)?)?;
    Ok(l.sum_all()?)
}

/// Dice loss per row (mmdet `DiceLoss(use_sigmoid, naive_dice=False, eps=1e-3)`) of
/// probabilities `p` and targets `q`, both `[P, N]`: `[P]`.
pub fn dice_loss_rows(p: &Tensor, q: &Tensor) -> Result<Tensor> {
    if p.dims() != q.dims() || p.rank() != 2 {
        return Err(SoloError::Shape {
            what: "dice loss".into(),
            expected: format!("targets of the predictions' shape {:?}, rank 2", p.dims()),
            got: q.dims().to_vec(),
        });
    }
    let a = (p * q)?.sum(D::Minus1)?;
    let b = (p * p)?.sum(D::Minus1)?.affine(1.0, 1e-3)?;
    let c = (q * q)?.sum(D::Minus1)?.affine(1.0, 1e-3)?;
    let d = ((a * 2.0)? / (b + c)?)?;
    Ok(d.affine(-1.0, 1.0)?)
}

/// The SOLOv2 loss of a batch output against per-image targets.
pub fn solo_loss(
    out: &SoloV2Output,
    targets: &[ImageTargets],
    cfg: &SoloV2Config,
) -> Result<SoloLosses> {
    let flat_cls = out.flat_cls_logits()?; // [B, cells, C]
    let b = flat_cls.dim(0)?;
    if targets.len() != b {
        return Err(SoloError::Input(format!(
            "{} target sets for a batch of {b}",
            targets.len()
        )));
    }
    let dev = flat_cls.device().clone();
    let fh = out.mask_feats.dim(2)?;
    let fw = out.mask_feats.dim(3)?;
    let num_pos: usize = targets.iter().map(ImageTargets::num_pos).sum();
    let onehot = targets
        .iter()
        .map(|t| t.cls_onehot(cfg.num_classes, &dev))
        .collect::<Result<Vec<_>>>()?;
    let onehot = Tensor::stack(&onehot, 0)?.to_dtype(flat_cls.dtype())?;
    let focal = sigmoid_focal_loss_sum(
        &flat_cls,
        &onehot,
        cfg.loss.focal_alpha,
        cfg.loss.focal_gamma,
    )?;
    let cls = (focal * (cfg.loss.cls_weight as f64 / (num_pos as f64 + 1.0)))?;

    let flat_k = out.flat_kernels()?; // [B, cells, E]
    let mut dice_sum: Option<Tensor> = None;
    for (i, t) in targets.iter().enumerate() {
        if t.feat_hw != (fh, fw) {
            return Err(SoloError::Input(format!(
                "targets of image {i} are for mask features {:?}, the output has {:?}",
                t.feat_hw,
                (fh, fw)
            )));
        }
        let idx = t.flat_pos_index();
        if idx.is_empty() {
            continue;
        }
        let k = flat_k.get(i)?.index_select(&Tensor::new(idx, &dev)?, 0)?;
        let logits = dynamic_conv(&out.mask_feats.get(i)?, &k)?;
        let p = sigmoid(&logits.flatten_from(1)?)?;
        let q = t.mask_targets(&dev)?.to_dtype(p.dtype())?;
        let s = dice_loss_rows(&p, &q)?.sum_all()?;
        dice_sum = Some(match dice_sum {
            Some(acc) => (acc + s)?,
            None => s,
        });
    }
    let mask = match dice_sum {
        Some(s) if num_pos > 0 => (s * (cfg.loss.dice_weight as f64 / num_pos as f64))?,
        _ => (out.mask_feats.sum_all()? * 0.0)?,
    };
    let total = (&cls + &mask)?;
    Ok(SoloLosses {
        cls,
        mask,
        total,
        num_pos,
    })
}
