//! Errors of the backbones crate. Every variant names the tensor or key at fault.

/// One parameter whose stored shape differs from what the architecture expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// Errors raised by the backbones.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// A public entry point got a tensor of the wrong rank, channel count or size.
    #[error("{what}: expected {expected}, got shape {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    Config(String),
    /// A weight file lacks keys or holds keys of the wrong shape. Checked before any layer is built.
    #[error("{}", format_weights_error(.source_name, .missing, .mismatched))]
    Weights {
        source_name: String,
        /// `(key, expected shape)` for every missing key.
        missing: Vec<(String, Vec<usize>)>,
        mismatched: Vec<ShapeMismatch>,
    },
    /// Reading a weight file failed.
    #[error("cannot read weights {path}: {message}")]
    Io { path: String, message: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn format_weights_error(
    source_name: &str,
    missing: &[(String, Vec<usize>)],
    mismatched: &[ShapeMismatch],
) -> String {
    let mut s = format!(
        "weights {source_name}: {} missing and {} mis-shaped key(s)",
        missing.len(),
        mismatched.len()
    );
    // Cap the listing: a wrong architecture can miss hundreds of keys and the first few say it all.
    const SHOW: usize = 12;
    for (k, shape) in missing.iter().take(SHOW) {
        s.push_str(&format!("\n  missing {k} (expected {shape:?})"));
    }
    if missing.len() > SHOW {
        s.push_str(&format!(
            "\n  ... and {} more missing",
            missing.len() - SHOW
        ));
    }
    for m in mismatched.iter().take(SHOW) {
        s.push_str(&format!(
            "\n  mis-shaped {}: expected {:?}, found {:?}",
            m.key, m.expected, m.found
        ));
    }
    if mismatched.len() > SHOW {
        s.push_str(&format!(
            "\n  ... and {} more mis-shaped",
            mismatched.len() - SHOW
        ));
    }
    s
}

pub type Result<T, E = BackboneError> = std::result::Result<T, E>;

/// Checks that `x` is a 4-d NCHW tensor with `channels` channels and at least `min_hw` pixels
/// per side; `what` names the tensor in the error.
pub(crate) fn check_nchw(
    what: &str,
    x: &candle_core::Tensor,
    channels: usize,
    min_hw: usize,
) -> Result<()> {
    let dims = x.dims();
    let ok = dims.len() == 4 && dims[1] == channels && dims[2] >= min_hw && dims[3] >= min_hw;
    if ok {
        Ok(())
    } else {
        Err(BackboneError::Shape {
            what: what.to_string(),
            expected: format!("[B, {channels}, H, W] with H, W >= {min_hw}"),
            got: dims.to_vec(),
        })
    }
}
