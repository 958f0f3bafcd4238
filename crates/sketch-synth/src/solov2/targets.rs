//! SOLOv2 training targets (mmdetection `SOLOV2Head._get_targets_single`, reference A6).
//!
//! For each ground-truth instance and each level whose scale range [lo, hi] contains
//! sqrt(w * h) of its box (ranges overlap: an instance may go to two or three levels):
//! centre = the mask's centre of mass; centre region = centre +- 0.5 * (w, h) * `pos_scale`;
//! grid index of a coordinate c: trunc((c / U) / (1 / S)) with U = 4 x the mask-feature size;
//! the region is clamped to [0, S - 1] and to the 3 x 3 cells around the centre cell. Every cell
//! in it is positive with the instance's label (later instances overwrite the label) and gets
//! the mask rescaled by 1/4 (`mmcv.imrescale`, cv2 bilinear on the 0/1 uint8 mask) as target;
//! one target is appended per (instance, cell), so a cell hit by two instances appears twice
//! in the mask targets but counts once in `num_pos` (as in mmdet). Empty masks are skipped.
//!
//! NOTE: boxes are derived from the masks (x1 = min x, x2 = max x + 1, likewise y), as mmdet's
//! `BitmapMasks.get_bboxes`; the phantom has no separate box annotation.
//! NOTE: the 1/4 rescale reimplements cv2 `INTER_LINEAR` (half-pixel centres, weights rounded
//! half up on the 0/1 values); for the exact 1/4 scale used here (input multiple of 32) this
//! is a 2x2 vote with ties counted as inside.

use candle_core::{Device, Tensor};

use super::config::{MASK_STRIDE, SoloV2Config};
use super::error::{Result, SoloError};

/// One ground-truth instance at the network input size.
#[derive(Debug, Clone, PartialEq)]
pub struct GtInstance {
    /// Class index 0..C.
    pub label: usize,
    /// Row-major binary mask (non-zero = inside) of the input size `height x width`.
    pub mask: Vec<u8>,
}

/// Targets of one level of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelTargets {
    /// Grid number S.
    pub grid: usize,
    /// Per cell (row-major S x S): the class label, or `None` for background.
    pub labels: Vec<Option<usize>>,
    /// Cell index of every mask target, in order (may repeat a cell).
    pub pos_index: Vec<usize>,
    /// Mask targets (0/1, row-major, the mask-feature size), one per `pos_index` entry.
    pub mask_targets: Vec<Vec<u8>>,
}

impl LevelTargets {
    /// Distinct positive cells (mmdet's `pos_mask.sum()`).
    pub fn num_pos(&self) -> usize {
        self.labels.iter().filter(|l| l.is_some()).count()
    }
}

/// Targets of one image over all levels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageTargets {
    /// Per level.
    pub levels: Vec<LevelTargets>,
    /// Mask-feature size (h, w) = input size / 4.
    pub feat_hw: (usize, usize),
}

impl ImageTargets {
    /// Distinct positive cells over all levels.
    pub fn num_pos(&self) -> usize {
        self.levels.iter().map(LevelTargets::num_pos).sum()
    }

    /// Flat cell index (level-major, as `SoloV2Output::flat_kernels`) of every mask target.
    pub fn flat_pos_index(&self) -> Vec<u32> {
        let mut off = 0;
        let mut v = Vec::new();
        for l in &self.levels {
            v.extend(l.pos_index.iter().map(|&i| (off + i) as u32));
            off += l.grid * l.grid;
        }
        v
    }

    /// One-hot category targets `[cells, C]` (f32) in flat cell order.
    pub fn cls_onehot(&self, num_classes: usize, dev: &Device) -> Result<Tensor> {
        let cells: usize = self.levels.iter().map(|l| l.grid * l.grid).sum();
        let mut v = vec![0f32; cells * num_classes];
        let mut off = 0;
        for l in &self.levels {
            for (i, lab) in l.labels.iter().enumerate() {
                if let Some(c) = lab {
                    v[(off + i) * num_classes + c] = 1.0;
                }
            }
            off += l.grid * l.grid;
        }
        Ok(Tensor::from_vec(v, (cells, num_classes), dev)?)
    }

    /// All mask targets `[P, h * w]` (f32) in [`Self::flat_pos_index`] order.
    pub fn mask_targets(&self, dev: &Device) -> Result<Tensor> {
        let (h, w) = self.feat_hw;
        let v: Vec<f32> = self
            .levels
            .iter()
            .flat_map(|l| l.mask_targets.iter())
            .flat_map(|m| m.iter().map(|&x| x as f32))
            .collect();
        let p = v.len() / (h * w).max(1);
        Ok(Tensor::from_vec(v, (p, h * w), dev)?)
    }
}

/// `mmcv.imrescale(mask, 1 / 4)`: cv2 `INTER_LINEAR` resize of a 0/1 mask to
/// `(int(w / 4 + 0.5), int(h / 4 + 0.5))`, result 0/1.
pub fn rescale_mask(mask: &[u8], h: usize, w: usize) -> Vec<u8> {
    let oh = (h as f64 * 0.25 + 0.5) as usize;
    let ow = (w as f64 * 0.25 + 0.5) as usize;
    let taps = |inp: usize, out: usize| -> Vec<(usize, usize, f64)> {
        let scale = inp as f64 / out as f64;
        (0..out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
                let a = (s.floor() as usize).min(inp - 1);
                let b = (a + 1).min(inp - 1);
                (a, b, s - a as f64)
            })
            .collect()
    };
    let (ty, tx) = (taps(h, oh), taps(w, ow));
    let px = |y: usize, x: usize| f64::from(u8::from(mask[y * w + x] != 0));
    let mut out = vec![0u8; oh * ow];
    for (oy, &(y0, y1, fy)) in ty.iter().enumerate() {
        for (ox, &(x0, x1, fx)) in tx.iter().enumerate() {
            let top = px(y0, x0) * (1.0 - fx) + px(y0, x1) * fx;
            let bot = px(y1, x0) * (1.0 - fx) + px(y1, x1) * fx;
            let v = top * (1.0 - fy) + bot * fy;
            out[oy * ow + ox] = u8::from(v >= 0.5 - 1e-9);
        }
    }
    out
}

fn grid_index(c: f32, size: usize, s: usize) -> i64 {
    ((c / size as f32) / (1.0 / s as f32)).trunc() as i64
}

/// Builds the targets of one image of input size `input_hw` (multiples of 32).
pub fn build_targets(
    gts: &[GtInstance],
    input_hw: (usize, usize),
    cfg: &SoloV2Config,
) -> Result<ImageTargets> {
    let (h, w) = input_hw;
    if h == 0 || w == 0 || !h.is_multiple_of(32) || !w.is_multiple_of(32) {
        return Err(SoloError::Input(format!(
            "input size {h}x{w} must be positive multiples of 32"
        )));
    }
    let feat_hw = (h / MASK_STRIDE, w / MASK_STRIDE);
    let (uh, uw) = (feat_hw.0 * MASK_STRIDE, feat_hw.1 * MASK_STRIDE);
    // Per instance: box, scale, centre of mass, rescaled mask (None = empty mask).
    let mut info = Vec::with_capacity(gts.len());
    for (n, g) in gts.iter().enumerate() {
        if g.mask.len() != h * w {
            return Err(SoloError::Input(format!(
                "instance {n}: mask has {} pixels, expected {h}x{w}",
                g.mask.len()
            )));
        }
        if g.label >= cfg.num_classes {
            return Err(SoloError::Input(format!(
                "instance {n}: label {} >= num_classes {}",
                g.label, cfg.num_classes
            )));
        }
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let (mut sy, mut sx, mut cnt) = (0f64, 0f64, 0f64);
        for y in 0..h {
            for x in 0..w {
                if g.mask[y * w + x] != 0 {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                    sy += y as f64;
                    sx += x as f64;
                    cnt += 1.0;
                }
            }
        }
        if cnt == 0.0 {
            info.push(None);
            continue;
        }
        let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);
        let norm = cnt.max(1e-6);
        info.push(Some((
            (bw * bh).sqrt(),
            bw,
            bh,
            (sy / norm) as f32,
            (sx / norm) as f32,
        )));
    }
    let mut levels = Vec::with_capacity(cfg.num_grids.len());
    for (&(lo, hi), &s) in cfg.scale_ranges.iter().zip(&cfg.num_grids) {
        let mut lt = LevelTargets {
            grid: s,
            labels: vec![None; s * s],
            pos_index: vec![],
            mask_targets: vec![],
        };
        for (g, inf) in gts.iter().zip(&info) {
            let Some((scale, bw, bh, ch, cw)) = *inf else {
                continue;
            };
            if !(scale >= lo && scale <= hi) {
                continue;
            }
            let (rw, rh) = (0.5 * bw * cfg.pos_scale, 0.5 * bh * cfg.pos_scale);
            let last = s as i64 - 1;
            let coord_w = grid_index(cw, uw, s);
            let coord_h = grid_index(ch, uh, s);
            let top_box = grid_index(ch - rh, uh, s).max(0);
            let down_box = grid_index(ch + rh, uh, s).min(last);
            let left_box = grid_index(cw - rw, uw, s).max(0);
            let right_box = grid_index(cw + rw, uw, s).min(last);
            let top = top_box.max(coord_h - 1);
            let down = down_box.min(coord_h + 1);
            let left = left_box.max(coord_w - 1);
            let right = right_box.min(coord_w + 1);
            let target = rescale_mask(&g.mask, h, w);
            for i in top..=down {
                for j in left..=right {
                    let idx = (i * s as i64 + j) as usize;
                    lt.labels[idx] = Some(g.label);
                    lt.pos_index.push(idx);
                    lt.mask_targets.push(target.clone());
                }
            }
        }
        levels.push(lt);
    }
    Ok(ImageTargets { levels, feat_hw })
}
