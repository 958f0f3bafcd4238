//! Errors of the losses crate. Every variant names the tensor, file or value at fault.

use std::path::PathBuf;

/// Errors raised by the losses.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// A tensor has the wrong rank, channel count or size, or two tensors of a pair differ.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    /// Values lie outside the range the network expects (checked with a tolerance).
    #[error(
        "{what}: values must lie in [{lo}, {hi}] (tolerance {tol}), found min {min} and max {max}{hint}"
    )]
    Range {
        what: String,
        lo: f64,
        hi: f64,
        tol: f64,
        min: f64,
        max: f64,
        hint: String,
    },
    /// A weight file is absent; `how` says where it comes from.
    #[error("missing weight file {}: {how}", .path.display())]
    MissingWeights { path: PathBuf, how: String },
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    Config(String),
    /// Loading or running a backbone failed (missing or mis-shaped keys are listed by name).
    #[error(transparent)]
    Backbone(#[from] backbones::BackboneError),
    /// Second-order gradients (R1) are not available in this process.
    #[error(transparent)]
    SecondOrder(#[from] s2m_train::autograd::SecondOrderError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = LossError> = std::result::Result<T, E>;

impl From<LossError> for s2m_train::TrainError {
    fn from(e: LossError) -> Self {
        Self::model(e)
    }
}
