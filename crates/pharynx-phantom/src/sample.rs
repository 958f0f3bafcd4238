//! One dataset sample: a rendered phantom with its synthesized sketch, and optionally a
//! simulated free-hand sketch of it. Every sample is a pure function of (base seed, stream,
//! index), so any sample can be regenerated alone.

use crate::error::Result;
use crate::params::PhantomParams;
use crate::render::{Phantom, render};
use image::GrayImage;
use s2m_core::anatomy::Class;
use s2m_core::rng::{derive_seed, rng_from_seed};
use serde::{Deserialize, Serialize};
use sketch_synth::{DrawerStyle, SketchConfig, render_label_map, simulate_freehand_label_map};

/// Seed streams: independent sequences derived from the dataset's base seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// The generation set (the paper's 60,000 images).
    Train = 1,
    /// Held-out references of the free-hand sketches.
    Reference = 2,
    /// The free-hand drawing of each reference.
    Freehand = 3,
    /// The contact sheet's samples.
    Preview = 4,
}

/// The seed of sample `index` of `stream`.
pub fn sample_seed(base: u64, stream: Stream, index: usize) -> u64 {
    derive_seed(base, stream as u64, index as u64)
}

/// A rendered sample with its synthesized (ground-truth contour) sketch.
pub struct Sample {
    pub seed: u64,
    pub params: PhantomParams,
    pub phantom: Phantom,
    pub sketch: GrayImage,
}

/// What `samples.jsonl` records of each sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub id: String,
    pub seed: u64,
    /// Visible tonsil instances in the mask (0-2).
    pub tonsils: u8,
    /// Classes present in the mask.
    pub classes: Vec<Class>,
    /// True when the synthesized sketch has no stroke (never expected for the phantom).
    pub empty_sketch: bool,
    pub params: PhantomParams,
}

/// What `freehand.jsonl` records of each free-hand sketch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreehandRecord {
    /// Id of the reference image (`images/<id>.png`, `masks/<id>.png`, `freehand/<id>.png`).
    pub id: String,
    /// Drawer style name and index into the manifest's `freehand_styles`.
    pub style: String,
    pub style_index: usize,
    /// Seed of the drawing.
    pub seed: u64,
    /// Mean distance (px) from the sketch's strokes to the true contours; null if blank.
    pub chamfer_px: Option<f32>,
    /// Contours the drawer left out.
    pub omitted: usize,
}

/// Generates sample `index` of `stream`.
pub fn generate(
    base_seed: u64,
    stream: Stream,
    index: usize,
    size: u32,
    sketch: &SketchConfig,
) -> Result<Sample> {
    let seed = sample_seed(base_seed, stream, index);
    let params = PhantomParams::sample(&mut rng_from_seed(seed));
    let phantom = render(&params, size)?;
    let sketch = render_label_map(&phantom.labels, sketch)?;
    Ok(Sample {
        seed,
        params,
        phantom,
        sketch,
    })
}

impl Sample {
    /// The record of this sample for `samples.jsonl`.
    pub fn record(&self, id: String) -> SampleRecord {
        let mut classes: Vec<Class> = self
            .phantom
            .labels
            .instances()
            .iter()
            .map(|i| i.class)
            .collect();
        classes.dedup();
        SampleRecord {
            id,
            seed: self.seed,
            tonsils: self.phantom.tonsil_count,
            classes,
            empty_sketch: sketch_synth::is_blank(&self.sketch),
            params: self.params.clone(),
        }
    }
}

/// Draws a free-hand sketch of `sample` in `style`, seeded by (base seed, index).
pub fn draw_freehand(
    sample: &Sample,
    style: &DrawerStyle,
    base_seed: u64,
    index: usize,
) -> Result<(GrayImage, u64, usize, Option<f32>)> {
    let seed = sample_seed(base_seed, Stream::Freehand, index);
    let drawn =
        simulate_freehand_label_map(&sample.phantom.labels, style, &mut rng_from_seed(seed))?;
    let chamfer = sketch_synth::chamfer_to_true_contours(&drawn.image, &sample.phantom.labels)?;
    Ok((drawn.image, seed, drawn.omitted, chamfer))
}
