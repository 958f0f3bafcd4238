//! Guard for second-order gradients (R1, path-length penalties) in candle.
//!
//! candle 0.11 has no `create_graph` flag. Its `backward()` detaches every incoming gradient
//! unless the environment variable `CANDLE_GRAD_DO_NOT_DETACH` is set (non-empty, not "0").
//! The variable is read **once per thread, lazily, at that thread's first backward**, so it must
//! be in the environment before the process starts (setting it later with `std::env::set_var` is
//! `unsafe` in edition 2024 and has no effect on threads that already ran a backward).
//! Without it, a gradient of a gradient is silently wrong (no error): this module detects that.
//!
//! `.cargo/config.toml` sets `CANDLE_GRAD_DO_NOT_DETACH=1` for `cargo run`, `cargo test` and
//! `cargo bench`; binaries started another way (installed, from `target/` directly) must get it
//! from the shell.

use std::sync::OnceLock;

use candle_core::{Device, Var};

/// The environment variable candle reads to keep the gradient graph alive in `backward()`.
pub const DO_NOT_DETACH_VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Returned when candle cannot compute second-order gradients in this process.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "second-order gradients are not available in this process: {detail}. \
     Set the environment variable CANDLE_GRAD_DO_NOT_DETACH=1 before the process starts \
     (e.g. `CANDLE_GRAD_DO_NOT_DETACH=1 ./binary`; `cargo run/test/bench` set it through \
     .cargo/config.toml). Setting it from inside the program after the first backward has no effect."
)]
pub struct SecondOrderError {
    /// What the self-check observed.
    pub detail: String,
}

/// Runs (once per process) the self-check d/dx (d/dx x³) at x = 1, which must be 6.
///
/// Without `CANDLE_GRAD_DO_NOT_DETACH` candle returns 4 (the inner gradient 3x² is detached
/// where it multiplies x), or no gradient at all. Call this at the start of every code path that
/// differentiates a gradient (R1, path length). The result is cached, so later calls are free.
///
/// The check runs on the calling thread; since the variable comes from the process environment,
/// every thread sees the same value.
pub fn ensure_second_order_gradients() -> Result<(), SecondOrderError> {
    static CHECK: OnceLock<Result<(), SecondOrderError>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let value = second_derivative_of_cube_at_one().map_err(|e| SecondOrderError {
                detail: format!("the self-check failed with a candle error: {e}"),
            })?;
            match value {
                Some(v) if (v - 6.0).abs() < 1e-9 => Ok(()),
                Some(v) => Err(SecondOrderError {
                    detail: format!(
                        "d²/dx² x³ at x=1 came out as {v} instead of 6 ({DO_NOT_DETACH_VAR} is {})",
                        describe_env()
                    ),
                }),
                None => Err(SecondOrderError {
                    detail: format!(
                        "d²/dx² x³ at x=1 had no gradient ({DO_NOT_DETACH_VAR} is {})",
                        describe_env()
                    ),
                }),
            }
        })
        .clone()
}

fn describe_env() -> String {
    match std::env::var(DO_NOT_DETACH_VAR) {
        Ok(v) => format!("set to {v:?}"),
        Err(_) => "not set".to_string(),
    }
}

/// d/dx of (d/dx x³) at x = 1 through two candle backward passes, in f64.
fn second_derivative_of_cube_at_one() -> candle_core::Result<Option<f64>> {
    let x = Var::new(&[1.0f64], &Device::Cpu)?;
    // x·x·x through `mul` nodes (not `powf`): the inner gradient then flows through a
    // gradient that candle detaches without the flag, which is exactly what R1 hits.
    let xt = x.as_tensor();
    let y = xt.mul(xt)?.mul(xt)?.sum_all()?;
    let grads = y.backward()?;
    let Some(dy) = grads.get(x.as_tensor()) else {
        return Ok(None);
    };
    // dy = 3x², still attached to x only when the graph was kept.
    let grads2 = dy.sum_all()?.backward()?;
    let Some(d2y) = grads2.get(x.as_tensor()) else {
        return Ok(None);
    };
    let v: Vec<f64> = d2y.flatten_all()?.to_vec1()?;
    Ok(v.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_order_check_matches_environment() {
        // cargo test sets the variable through .cargo/config.toml; if someone runs the test
        // binary without it, the check must refuse rather than pass.
        let enabled = std::env::var(DO_NOT_DETACH_VAR)
            .map(|v| !v.is_empty() && v != "0")
            .unwrap_or(false);
        let r = ensure_second_order_gradients();
        assert_eq!(r.is_ok(), enabled, "{r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("CANDLE_GRAD_DO_NOT_DETACH=1"));
        }
    }
}
