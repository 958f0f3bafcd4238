//! Synthetic pharynx-like label maps, for tests, calibration and examples (not anatomy: just
//! the right topology and layout).
//!
//! Painted back to front: a pharyngeal-wall ellipse running off the top of the image, two
//! tonsil blobs over its sides, a uvula teardrop hanging inside the wall (so the wall has a
//! hole), and a tongue arch over the bottom that runs off the bottom and side edges.

use image::GrayImage;
use rand::Rng as _;
use s2m_core::anatomy::encode_label;
use s2m_core::rng::Rng;
use s2m_core::{Class, LabelMap};

/// A random pharynx-like `size` x `size` label map with five instances (uvula, wall, two
/// tonsils, tongue); shapes and positions vary with `rng`.
pub fn synthetic_pharynx(size: u32, rng: &mut Rng) -> LabelMap {
    let mut jitter = |amount: f32| rng.random_range(-amount..=amount);
    // Everything in units of the image size.
    let wall = (
        0.5 + jitter(0.03),
        0.40 + jitter(0.03),
        0.30 + jitter(0.03),
        0.46 + jitter(0.03),
    );
    let left_tonsil = (
        0.24 + jitter(0.03),
        0.56 + jitter(0.04),
        0.11 + jitter(0.02),
        0.16 + jitter(0.03),
    );
    let right_tonsil = (
        0.76 + jitter(0.03),
        0.56 + jitter(0.04),
        0.11 + jitter(0.02),
        0.16 + jitter(0.03),
    );
    let uvula_x = 0.5 + jitter(0.03);
    let uvula_top = 0.14 + jitter(0.03);
    let uvula_bulb_y = 0.42 + jitter(0.03);
    let uvula_radius = 0.055 + jitter(0.01);
    let uvula_sway = jitter(0.15);
    let tongue_top = 0.74 + jitter(0.03);
    let tongue_curve = 0.14 + jitter(0.04);

    let labels = [
        encode_label(Class::PharyngealWall, 0),
        encode_label(Class::Tonsil, 0),
        encode_label(Class::Tonsil, 1),
        encode_label(Class::Uvula, 0),
        encode_label(Class::Tongue, 0),
    ];
    let in_ellipse = |u: f32, v: f32, (cx, cy, rx, ry): (f32, f32, f32, f32)| {
        ((u - cx) / rx).powi(2) + ((v - cy) / ry).powi(2) <= 1.0
    };
    let in_uvula = |u: f32, v: f32| {
        let centre_x = uvula_x + uvula_sway * (v - uvula_bulb_y);
        let in_bulb = (u - centre_x).hypot(v - uvula_bulb_y) <= uvula_radius;
        let t = (v - uvula_top) / (uvula_bulb_y - uvula_top);
        let stem_half_width = 0.02 + 0.8 * uvula_radius * t;
        in_bulb || ((0.0..=1.0).contains(&t) && (u - centre_x).abs() <= stem_half_width)
    };
    let in_tongue = |u: f32, v: f32| v >= tongue_top + tongue_curve * ((u - 0.5) / 0.5).powi(2);

    let image = GrayImage::from_fn(size, size, |x, y| {
        let (u, v) = (
            (x as f32 + 0.5) / size as f32,
            (y as f32 + 0.5) / size as f32,
        );
        let value = if in_tongue(u, v) {
            labels[4]
        } else if in_uvula(u, v) {
            labels[3]
        } else if in_ellipse(u, v, right_tonsil) {
            labels[2]
        } else if in_ellipse(u, v, left_tonsil) {
            labels[1]
        } else if in_ellipse(u, v, wall) {
            labels[0]
        } else {
            0
        };
        image::Luma([value])
    });
    LabelMap::from_gray_unchecked(image)
}
