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
    /// An image file over the decode limits (`imageio::MAX_IMAGE_SIDE`,
    /// `imageio::MAX_DECODE_BYTES`), refused from its header.
    #[error("image {path} is too large to decode: {message}")]
    TooLarge { path: PathBuf, message: String },
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
    /// A key that must be present (a var, a moment, a metadata entry) is missing.
    #[error("{what}: missing key `{key}`")]
    MissingKey { what: String, key: String },
    /// A key that nothing here owns (usually a model/checkpoint architecture mismatch).
    #[error("{what}: unexpected key `{key}` ({hint})")]
    UnexpectedKey {
        what: String,
        key: String,
        hint: String,
    },
    /// An argument, a configuration value or file content is invalid.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
    /// A file that is not a readable checkpoint (garbage, truncated, wrong format).
    #[error("cannot read checkpoint {path}: {message}")]
    BadCheckpoint { path: PathBuf, message: String },
    /// An error that happened while handling a file, with the file's name in front.
    #[error("{path}: {inner}")]
    InFile {
        path: PathBuf,
        inner: Box<CoreError>,
    },
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

    /// An [`CoreError::Invalid`] error.
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Puts the file's name in front of this error (no-op if it already names a file).
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            e @ (Self::Io { .. }
            | Self::BadCheckpoint { .. }
            | Self::InFile { .. }
            | Self::Decode { .. }
            | Self::TooLarge { .. }
            | Self::Encode { .. }) => e,
            other => Self::InFile {
                path: path.into(),
                inner: Box::new(other),
            },
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
