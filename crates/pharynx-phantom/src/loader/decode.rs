//! Decoding the files of one item into flat buffers (images and sketches in `[-1, 1]`, masks as
//! validated label values), checking their size and resizing them when asked.

use super::LoaderConfig;
use super::error::{LoaderError, Result};
use super::source::Item;
use image::imageops::{FilterType, resize};
use s2m_core::{LabelMap, imageio};
use std::path::Path;

/// The decoded files of one item, before stacking into a batch.
pub(super) struct Decoded {
    /// `[3, H, W]` channel-first.
    pub image: Vec<f32>,
    /// `[H, W]`, if loaded.
    pub sketch: Option<Vec<f32>>,
    /// `[H, W]` label values, if loaded.
    pub mask: Option<Vec<u8>>,
}

/// Decodes and checks the files of one item; every file must be `size` (width, height).
pub(super) fn decode_item(item: &Item, config: &LoaderConfig, size: (u32, u32)) -> Result<Decoded> {
    let target = config.resize_to.filter(|&s| (s, s) != size);
    let mut image = imageio::load_rgb(&item.image)?;
    check_size(&item.image, image.dimensions(), size)?;
    if let Some(s) = target {
        image = resize(&image, s, s, FilterType::Triangle);
    }
    let sketch = match (&item.sketch, config.load_sketches) {
        (Some(path), true) => {
            let mut g = imageio::load_gray(path)?;
            check_size(path, g.dimensions(), size)?;
            if let Some(s) = target {
                g = resize(&g, s, s, FilterType::Triangle);
            }
            Some(imageio::gray_to_vec(&g))
        }
        _ => None,
    };
    let mask = match (&item.mask, config.load_masks) {
        (Some(path), true) => {
            let mut g = imageio::load_gray(path)?;
            check_size(path, g.dimensions(), size)?;
            let labels = LabelMap::from_gray(g, &path.display().to_string())?;
            g = labels.as_gray().clone();
            if let Some(s) = target {
                g = resize(&g, s, s, FilterType::Nearest);
            }
            Some(g.into_raw())
        }
        _ => None,
    };
    Ok(Decoded {
        image: imageio::rgb_to_chw(&image),
        sketch,
        mask,
    })
}

fn check_size(path: &Path, got: (u32, u32), expected: (u32, u32)) -> Result<()> {
    if got != expected {
        return Err(LoaderError::WrongSize {
            path: path.to_path_buf(),
            expected,
            got,
        });
    }
    Ok(())
}
