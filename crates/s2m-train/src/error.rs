//! [`TrainError`]: the one error type of every training run, export and exported bundle.

use std::path::{Path, PathBuf};

/// Errors of a training run, of an export and of loading an exported bundle.
///
/// Model crates convert their own errors into [`TrainError::Model`] (each implements
/// `From<ItsError> for TrainError`), so `?` works on model calls inside a trainer and the
/// message is the model error's own.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// An error of a model, loss or data crate (its message unchanged).
    #[error(transparent)]
    Model(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// Checkpoints, logs, plots, the optimiser, file I/O.
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    /// A candle operation.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Second-order gradients do not work in this process.
    #[error(transparent)]
    SecondOrder(#[from] crate::autograd::SecondOrderError),
    /// A loss, score or gradient norm became NaN or infinite.
    #[error(
        "training diverged at step {step}: {what} is {value} (not finite); the last checkpoint in {dir} is intact"
    )]
    Diverged {
        /// Step at which it happened.
        step: u64,
        /// Which value.
        what: String,
        /// The value.
        value: f64,
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// The training data is empty or does not fit the models.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint that cannot continue this run.
    #[error("cannot resume from {path}: {message}")]
    Resume { path: PathBuf, message: String },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid training config: {0}")]
    Config(String),
    /// A file of an exported bundle is missing, unreadable or inconsistent.
    #[error("{path}: {message}")]
    Bundle { path: PathBuf, message: String },
}

/// Result alias of the training harness.
pub type TrainResult<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// [`TrainError::Bundle`] naming `path`.
    pub fn bundle(path: &Path, message: impl Into<String>) -> Self {
        Self::Bundle {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// [`TrainError::Model`] of a model crate's error.
    pub fn model(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Model(Box::new(e))
    }
}
