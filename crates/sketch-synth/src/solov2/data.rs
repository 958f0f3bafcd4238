//! Training data of S: images with instance label maps, the dataset trait the trainer reads
//! through, and the augmentation of the reference recipe (reference A10) adapted to square
//! inputs.
//!
//! Augmentation per sample (all draws from one seeded [`Rng`], in a fixed order):
//! 1. resize to the square network input (image: triangle filter; labels: nearest);
//! 2. horizontal flip with probability `flip`; the label map's tonsil instances are swapped
//!    (0 <-> 1) so that instance 0 stays the image-left tonsil (the dataset's encoding).
//!    SOLOv2 itself only sees classes, so this only keeps the label map valid;
//! 3. scale and translation jitter about the image centre (`scale_jitter`: s in
//!    [1 - j, 1 + j]; `translate_jitter`: shifts up to j x size): the image is resampled
//!    bilinearly, the labels by nearest neighbour; pixels from outside are black / background.
//!    NOTE: the reference's multi-scale resize changes the input size; with a square input of
//!    fixed size (the phantom is square, and batches need one size) scale jitter plays its role;
//! 4. colour jitter (`brightness`, `contrast`, `saturation`, each a factor in [1 - j, 1 + j]).

use image::{GrayImage, RgbImage, imageops};
use rand::Rng as _;
use s2m_core::anatomy::{Class, LabelMap, decode_label, encode_label};
use s2m_core::rng::Rng;
use serde::{Deserialize, Serialize};

use super::error::{Result, SoloError};
use super::targets::GtInstance;

/// One annotated image.
#[derive(Debug, Clone, PartialEq)]
pub struct SegSample {
    /// RGB image.
    pub image: RgbImage,
    /// Instance label map of the same size (`class_id * 16 + instance`).
    pub labels: LabelMap,
}

impl SegSample {
    /// Checks that image and labels have the same non-zero size.
    pub fn validate(&self, what: &str) -> Result<()> {
        let (w, h) = self.image.dimensions();
        if w == 0 || h == 0 || (w, h) != (self.labels.width(), self.labels.height()) {
            return Err(SoloError::Shape {
                what: format!("{what}: label map"),
                expected: format!("the image's size {w}x{h} (non-empty)"),
                got: vec![self.labels.height() as usize, self.labels.width() as usize],
            });
        }
        Ok(())
    }
}

/// Annotated images the trainer and the evaluation read through (the CLI adapts the phantom's
/// dataset folders; tests use [`InMemorySegDataset`]).
pub trait SegDataset: Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sample `index` (`0..len`); errors name the file at fault.
    fn sample(&self, index: usize) -> Result<SegSample>;
    /// A short description for exports and reports (folder and split).
    fn describe(&self) -> String;
}

/// Samples held in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemorySegDataset {
    /// What the samples are (for exports).
    pub name: String,
    /// The samples.
    pub samples: Vec<SegSample>,
}

impl SegDataset for InMemorySegDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn sample(&self, index: usize) -> Result<SegSample> {
        self.samples.get(index).cloned().ok_or_else(|| {
            SoloError::Input(format!(
                "sample {index} of {} ({} samples)",
                self.name,
                self.samples.len()
            ))
        })
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Augmentation settings (see the module docs); [`AugmentConfig::none`] turns all off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Probability of a horizontal flip (0.5, as the reference).
    pub flip: f64,
    /// Scale factor jitter j: s in [1 - j, 1 + j] (0.1).
    pub scale_jitter: f32,
    /// Translation jitter as a fraction of the size (0.05).
    pub translate_jitter: f32,
    /// Brightness factor jitter (0.2).
    pub brightness: f32,
    /// Contrast factor jitter (0.2).
    pub contrast: f32,
    /// Saturation factor jitter (0.2).
    pub saturation: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip: 0.5,
            scale_jitter: 0.1,
            translate_jitter: 0.05,
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
        }
    }
}

impl AugmentConfig {
    /// No augmentation (only the resize).
    pub fn none() -> Self {
        Self {
            flip: 0.0,
            scale_jitter: 0.0,
            translate_jitter: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
        }
    }
}

/// Resizes a sample to `size x size` (image: triangle; labels: nearest).
pub fn resize_sample(sample: &SegSample, size: u32) -> SegSample {
    if sample.image.dimensions() == (size, size) {
        return sample.clone();
    }
    let image = imageops::resize(&sample.image, size, size, imageops::FilterType::Triangle);
    let labels = imageops::resize(
        sample.labels.as_gray(),
        size,
        size,
        imageops::FilterType::Nearest,
    );
    SegSample {
        image,
        labels: LabelMap::from_gray_unchecked(labels),
    }
}

/// Mirrors a sample left-right, swapping tonsil instances 0 and 1 (module docs, step 2).
pub fn flip_sample(sample: &SegSample) -> SegSample {
    let image = imageops::flip_horizontal(&sample.image);
    let mut labels = imageops::flip_horizontal(sample.labels.as_gray());
    for v in labels.iter_mut() {
        if let Some((Class::Tonsil, i @ 0..=1)) = decode_label(*v) {
            *v = encode_label(Class::Tonsil, 1 - i);
        }
    }
    SegSample {
        image,
        labels: LabelMap::from_gray_unchecked(labels),
    }
}

fn jitter(rng: &mut Rng, j: f32) -> f32 {
    if j > 0.0 {
        rng.random_range(-j..=j)
    } else {
        0.0
    }
}

/// Scale `s` and shift `(tx, ty)` (pixels) about the centre: output pixel p takes the input at
/// `(p - c - t) / s + c`.
fn affine(sample: &SegSample, s: f32, tx: f32, ty: f32) -> SegSample {
    let (w, h) = sample.image.dimensions();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let src = |x: u32, y: u32| ((x as f32 - cx - tx) / s + cx, (y as f32 - cy - ty) / s + cy);
    let img = &sample.image;
    let image = RgbImage::from_fn(w, h, |x, y| {
        let (sx, sy) = src(x, y);
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let mut acc = [0f32; 3];
        for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                let (px, py) = (x0 as i64 + dx, y0 as i64 + dy);
                if px >= 0 && py >= 0 && px < w as i64 && py < h as i64 {
                    let p = img.get_pixel(px as u32, py as u32).0;
                    for c in 0..3 {
                        acc[c] += wx * wy * p[c] as f32;
                    }
                }
            }
        }
        image::Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
    });
    let lab = sample.labels.as_gray();
    let labels = GrayImage::from_fn(w, h, |x, y| {
        let (sx, sy) = src(x, y);
        let (px, py) = (sx.round() as i64, sy.round() as i64);
        if px >= 0 && py >= 0 && px < w as i64 && py < h as i64 {
            *lab.get_pixel(px as u32, py as u32)
        } else {
            image::Luma([0])
        }
    });
    SegSample {
        image,
        labels: LabelMap::from_gray_unchecked(labels),
    }
}

/// Brightness, contrast (about the image mean) and saturation (about the pixel's luma).
fn colour(image: &mut RgbImage, brightness: f32, contrast: f32, saturation: f32) {
    let n = (image.width() * image.height()).max(1) as f32;
    let luma = |p: &[u8; 3]| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
    let mean = image.pixels().map(|p| luma(&p.0)).sum::<f32>() / n;
    for p in image.pixels_mut() {
        let l = luma(&p.0);
        for c in 0..3 {
            let v = l + (p.0[c] as f32 - l) * saturation;
            let v = (mean + (v - mean) * contrast) * brightness;
            p.0[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Resizes to `size` and applies the augmentation of `cfg` with draws from `rng`.
pub fn augment(sample: &SegSample, size: u32, cfg: &AugmentConfig, rng: &mut Rng) -> SegSample {
    let mut out = resize_sample(sample, size);
    // Fixed draw order, whatever is switched off, so a config change does not shift the rest.
    let flip = rng.random::<f64>() < cfg.flip;
    let s = 1.0 + jitter(rng, cfg.scale_jitter);
    let tx = jitter(rng, cfg.translate_jitter) * size as f32;
    let ty = jitter(rng, cfg.translate_jitter) * size as f32;
    let b = 1.0 + jitter(rng, cfg.brightness);
    let c = 1.0 + jitter(rng, cfg.contrast);
    let sat = 1.0 + jitter(rng, cfg.saturation);
    if flip {
        out = flip_sample(&out);
    }
    if s != 1.0 || tx != 0.0 || ty != 0.0 {
        out = affine(&out, s, tx, ty);
    }
    if b != 1.0 || c != 1.0 || sat != 1.0 {
        colour(&mut out.image, b, c, sat);
    }
    out
}

/// The ground-truth instances of a label map (label = class index 0..4, 0/1 masks).
pub fn gt_instances(labels: &LabelMap) -> Vec<GtInstance> {
    labels
        .instances()
        .into_iter()
        .map(|info| GtInstance {
            label: info.class.index(),
            mask: labels
                .as_raw()
                .iter()
                .map(|&v| u8::from(v == info.label))
                .collect(),
        })
        .collect()
}

/// Normalised network input `[B, 3, S, S]` of square RGB images of the same size `S`
/// (`(v - mean) / std` per channel on the 0-255 scale).
pub fn normalize_images(
    images: &[&RgbImage],
    mean: [f32; 3],
    std: [f32; 3],
    device: &candle_core::Device,
) -> Result<candle_core::Tensor> {
    let Some(first) = images.first() else {
        return Err(SoloError::Input("no images".into()));
    };
    let (w, h) = first.dimensions();
    let plane = (w * h) as usize;
    let mut buf = vec![0f32; images.len() * 3 * plane];
    for (n, img) in images.iter().enumerate() {
        if img.dimensions() != (w, h) {
            return Err(SoloError::Shape {
                what: format!("image {n} of the batch"),
                expected: format!("{w}x{h} like image 0"),
                got: vec![img.height() as usize, img.width() as usize, 3],
            });
        }
        let base = n * 3 * plane;
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for ch in 0..3 {
                buf[base + ch * plane + i] = (px[ch] as f32 - mean[ch]) / std[ch];
            }
        }
    }
    Ok(candle_core::Tensor::from_vec(
        buf,
        (images.len(), 3, h as usize, w as usize),
        device,
    )?)
}

/// A hand-drawn "throat" of `size x size` for tests and benches: pharyngeal wall, a uvula
/// shifted right by `shift` (in 64ths of the size), two tonsils (instance 0 left) and the
/// tongue as flat-coloured rectangles.
pub fn toy_sample(size: u32, shift: u32) -> SegSample {
    let px = |v: u32| v * size / 64;
    let mut labels = GrayImage::new(size, size);
    let mut image = RgbImage::from_pixel(size, size, image::Rgb([30, 10, 10]));
    let regions = [
        (16, 48, 8, 40, (Class::PharyngealWall, 0), [200, 90, 90]),
        (
            30 + shift,
            34 + shift,
            8,
            22,
            (Class::Uvula, 0),
            [240, 150, 150],
        ),
        (4, 14, 16, 40, (Class::Tonsil, 0), [170, 60, 70]),
        (50, 60, 16, 40, (Class::Tonsil, 1), [170, 60, 70]),
        (8, 56, 42, 62, (Class::Tongue, 0), [220, 120, 130]),
    ];
    for (x0, x1, y0, y1, (class, i), c) in regions {
        for y in px(y0)..px(y1).min(size) {
            for x in px(x0)..px(x1).min(size) {
                labels.put_pixel(x, y, image::Luma([encode_label(class, i)]));
                image.put_pixel(x, y, image::Rgb(c));
            }
        }
    }
    SegSample {
        image,
        labels: LabelMap::from_gray_unchecked(labels),
    }
}
