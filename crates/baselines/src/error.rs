//! Errors of the baselines crate.

use std::path::PathBuf;

use thiserror::Error;

/// Errors of the baseline models, their weights and their helpers. Every variant names the
/// tensor, key or file at fault.
#[derive(Debug, Error)]
pub enum BaselinesError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid baseline config: {0}")]
    Config(String),
    /// A tensor handed to a public entry point has the wrong shape.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    /// A dropout layer was run with given masks, but none is given under its name.
    #[error("dropout masks: no mask for `{key}`")]
    MissingMask { key: String },
    /// A weights file cannot be read or does not match the model (missing, unexpected or
    /// wrongly shaped keys are named).
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, BaselinesError>;

impl From<BaselinesError> for s2m_train::TrainError {
    fn from(e: BaselinesError) -> Self {
        Self::model(e)
    }
}

/// Checks that `x` is `[B, channels, size, size]` (B >= 1).
pub(crate) fn check_image(
    what: &str,
    x: &candle_core::Tensor,
    channels: usize,
    size: usize,
) -> Result<()> {
    let d = x.dims();
    if d.len() != 4 || d[0] == 0 || d[1] != channels || d[2] != size || d[3] != size {
        return Err(BaselinesError::Shape {
            what: what.to_string(),
            expected: format!("[B, {channels}, {size}, {size}]"),
            got: d.to_vec(),
        });
    }
    Ok(())
}
