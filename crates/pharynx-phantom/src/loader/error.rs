//! Errors of the dataset loader.

use s2m_core::CoreError;
use std::path::PathBuf;

/// Errors of the dataset loader. Each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("not a complete dataset folder (no manifest.json): {root}")]
    NotADataset { root: PathBuf },
    #[error("cannot parse {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("missing {kind} for image {image}: expected {expected}")]
    Missing {
        kind: &'static str,
        image: PathBuf,
        expected: PathBuf,
    },
    #[error("{what} requested but {source_name} has none")]
    Unavailable {
        what: &'static str,
        source_name: String,
    },
    #[error("duplicate id `{id}` in {first} and {second}")]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path} is {}x{}, expected {}x{}", got.0, got.1, expected.0, expected.1)]
    WrongSize {
        path: PathBuf,
        /// (width, height)
        expected: (u32, u32),
        /// (width, height)
        got: (u32, u32),
    },
    #[error("{path} declares image size {declared}, but the loader config asks for {requested}")]
    SizeMismatch {
        path: PathBuf,
        declared: u32,
        requested: u32,
    },
    #[error("empty dataset: {0} has no items")]
    Empty(String),
    #[error("invalid loader config: batch_size must be at least 1")]
    ZeroBatchSize,
    #[error("resize_to must be at least 1 pixel")]
    ZeroResize,
    #[error("item index {index} out of range for {len} items")]
    Index { index: usize, len: usize },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of the loader.
pub type Result<T, E = LoaderError> = std::result::Result<T, E>;
