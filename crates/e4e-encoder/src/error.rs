//! Errors of the encoder crate.

use thiserror::Error;

/// Errors of E, D_w and their helpers.
#[derive(Debug, Error)]
pub enum E4eError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid encoder config: {0}")]
    Config(String),
    /// A tensor handed to a public entry point has the wrong shape.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    #[error(transparent)]
    Backbone(#[from] backbones::BackboneError),
    #[error(transparent)]
    StyleGan2(#[from] stylegan2::StyleGan2Error),
    #[error(transparent)]
    Loss(#[from] losses::LossError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, E4eError>;

impl From<E4eError> for s2m_train::TrainError {
    fn from(e: E4eError) -> Self {
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
        return Err(E4eError::Shape {
            what: what.to_string(),
            expected: format!("[B, {channels}, {size}, {size}]"),
            got: d.to_vec(),
        });
    }
    Ok(())
}
