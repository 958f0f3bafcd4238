//! Errors of the SOLOv2 synthesizer: every variant names the value at fault.

use backbones::BackboneError;

use crate::error::SketchError;

/// Errors raised by [`crate::solov2`].
#[derive(Debug, thiserror::Error)]
pub enum SoloError {
    /// A tensor or image given to a public entry point has the wrong rank, channels or size.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        /// Which input is at fault.
        what: String,
        /// What was expected, in words.
        expected: String,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid SOLOv2 config: {0}")]
    Config(String),
    /// Input data (masks, labels, scores) is inconsistent.
    #[error("invalid input: {0}")]
    Input(String),
    /// The ResNet backbone or weight loading failed.
    #[error(transparent)]
    Backbone(#[from] BackboneError),
    /// Drawing the sketch failed.
    #[error(transparent)]
    Sketch(#[from] SketchError),
    /// A candle operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of the SOLOv2 module.
pub type Result<T> = std::result::Result<T, SoloError>;

/// Checks that `x` is `[B, channels, H, W]` with H and W multiples of `multiple`.
pub(crate) fn check_nchw(
    what: &str,
    x: &candle_core::Tensor,
    channels: usize,
    multiple: usize,
) -> Result<()> {
    let d = x.dims();
    let ok = d.len() == 4
        && d[1] == channels
        && d[0] > 0
        && d[2] > 0
        && d[3] > 0
        && d[2].is_multiple_of(multiple)
        && d[3].is_multiple_of(multiple);
    if ok {
        Ok(())
    } else {
        Err(SoloError::Shape {
            what: what.to_string(),
            expected: format!(
                "[B, {channels}, H, W] with B > 0 and H, W positive multiples of {multiple}"
            ),
            got: d.to_vec(),
        })
    }
}
