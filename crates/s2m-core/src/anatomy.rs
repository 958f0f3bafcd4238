//! The four anatomical classes of Sketch2MedI and the instance masks drawn over them.
//!
//! # Label-map encoding (dataset folders)
//! A [`LabelMap`] stores all instances of one image in a single 8-bit grayscale PNG:
//! `value = class_id * 16 + instance`, with `class_id` in `1..=4` (see [`Class`]) and
//! `instance` in `0..16` counting instances of that class (for tonsils: 0 = left of the image,
//! 1 = right). `0` is background (everything unlabeled: palate, cheeks, teeth, lips, darkness).
//! Masks are the *visible* regions, so instances never overlap.

use crate::error::{CoreError, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};

/// An anatomical class, with the id used in label maps and by the segmentation model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Uvula = 1,
    PharyngealWall = 2,
    Tonsil = 3,
    Tongue = 4,
}

impl Class {
    /// All classes in id order.
    pub const ALL: [Class; 4] = [
        Class::Uvula,
        Class::PharyngealWall,
        Class::Tonsil,
        Class::Tongue,
    ];

    /// The class id (1..=4) used in label maps.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The zero-based index (0..4) used for model outputs.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    /// The class with this id, if any.
    pub fn from_id(id: u8) -> Option<Class> {
        match id {
            1 => Some(Class::Uvula),
            2 => Some(Class::PharyngealWall),
            3 => Some(Class::Tonsil),
            4 => Some(Class::Tongue),
            _ => None,
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Uvula => "uvula",
            Class::PharyngealWall => "pharyngeal wall",
            Class::Tonsil => "tonsil",
            Class::Tongue => "tongue",
        }
    }

    /// A distinct overlay colour for visualisations.
    pub fn colour(self) -> [u8; 3] {
        match self {
            Class::Uvula => [255, 200, 0],
            Class::PharyngealWall => [0, 170, 255],
            Class::Tonsil => [60, 220, 60],
            Class::Tongue => [230, 40, 200],
        }
    }
}

/// Encodes a (class, instance) pair as a label value.
pub fn encode_label(class: Class, instance: u8) -> u8 {
    debug_assert!(instance < 16);
    class.id() * 16 + (instance & 15)
}

/// Decodes a label value into (class, instance); `None` for background or invalid values.
pub fn decode_label(value: u8) -> Option<(Class, u8)> {
    Class::from_id(value / 16).map(|c| (c, value % 16))
}

/// One instance in a label map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceInfo {
    pub label: u8,
    pub class: Class,
    pub instance: u8,
    /// Number of pixels.
    pub area: u32,
}

/// All instances of one image as a single label image (see the module docs for the encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    labels: GrayImage,
}

impl LabelMap {
    /// An all-background label map.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            labels: GrayImage::new(width, height),
        }
    }

    /// Wraps a label image, validating every value.
    pub fn from_gray(labels: GrayImage, what: &str) -> Result<Self> {
        for (x, y, p) in labels.enumerate_pixels() {
            let v = p.0[0];
            if v != 0 && decode_label(v).is_none() {
                return Err(CoreError::BadLabel {
                    what: what.to_string(),
                    value: v,
                    x,
                    y,
                });
            }
        }
        Ok(Self { labels })
    }

    /// Wraps a label image without validation (the caller guarantees the encoding).
    pub fn from_gray_unchecked(labels: GrayImage) -> Self {
        Self { labels }
    }

    pub fn width(&self) -> u32 {
        self.labels.width()
    }

    pub fn height(&self) -> u32 {
        self.labels.height()
    }

    /// The label image.
    pub fn as_gray(&self) -> &GrayImage {
        &self.labels
    }

    /// Raw label values, row-major.
    pub fn as_raw(&self) -> &[u8] {
        self.labels.as_raw()
    }

    /// Mutable raw label values, row-major.
    pub fn as_raw_mut(&mut self) -> &mut [u8] {
        &mut self.labels
    }

    /// The label at a pixel.
    pub fn get(&self, x: u32, y: u32) -> u8 {
        self.labels.get_pixel(x, y).0[0]
    }

    /// The instances present, sorted by label, with their areas.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let mut counts = [0u32; 256];
        for &v in self.labels.as_raw() {
            counts[v as usize] += 1;
        }
        counts
            .iter()
            .enumerate()
            .filter(|(v, n)| **n > 0 && *v != 0)
            .filter_map(|(v, n)| {
                decode_label(v as u8).map(|(class, instance)| InstanceInfo {
                    label: v as u8,
                    class,
                    instance,
                    area: *n,
                })
            })
            .collect()
    }

    /// Binary mask (0 / 255) of one label value.
    pub fn mask_of(&self, label: u8) -> GrayImage {
        let raw = self
            .labels
            .as_raw()
            .iter()
            .map(|&v| if v == label { 255 } else { 0 })
            .collect();
        GrayImage::from_raw(self.width(), self.height(), raw).expect("same size")
    }

    /// Binary mask (0 / 255) of a whole class (the semantic mask).
    pub fn class_mask(&self, class: Class) -> GrayImage {
        let raw = self
            .labels
            .as_raw()
            .iter()
            .map(|&v| if v / 16 == class.id() { 255 } else { 0 })
            .collect();
        GrayImage::from_raw(self.width(), self.height(), raw).expect("same size")
    }

    /// The instances as separate masks, each with score 1 (ground truth).
    pub fn to_instance_masks(&self) -> Vec<InstanceMask> {
        self.instances()
            .into_iter()
            .map(|info| InstanceMask {
                class: info.class,
                mask: self.mask_of(info.label),
                score: 1.0,
            })
            .collect()
    }
}

/// One instance mask with its class and confidence score (1 for ground truth; the
/// segmentation model's score for predictions). `mask` holds 0 (outside) or 255 (inside);
/// any non-zero value counts as inside.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceMask {
    pub class: Class,
    pub mask: GrayImage,
    pub score: f32,
}

impl InstanceMask {
    /// Number of pixels inside the mask.
    pub fn area(&self) -> u32 {
        self.mask.as_raw().iter().filter(|&&v| v != 0).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trip() {
        for c in Class::ALL {
            for i in 0..16 {
                assert_eq!(decode_label(encode_label(c, i)), Some((c, i)));
            }
            assert_eq!(Class::from_id(c.id()), Some(c));
        }
        assert_eq!(decode_label(0), None);
        assert_eq!(decode_label(5 * 16), None);
    }

    #[test]
    fn instances_and_masks() {
        let mut m = LabelMap::new(4, 2);
        m.as_raw_mut()[0] = encode_label(Class::Tonsil, 0);
        m.as_raw_mut()[1] = encode_label(Class::Tonsil, 1);
        m.as_raw_mut()[2] = encode_label(Class::Tonsil, 1);
        let inst = m.instances();
        assert_eq!(inst.len(), 2);
        assert_eq!(inst[1].area, 2);
        assert_eq!(
            m.class_mask(Class::Tonsil)
                .as_raw()
                .iter()
                .filter(|v| **v == 255)
                .count(),
            3
        );
        let masks = m.to_instance_masks();
        assert_eq!(masks[1].area(), 2);
    }

    #[test]
    fn invalid_labels_are_rejected_with_position() {
        let mut g = GrayImage::new(3, 3);
        g.put_pixel(2, 1, image::Luma([99]));
        let err = LabelMap::from_gray(g, "m.png").unwrap_err().to_string();
        assert!(
            err.contains("m.png") && err.contains("99") && err.contains("(2, 1)"),
            "{err}"
        );
    }
}
