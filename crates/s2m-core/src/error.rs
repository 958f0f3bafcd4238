//! Errors of the shared ground crate.

use std::path::PathBuf;

/// Errors raised by the shared helpers. Every variant names the file or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decode image {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("cannot encode image {path}: {message}")]
    Encode { path: PathBuf, message: String },
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        what: String,
        expected: String,
        got: String,
    },
    #[error(
        "invalid label value {value} at ({x}, {y}) in {what}: labels are class_id * 16 + instance with class_id in 1..=4"
    )]
    BadLabel {
        what: String,
        value: u8,
        x: u32,
        y: u32,
    },
    #[error("{what} contains a non-finite value (NaN or inf)")]
    NonFinite { what: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl CoreError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
