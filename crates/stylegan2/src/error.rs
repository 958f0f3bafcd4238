//! Errors of the stylegan2 crate. Every variant names the tensor, key or file at fault.

use std::path::PathBuf;

use candle_core::Tensor;

/// A key whose stored shape differs from the one the config implies.
#[derive(Debug, Clone, PartialEq)]
pub struct MisShapedKey {
    pub name: String,
    pub expected: Vec<usize>,
    pub got: Vec<usize>,
}

/// Errors raised by the StyleGAN2 model, its loader and its losses.
#[derive(Debug, thiserror::Error)]
pub enum StyleGan2Error {
    #[error("invalid StyleGAN2 config: {0}")]
    Config(String),
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    #[error("{what} contains a non-finite value (NaN or inf)")]
    NonFinite { what: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("{}", format_key_report(.source_name, .missing, .unexpected, .mis_shaped))]
    Keys {
        source_name: String,
        missing: Vec<(String, Vec<usize>)>,
        unexpected: Vec<String>,
        mis_shaped: Vec<MisShapedKey>,
    },
    #[error("buffer {name} in {source_name}: {detail}")]
    Buffer {
        source_name: String,
        name: String,
        detail: String,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    SecondOrder(#[from] s2m_train::autograd::SecondOrderError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

fn format_key_report(
    source: &str,
    missing: &[(String, Vec<usize>)],
    unexpected: &[String],
    mis_shaped: &[MisShapedKey],
) -> String {
    let mut s = format!(
        "weights in {source} do not match the config ({} missing, {} unexpected, {} mis-shaped)",
        missing.len(),
        unexpected.len(),
        mis_shaped.len()
    );
    // Cap each list: a wrong prefix would otherwise print hundreds of lines.
    const CAP: usize = 20;
    for (name, shape) in missing.iter().take(CAP) {
        s.push_str(&format!("\n  missing: {name} (expected shape {shape:?})"));
    }
    if missing.len() > CAP {
        s.push_str(&format!("\n  ... and {} more missing", missing.len() - CAP));
    }
    for name in unexpected.iter().take(CAP) {
        s.push_str(&format!("\n  unexpected: {name}"));
    }
    if unexpected.len() > CAP {
        s.push_str(&format!(
            "\n  ... and {} more unexpected",
            unexpected.len() - CAP
        ));
    }
    for m in mis_shaped.iter().take(CAP) {
        s.push_str(&format!(
            "\n  mis-shaped: {} (expected {:?}, got {:?})",
            m.name, m.expected, m.got
        ));
    }
    if mis_shaped.len() > CAP {
        s.push_str(&format!(
            "\n  ... and {} more mis-shaped",
            mis_shaped.len() - CAP
        ));
    }
    s
}

pub type Result<T, E = StyleGan2Error> = std::result::Result<T, E>;

/// Checks `t` has exactly `expected` dims (`None` = any size) and names both shapes otherwise.
pub(crate) fn check_shape(t: &Tensor, what: &str, expected: &[Option<usize>]) -> Result<()> {
    let got = t.dims();
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(g, e)| e.is_none_or(|e| e == *g));
    if ok {
        Ok(())
    } else {
        let exp: Vec<String> = expected
            .iter()
            .map(|e| e.map_or("_".to_string(), |v| v.to_string()))
            .collect();
        Err(StyleGan2Error::Shape {
            what: what.to_string(),
            expected: format!("[{}]", exp.join(", ")),
            got: got.to_vec(),
        })
    }
}

/// Errors if `t` holds a NaN or an infinity. Uses `x - x` (0 for finite values, NaN otherwise)
/// summed on the device, so only one scalar comes back to the host.
pub(crate) fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let t = t.detach();
    let s = t
        .sub(&t)?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    if s == 0.0 {
        Ok(())
    } else {
        Err(StyleGan2Error::NonFinite {
            what: what.to_string(),
        })
    }
}
