//! Errors of the metrics crate. Every variant names the file, image or tensor at fault.

use std::path::PathBuf;

/// Errors raised by the metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    /// An image could not be decoded (the file is named).
    #[error("cannot read image {path}: {message}")]
    Image { path: PathBuf, message: String },
    /// A feature vector holds NaN or infinite values.
    #[error("non-finite feature ({value}) from image {image} (feature extractor {extractor})")]
    NonFinite {
        image: String,
        extractor: String,
        value: f64,
    },
    /// Two inputs that must match do not (folder lengths, dimensions, sizes).
    #[error("{0}")]
    Mismatch(String),
    /// An argument or configuration value is invalid.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A metric cannot run (its weights or inputs are absent); the reason follows.
    #[error("not available: {0}")]
    NotAvailable(String),
    /// Weights needed by a metric are absent.
    #[error("not available: {} missing", .0.display())]
    WeightsMissing(PathBuf),
    /// A linear-algebra routine failed.
    #[error("linear algebra: {0}")]
    LinAlg(String),
    #[error(transparent)]
    Backbone(#[from] backbones::BackboneError),
    #[error(transparent)]
    Core(#[from] s2m_core::error::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl MetricsError {
    pub fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
