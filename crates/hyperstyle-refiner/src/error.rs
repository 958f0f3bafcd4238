//! Errors of the refiner crate.

use thiserror::Error;

/// Errors of H and the refinement loop.
#[derive(Debug, Error)]
pub enum RefinerError {
    /// A configuration value is out of range, or does not fit the generator.
    #[error("invalid refiner config: {0}")]
    Config(String),
    /// A tensor handed to a public entry point has the wrong shape.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    #[error(transparent)]
    Encoder(#[from] e4e_encoder::E4eError),
    /// An error of the training run or of a bundle file (missing or bad files are named),
    /// from the machinery shared with phase 1 (boxed: it is large).
    #[error(transparent)]
    Training(Box<e4e_encoder::TrainError>),
    #[error(transparent)]
    Loss(#[from] losses::LossError),
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    #[error(transparent)]
    Backbone(#[from] backbones::BackboneError),
    #[error(transparent)]
    StyleGan2(#[from] stylegan2::StyleGan2Error),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, RefinerError>;

impl From<e4e_encoder::TrainError> for RefinerError {
    fn from(e: e4e_encoder::TrainError) -> Self {
        Self::Training(Box::new(e))
    }
}
