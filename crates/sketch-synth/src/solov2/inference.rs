//! SOLOv2 inference (mmdetection `SOLOV2Head.predict_by_feat` / `_predict_by_feat_single`,
//! reference A8) and the sketch step of Sketch2MedI (contours of instances with score >= 0.35).
//!
//! Per image: sigmoid + point NMS of the category maps; (cell, class) pairs with score >
//! `score_thr`; soft masks sigmoid(F (*) kernel) at 1/4 resolution; binary at `mask_thr`; drop
//! masks whose area <= the level stride; score *= maskness; Matrix NMS ([`super::nms`]);
//! soft masks resized x4, cropped to the image size, resized to the original size, binarised.
//!
//! NOTE (deviations): images are resized to the square `input_size` (bilinear, the `image`
//! crate's triangle filter) instead of mmdet's aspect-preserving cv2 resize + padding; the
//! phantom's images are square, so no padding is needed. Resizes at inference use
//! [`backbones::ops::resize_bilinear`] (PyTorch `align_corners=False`, no antialias).

use std::sync::atomic::{AtomicUsize, Ordering};

use backbones::ops;
use candle_core::{D, DType, Device, Tensor};
use image::{GrayImage, RgbImage};
use s2m_core::anatomy::{Class, InstanceMask, LabelMap, encode_label};

use super::config::{MASK_STRIDE, SoloV2Config};
use super::data::normalize_images;
use super::error::{Result, SoloError};
use super::model::{SoloV2, SoloV2Output, dynamic_conv, sigmoid};
use super::nms::{MatrixNmsParams, matrix_nms};
use crate::contour::{SketchConfig, render_sketch};

/// One predicted instance at the original image size.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Class index 0..C (0 = uvula, ..., 3 = tongue for the 4-class model).
    pub label: usize,
    /// Score after maskness and Matrix NMS decay.
    pub score: f32,
    /// Binary mask (0 / 255) at the original size.
    pub mask: GrayImage,
}

/// Counts of one image's post-processing stages (for reports and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferenceStats {
    /// (cell, class) pairs above `score_thr` after point NMS.
    pub above_score_thr: usize,
    /// Masks left after the minimum-area filter.
    pub after_area_filter: usize,
    /// Instances kept after Matrix NMS.
    pub kept: usize,
}

/// Post-processes image `b` of a batch output. `img_hw` is the image size inside the network
/// input (the crop), `ori_hw` the size the masks are returned at.
pub fn postprocess(
    out: &SoloV2Output,
    b: usize,
    cfg: &SoloV2Config,
    img_hw: (usize, usize),
    ori_hw: (usize, usize),
) -> Result<(Vec<Detection>, InferenceStats)> {
    let t = &cfg.test;
    let c = cfg.num_classes;
    let mut stats = InferenceStats::default();
    let mut cls_levels = Vec::with_capacity(out.cls_logits.len());
    let mut cell_stride = Vec::new();
    for (l, logits) in out.cls_logits.iter().enumerate() {
        let x = logits.get(b)?; // [S, S, C]
        let (s1, s2, _) = x.dims3()?;
        let heat = sigmoid(&x.permute((2, 0, 1))?.unsqueeze(0)?.contiguous()?)?;
        // points_nms: 2x2 max pool, stride 1, padding 1, cropped to S x S.
        let hmax = ops::max_pool2d(&heat, 2, 1, 1)?
            .narrow(2, 0, s1)?
            .narrow(3, 0, s2)?;
        let keep = hmax.eq(&heat)?.to_dtype(heat.dtype())?;
        let kept = (heat * keep)?.squeeze(0)?.permute((1, 2, 0))?;
        cls_levels.push(kept.reshape((s1 * s2, c))?);
        cell_stride.extend(std::iter::repeat_n(cfg.strides[l] as f32, s1 * s2));
    }
    let scores: Vec<Vec<f32>> = Tensor::cat(&cls_levels, 0)?.to_vec2()?;
    let mut sel_cells = Vec::new();
    let mut sel_labels = Vec::new();
    let mut sel_scores = Vec::new();
    for (cell, row) in scores.iter().enumerate() {
        for (k, &s) in row.iter().enumerate() {
            if s > t.score_thr {
                sel_cells.push(cell as u32);
                sel_labels.push(k);
                sel_scores.push(s);
            }
        }
    }
    stats.above_score_thr = sel_cells.len();
    if sel_cells.is_empty() {
        return Ok((vec![], stats));
    }
    let dev = out.mask_feats.device();
    let kernels = out
        .flat_kernels()?
        .get(b)?
        .index_select(&Tensor::new(sel_cells.as_slice(), dev)?, 0)?;
    let f = out.mask_feats.get(b)?;
    let soft = sigmoid(&dynamic_conv(&f, &kernels)?)?;
    let bin = soft.gt(t.mask_thr as f64)?.to_dtype(soft.dtype())?;
    let sums: Vec<f32> = bin.sum(D::Minus1)?.sum(D::Minus1)?.to_vec1()?;
    let keep: Vec<usize> = (0..sums.len())
        .filter(|&i| sums[i] > cell_stride[sel_cells[i] as usize])
        .collect();
    stats.after_area_filter = keep.len();
    if keep.is_empty() {
        return Ok((vec![], stats));
    }
    let kidx = Tensor::new(keep.iter().map(|&i| i as u32).collect::<Vec<_>>(), dev)?;
    let soft = soft.index_select(&kidx, 0)?;
    let bin = bin.index_select(&kidx, 0)?;
    let sums: Vec<f32> = keep.iter().map(|&i| sums[i]).collect();
    let labels: Vec<usize> = keep.iter().map(|&i| sel_labels[i]).collect();
    let maskness: Vec<f32> = (&soft * &bin)?.sum(D::Minus1)?.sum(D::Minus1)?.to_vec1()?;
    let scores: Vec<f32> = keep
        .iter()
        .zip(maskness.iter().zip(&sums))
        .map(|(&i, (m, a))| sel_scores[i] * (m / a))
        .collect();
    let nms = matrix_nms(
        &bin,
        &labels,
        &scores,
        Some(&sums),
        &MatrixNmsParams {
            kernel: t.kernel,
            sigma: t.sigma,
            nms_pre: t.nms_pre,
            filter_thr: t.filter_thr,
            max_num: t.max_per_img,
        },
    )?;
    stats.kept = nms.keep.len();
    if nms.keep.is_empty() {
        return Ok((vec![], stats));
    }
    let nidx = Tensor::new(nms.keep.iter().map(|&i| i as u32).collect::<Vec<_>>(), dev)?;
    let soft = soft.index_select(&nidx, 0)?.unsqueeze(0)?;
    let (_, _, fh, fw) = soft.dims4()?;
    let (ih, iw) = img_hw;
    if ih == 0 || iw == 0 || ih > fh * MASK_STRIDE || iw > fw * MASK_STRIDE {
        return Err(SoloError::Input(format!(
            "image size {ih}x{iw} does not fit the padded input {}x{}",
            fh * MASK_STRIDE,
            fw * MASK_STRIDE
        )));
    }
    if ori_hw.0 == 0 || ori_hw.1 == 0 {
        return Err(SoloError::Input(
            "original image size must be positive".into(),
        ));
    }
    let up = ops::resize_bilinear(&soft, fh * MASK_STRIDE, fw * MASK_STRIDE)?
        .narrow(2, 0, ih)?
        .narrow(3, 0, iw)?
        .contiguous()?;
    let up = ops::resize_bilinear(&up, ori_hw.0, ori_hw.1)?.squeeze(0)?;
    let masks = up
        .gt(t.mask_thr as f64)?
        .to_dtype(DType::U8)?
        .affine(255.0, 0.0)?;
    let mut dets = Vec::with_capacity(nms.keep.len());
    for (k, (&i, &s)) in nms.keep.iter().zip(&nms.scores).enumerate() {
        let raw: Vec<u8> = masks.get(k)?.flatten_all()?.to_vec1()?;
        let mask = GrayImage::from_raw(ori_hw.1 as u32, ori_hw.0 as u32, raw)
            .ok_or_else(|| SoloError::Input("mask buffer size".into()))?;
        dets.push(Detection {
            label: labels[i],
            score: s,
            mask,
        });
    }
    Ok((dets, stats))
}

/// Prediction for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Instances (class, binary mask at the image's size, score), best first.
    pub instances: Vec<InstanceMask>,
    /// Stage counts.
    pub stats: InferenceStats,
}

impl Prediction {
    /// The instances with score >= `threshold` as a label map of `width x height`
    /// (`class_id * 16 + instance`): where instances overlap, the higher score wins; instance
    /// numbers count left to right (by mask centroid) within each class, so tonsil 0 is the
    /// image-left one as in the dataset encoding. At most 16 instances per class are kept (the
    /// best by score). Masks of another size are an error.
    pub fn to_label_map(&self, width: u32, height: u32, threshold: f32) -> Result<LabelMap> {
        let mut kept: Vec<&InstanceMask> = Vec::new();
        for inst in self.instances.iter().filter(|i| i.score >= threshold) {
            if inst.mask.dimensions() != (width, height) {
                return Err(SoloError::Shape {
                    what: "instance mask".into(),
                    expected: format!("{width}x{height}"),
                    got: vec![inst.mask.height() as usize, inst.mask.width() as usize],
                });
            }
            if kept.iter().filter(|k| k.class == inst.class).count() < 16 {
                kept.push(inst);
            }
        }
        // Instance number of each kept instance: rank of its centroid x within its class.
        let centroid_x = |m: &InstanceMask| {
            let (mut sum, mut n) = (0f64, 0f64);
            for (x, _, p) in m.mask.enumerate_pixels() {
                if p.0[0] != 0 {
                    sum += x as f64;
                    n += 1.0;
                }
            }
            if n > 0.0 { sum / n } else { 0.0 }
        };
        let cx: Vec<f64> = kept.iter().map(|m| centroid_x(m)).collect();
        let number = |i: usize| {
            (0..kept.len())
                .filter(|&j| kept[j].class == kept[i].class && (cx[j], j) < (cx[i], i))
                .count() as u8
        };
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by(|&a, &b| kept[b].score.total_cmp(&kept[a].score));
        let mut map = LabelMap::new(width, height);
        for i in order {
            let value = encode_label(kept[i].class, number(i));
            for (dst, &m) in map.as_raw_mut().iter_mut().zip(kept[i].mask.as_raw()) {
                if m != 0 && *dst == 0 {
                    *dst = value;
                }
            }
        }
        Ok(map)
    }
}

impl SoloV2 {
    /// Resizes RGB images to the square `input_size` and normalises them with
    /// `pixel_mean` / `pixel_std` (0-255 scale): `[B, 3, S, S]`.
    pub fn preprocess(&self, images: &[RgbImage], device: &Device) -> Result<Tensor> {
        let cfg = self.config();
        if cfg.in_channels != 3 {
            return Err(SoloError::Config(format!(
                "RGB images need in_channels = 3, the model has {}",
                cfg.in_channels
            )));
        }
        if images.is_empty() {
            return Err(SoloError::Input("no images".into()));
        }
        let s = cfg.input_size as u32;
        let mut resized = Vec::with_capacity(images.len());
        for (n, img) in images.iter().enumerate() {
            if img.width() == 0 || img.height() == 0 {
                return Err(SoloError::Shape {
                    what: format!("image {n}"),
                    expected: "a non-empty RGB image".into(),
                    got: vec![img.height() as usize, img.width() as usize, 3],
                });
            }
            resized.push(if img.dimensions() == (s, s) {
                std::borrow::Cow::Borrowed(img)
            } else {
                std::borrow::Cow::Owned(image::imageops::resize(
                    img,
                    s,
                    s,
                    image::imageops::FilterType::Triangle,
                ))
            });
        }
        let refs: Vec<&RgbImage> = resized.iter().map(|c| c.as_ref()).collect();
        normalize_images(&refs, cfg.pixel_mean, cfg.pixel_std, device)
    }

    /// Segments RGB images of any size: instances at each image's own size.
    pub fn predict(&self, images: &[RgbImage]) -> Result<Vec<Prediction>> {
        let dev = self.device();
        let x = self.preprocess(images, &dev)?;
        let out = self.forward(&x)?;
        let s = self.config().input_size;
        images
            .iter()
            .enumerate()
            .map(|(b, img)| {
                let ori = (img.height() as usize, img.width() as usize);
                let (dets, stats) = postprocess(&out, b, self.config(), (s, s), ori)?;
                let instances = dets
                    .into_iter()
                    .map(|d| {
                        let class = Class::ALL.get(d.label).copied().ok_or_else(|| {
                            SoloError::Config(format!(
                                "label {} has no anatomy class (4 classes)",
                                d.label
                            ))
                        })?;
                        Ok(InstanceMask {
                            class,
                            mask: d.mask,
                            score: d.score,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Prediction { instances, stats })
            })
            .collect()
    }
}

/// A synthesized sketch and how many instances it draws.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesizedSketch {
    /// The sketch (dark contours on white) at the image's size.
    pub sketch: GrayImage,
    /// Instances with score >= the sketch threshold (0 = a blank sketch).
    pub drawn: usize,
    /// The prediction it was drawn from.
    pub prediction: Prediction,
}

impl SynthesizedSketch {
    /// True when no instance passed the threshold (the sketch is blank but valid).
    pub fn is_empty(&self) -> bool {
        self.drawn == 0
    }
}

/// Draws the sketch of a prediction: contours of the instances with score >=
/// `sketch.score_threshold` (the paper's delta, 0.35 by default). No instance gives a blank
/// (white) sketch of `size` (width, height).
pub fn sketch_from_prediction(
    prediction: Prediction,
    size: (u32, u32),
    sketch: &SketchConfig,
) -> Result<SynthesizedSketch> {
    let drawn = prediction
        .instances
        .iter()
        .filter(|i| i.score >= sketch.score_threshold)
        .count();
    let image = if prediction.instances.is_empty() {
        GrayImage::from_pixel(size.0, size.1, image::Luma([255]))
    } else {
        render_sketch(&prediction.instances, sketch)?
    };
    Ok(SynthesizedSketch {
        sketch: image,
        drawn,
        prediction,
    })
}

/// S applied to one image: segment, then draw the contours of instances with score >= 0.35
/// ([`SketchConfig::default`]). Empty predictions give a blank sketch (`drawn == 0`); count
/// them with an [`EmptySketchCounter`].
pub fn sketch_from_image(model: &SoloV2, image: &RgbImage) -> Result<SynthesizedSketch> {
    let pred = model
        .predict(std::slice::from_ref(image))?
        .pop()
        .ok_or_else(|| SoloError::Input("no prediction".into()))?;
    sketch_from_prediction(pred, image.dimensions(), &SketchConfig::default())
}

/// Thread-safe tally of synthesized sketches and of the blank ones among them.
#[derive(Debug, Default)]
pub struct EmptySketchCounter {
    total: AtomicUsize,
    empty: AtomicUsize,
}

impl EmptySketchCounter {
    /// Records one sketch.
    pub fn record(&self, s: &SynthesizedSketch) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if s.is_empty() {
            self.empty.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (total, empty) so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.total.load(Ordering::Relaxed),
            self.empty.load(Ordering::Relaxed),
        )
    }
}
