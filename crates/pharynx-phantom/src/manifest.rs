//! `manifest.json`: what a dataset folder holds and how to regenerate it bit for bit.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the phantom generator. Bumped whenever the same seed would give other pixels.
pub const GENERATOR_VERSION: &str = "pharynx-phantom/1";

/// The manifest of a dataset folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always "sketch2medi-pharynx-phantom".
    pub kind: String,
    /// [`GENERATOR_VERSION`] of the generator that wrote the folder.
    pub generator_version: String,
    /// Base seed; sample seeds derive from it (see `samples.jsonl`).
    pub seed: u64,
    /// The `--scale` factor (1.0 = the paper's counts).
    pub scale: f64,
    /// Square image size in pixels.
    pub size: u32,
    /// Stroke width of the synthesized sketches, in pixels.
    pub sketch_stroke_width: f32,
    /// Number of ids in each split, by split name.
    pub counts: BTreeMap<String, usize>,
    /// Class ids and names used in the masks (`class_id * 16 + instance`).
    pub classes: BTreeMap<u8, String>,
    /// Label encoding, spelled out for readers of the folder.
    pub mask_encoding: String,
    /// Free-hand drawer style names, by index.
    pub freehand_styles: Vec<String>,
    /// The command line that wrote the folder.
    pub command: String,
}

pub const MANIFEST_KIND: &str = "sketch2medi-pharynx-phantom";
