//! The on-disk layout of a dataset folder (documented in `docs/DATASET.md`).
//!
//! ```text
//! <root>/
//!   manifest.json                 written last: its presence marks a complete folder
//!   images/<id>.png               RGB8 photo-like image, size x size
//!   masks/<id>.png                L8 label map (class_id * 16 + instance, 0 = background)
//!   sketches/<id>.png             L8 synthesized sketch: contours of the masks, dark on white
//!   freehand/<id>.png             L8 simulated free-hand sketch of reference <id>
//!   freehand.jsonl                one JSON object per free-hand sketch (id, style, chamfer)
//!   samples.jsonl                 one JSON object per image: id, seed, phantom parameters
//!   splits/<split>.txt            one id per line
//! ```
//! Ids are `000123` for the generation set (the paper's 60,000 images) and `ref000123` for the
//! held-out references of the free-hand sketches.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const IMAGES: &str = "images";
pub const MASKS: &str = "masks";
pub const SKETCHES: &str = "sketches";
pub const FREEHAND: &str = "freehand";
pub const FREEHAND_INDEX: &str = "freehand.jsonl";
pub const SAMPLES_INDEX: &str = "samples.jsonl";
pub const SPLITS: &str = "splits";

/// The splits of a dataset folder, after the paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// All generation-set images (the paper's 60,000): trains G, E and H.
    Train,
    /// Annotated images for training the segmentation model S (the paper's 1,600).
    SegTrain,
    /// Annotated images for validating S (the paper's 400).
    SegVal,
    /// Held-out references with simulated free-hand sketches (the paper's 495 human sketches).
    Freehand,
}

impl Split {
    pub const ALL: [Split; 4] = [
        Split::Train,
        Split::SegTrain,
        Split::SegVal,
        Split::Freehand,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::SegTrain => "seg_train",
            Split::SegVal => "seg_val",
            Split::Freehand => "freehand",
        }
    }

    pub fn from_name(name: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Folder that holds this split's sketches (`freehand/` for the free-hand split).
    pub fn sketch_dir(self) -> &'static str {
        match self {
            Split::Freehand => FREEHAND,
            _ => SKETCHES,
        }
    }
}

/// Paths inside a dataset folder.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn manifest(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }
    pub fn image(&self, id: &str) -> PathBuf {
        self.root.join(IMAGES).join(format!("{id}.png"))
    }
    pub fn mask(&self, id: &str) -> PathBuf {
        self.root.join(MASKS).join(format!("{id}.png"))
    }
    pub fn sketch(&self, id: &str) -> PathBuf {
        self.root.join(SKETCHES).join(format!("{id}.png"))
    }
    pub fn freehand(&self, id: &str) -> PathBuf {
        self.root.join(FREEHAND).join(format!("{id}.png"))
    }
    pub fn split(&self, split: Split) -> PathBuf {
        self.root.join(SPLITS).join(format!("{}.txt", split.name()))
    }
    pub fn samples_index(&self) -> PathBuf {
        self.root.join(SAMPLES_INDEX)
    }
    pub fn freehand_index(&self) -> PathBuf {
        self.root.join(FREEHAND_INDEX)
    }
    /// The sketch of `id` as used by `split`.
    pub fn split_sketch(&self, split: Split, id: &str) -> PathBuf {
        self.root.join(split.sketch_dir()).join(format!("{id}.png"))
    }
}

/// Id of generation-set image `i`.
pub fn train_id(i: usize) -> String {
    format!("{i:06}")
}

/// Id of held-out reference `i`.
pub fn reference_id(i: usize) -> String {
    format!("ref{i:06}")
}

/// Reads a split list (one id per line, blank lines ignored).
pub fn read_split_list(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}
