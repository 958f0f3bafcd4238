//! Finite-difference gradient checks for tests across the workspace.
//!
//! candle computes gradients by reverse-mode autograd; a custom op, a hand-written backward or
//! a `detach` in the wrong place silently gives wrong or missing gradients. These helpers
//! compare candle's gradient with central differences `(f(x + h e_i) - f(x - h e_i)) / 2h`,
//! element by element, in `f64` (in `f64` with `h = 1e-6`, a relative error around `1e-8` or
//! better is normal for smooth functions; `1e-4` and up means a wrong gradient).
//!
//! - [`check_grad`] / [`check_grads`]: first order, `f` maps inputs to a scalar;
//! - [`check_grad_of_grad`]: second order, the R1 / path-length pattern: a penalty of the
//!   gradient of `d(x; params)` with respect to `x`, differentiated with respect to `params`.
//!   It needs `CANDLE_GRAD_DO_NOT_DETACH=1` (set in `.cargo/config.toml`); without it the
//!   function returns an error saying so rather than a misleading comparison.
//!
//! The error measure is [`GradCheck::max_rel_err`]: the largest absolute difference divided by
//! the largest gradient entry (analytic or numeric), so tiny entries that are all rounding
//! noise do not dominate it. Each check costs two evaluations of `f` per input element: keep
//! the inputs small (tens to a few hundred elements).

use candle_core::{DType, Tensor, Var};
use s2m_core::error::{CoreError, Result};

/// Default finite-difference step for `f64` inputs.
pub const DEFAULT_EPS: f64 = 1e-6;

/// The comparison of an analytic (candle) and a numeric (finite-difference) gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct GradCheck {
    /// candle's gradient, flattened (zeros if candle reports none).
    pub analytic: Vec<f64>,
    /// The central-difference gradient, flattened.
    pub numeric: Vec<f64>,
    /// Whether candle produced a gradient at all for this input.
    pub has_grad: bool,
    /// `max_i |analytic_i - numeric_i|`.
    pub max_abs_err: f64,
    /// `max_abs_err / max(max_i |analytic_i|, max_i |numeric_i|)` (0 when both are all zero).
    pub max_rel_err: f64,
    /// The flat index where the absolute error is largest.
    pub worst_index: usize,
}

impl GradCheck {
    fn new(analytic: Vec<f64>, numeric: Vec<f64>, has_grad: bool) -> Self {
        let mut max_abs_err = 0.0f64;
        let mut worst_index = 0;
        let mut scale = 0.0f64;
        for (i, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
            let d = (a - n).abs();
            // NaN differences count as the worst.
            if d > max_abs_err || (d.is_nan() && !max_abs_err.is_nan()) {
                max_abs_err = d;
                worst_index = i;
            }
            scale = scale.max(a.abs()).max(n.abs());
        }
        let max_rel_err = if max_abs_err == 0.0 {
            0.0
        } else {
            max_abs_err / scale.max(f64::MIN_POSITIVE)
        };
        Self {
            analytic,
            numeric,
            has_grad,
            max_abs_err,
            max_rel_err,
            worst_index,
        }
    }

    /// Whether the relative error is at most `tol` (false for NaN).
    pub fn passes(&self, tol: f64) -> bool {
        self.max_rel_err <= tol
    }

    /// Panics with the details (worst element, both values) unless the relative error is at
    /// most `tol`. For tests.
    #[track_caller]
    pub fn assert_close(&self, tol: f64) {
        assert!(
            self.passes(tol),
            "gradient check failed: max rel err {:.3e} > {tol:.1e} (max abs err {:.3e} at flat \
             index {}: analytic {} vs numeric {}{})",
            self.max_rel_err,
            self.max_abs_err,
            self.worst_index,
            self.analytic
                .get(self.worst_index)
                .copied()
                .unwrap_or(f64::NAN),
            self.numeric
                .get(self.worst_index)
                .copied()
                .unwrap_or(f64::NAN),
            if self.has_grad {
                ""
            } else {
                "; candle gave no gradient"
            }
        );
    }
}

/// Checks that every input is `f64` with at least one element.
fn check_inputs(inputs: &[Tensor]) -> Result<()> {
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype() != DType::F64 {
            return Err(CoreError::invalid(
                format!("gradcheck input {i}"),
                format!("dtype {:?}: finite differences need f64", t.dtype()),
            ));
        }
    }
    Ok(())
}

/// The value of a one-element tensor as `f64`.
fn scalar(t: &Tensor, what: &str) -> Result<f64> {
    if t.elem_count() != 1 {
        return Err(CoreError::Shape {
            what: format!("gradcheck: output of {what}"),
            expected: "a scalar (one element)".into(),
            got: format!("{:?}", t.dims()),
        });
    }
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
}

fn check_eps(eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(CoreError::invalid(
            "gradcheck eps",
            format!("{eps} must be finite and > 0"),
        ));
    }
    Ok(())
}

/// Central differences of a scalar function with respect to every element of `inputs[which]`
/// (the other inputs fixed).
pub fn numeric_grad(
    f: impl Fn(&[Tensor]) -> Result<f64>,
    inputs: &[Tensor],
    which: usize,
    eps: f64,
) -> Result<Vec<f64>> {
    check_eps(eps)?;
    let x = inputs.get(which).ok_or_else(|| {
        CoreError::invalid(
            "gradcheck input index",
            format!("{which} of {}", inputs.len()),
        )
    })?;
    let base = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let mut args: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let mut out = Vec::with_capacity(base.len());
    for i in 0..base.len() {
        let mut eval = |delta: f64| -> Result<f64> {
            let mut d = base.clone();
            d[i] += delta;
            args[which] = Tensor::from_vec(d, x.shape(), x.device())?;
            f(&args)
        };
        let plus = eval(eps)?;
        let minus = eval(-eps)?;
        out.push((plus - minus) / (2.0 * eps));
    }
    Ok(out)
}

/// Compares candle's gradient of a scalar `f(inputs)` with central differences, for every
/// input (all `f64`). One [`GradCheck`] per input.
pub fn check_grads<F>(f: F, inputs: &[Tensor], eps: f64) -> Result<Vec<GradCheck>>
where
    F: Fn(&[Tensor]) -> candle_core::Result<Tensor>,
{
    check_inputs(inputs)?;
    check_eps(eps)?;
    let vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.detach()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&args)?;
    scalar(&y, "f")?;
    let grads = y.sum_all()?.backward()?;
    let value = |ts: &[Tensor]| -> Result<f64> { scalar(&f(ts)?, "f") };
    let mut out = Vec::with_capacity(inputs.len());
    for (i, var) in vars.iter().enumerate() {
        let (analytic, has_grad) = match grads.get(var.as_tensor()) {
            Some(g) => (g.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?, true),
            None => (vec![0.0; var.elem_count()], false),
        };
        let numeric = numeric_grad(value, inputs, i, eps)?;
        out.push(GradCheck::new(analytic, numeric, has_grad));
    }
    Ok(out)
}

/// [`check_grads`] for a function of one `f64` tensor.
pub fn check_grad<F>(f: F, x: &Tensor, eps: f64) -> Result<GradCheck>
where
    F: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    let mut checks = check_grads(|ts: &[Tensor]| f(&ts[0]), std::slice::from_ref(x), eps)?;
    checks
        .pop()
        .ok_or_else(|| CoreError::invalid("gradcheck", "no result"))
}

/// Whether candle's backward keeps the graph of gradients (`CANDLE_GRAD_DO_NOT_DETACH` in effect
/// for this thread): d²/dx² x³ at 1 is 6 with it and 4 without (candle's `backprop.rs` detaches gradients unless the variable is set).
fn second_order_works() -> Result<bool> {
    let x = Var::new(&[1.0f64], &candle_core::Device::Cpu)?;
    let y = x.as_tensor().powf(3.0)?.sum_all()?;
    let g = y.backward()?;
    let Some(dx) = g.get(x.as_tensor()) else {
        return Ok(false);
    };
    let g2 = dx.sum_all()?.backward()?;
    let Some(ddx) = g2.get(x.as_tensor()) else {
        return Ok(false);
    };
    Ok((ddx.to_vec1::<f64>()?[0] - 6.0).abs() < 1e-9)
}

/// Second-order check, the R1 pattern: with `g = ∂ sum(d(x, params)) / ∂x`, compares candle's
/// gradient of `penalty(g)` (a scalar) with respect to each of `params` with central
/// differences (each evaluation of which runs one first-order backward). All tensors `f64`.
/// Errors if second-order gradients are disabled (`CANDLE_GRAD_DO_NOT_DETACH` not set before
/// the first backward of this thread).
pub fn check_grad_of_grad<D, P>(
    d: D,
    penalty: P,
    x: &Tensor,
    params: &[Tensor],
    eps: f64,
) -> Result<Vec<GradCheck>>
where
    D: Fn(&Tensor, &[Tensor]) -> candle_core::Result<Tensor>,
    P: Fn(&Tensor) -> candle_core::Result<Tensor>,
{
    check_inputs(std::slice::from_ref(x))?;
    check_inputs(params)?;
    check_eps(eps)?;
    if !second_order_works()? {
        return Err(CoreError::invalid(
            "second-order gradient check",
            "candle detaches gradients in this thread: set CANDLE_GRAD_DO_NOT_DETACH=1 before \
             the first backward (cargo does, via .cargo/config.toml)",
        ));
    }
    // penalty(∂d/∂x) for given params (variables or plain tensors).
    let r = |ps: &[Tensor]| -> Result<Tensor> {
        let xv = Var::from_tensor(&x.detach())?;
        let out = d(xv.as_tensor(), ps)?.sum_all()?;
        let g = out.backward()?;
        let gx = match g.get(xv.as_tensor()) {
            Some(gx) => gx.clone(),
            None => xv.as_tensor().zeros_like()?,
        };
        let p = penalty(&gx)?;
        scalar(&p, "penalty")?;
        Ok(p)
    };
    let vars = params
        .iter()
        .map(|t| Var::from_tensor(&t.detach()))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let args: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = r(&args)?.sum_all()?.backward()?;
    let value = |ts: &[Tensor]| -> Result<f64> { scalar(&r(ts)?, "penalty") };
    let mut out = Vec::with_capacity(params.len());
    for (i, var) in vars.iter().enumerate() {
        let (analytic, has_grad) = match grads.get(var.as_tensor()) {
            Some(g) => (g.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?, true),
            None => (vec![0.0; var.elem_count()], false),
        };
        let numeric = numeric_grad(value, params, i, eps)?;
        out.push(GradCheck::new(analytic, numeric, has_grad));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(data: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// Deterministic "random" values in [-1, 1].
    fn vals(n: usize, k: f64) -> Vec<f64> {
        (0..n).map(|i| ((i as f64 + 1.0) * k).sin()).collect()
    }

    #[test]
    fn cube_and_sin_pass() {
        let x = t(&[-1.5, -0.3, 0.0, 0.7, 2.0], &[5]);
        let c = check_grad(|x| x.powf(3.0)?.sum_all(), &x, DEFAULT_EPS).unwrap();
        // x^3 at x = 0: gradient 0; elsewhere 3 x^2.
        assert!((c.analytic[4] - 12.0).abs() < 1e-12);
        c.assert_close(1e-8);
        let c = check_grad(|x| (x.sin()? * x)?.sum_all(), &x, DEFAULT_EPS).unwrap();
        c.assert_close(1e-8);
        assert!(c.has_grad);
    }

    #[test]
    fn matmul_passes_for_both_inputs() {
        let a = t(&vals(12, 0.7), &[3, 4]);
        let w = t(&vals(8, 1.3), &[4, 2]);
        let checks = check_grads(
            |ts: &[Tensor]| ts[0].matmul(&ts[1])?.tanh()?.sqr()?.sum_all(),
            &[a, w],
            DEFAULT_EPS,
        )
        .unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].analytic.len(), 12);
        for c in &checks {
            c.assert_close(1e-7);
        }
    }

    #[test]
    fn detects_a_broken_gradient() {
        // x * detach(x): candle sees gradient x, the truth is 2x.
        let x = t(&[0.5, -1.0, 2.0], &[3]);
        let c = check_grad(|x| (x * x.detach())?.sum_all(), &x, DEFAULT_EPS).unwrap();
        assert!(!c.passes(1e-3), "{c:?}");
        assert!((c.max_rel_err - 0.5).abs() < 1e-6, "{c:?}");
        let r = std::panic::catch_unwind(|| c.assert_close(1e-3));
        assert!(r.is_err());
        // A fully detached function: candle gives no gradient at all.
        let c = check_grad(|x| x.detach().sqr()?.sum_all(), &x, DEFAULT_EPS).unwrap();
        assert!(!c.has_grad);
        assert!(!c.passes(1e-3));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x32 = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        assert!(check_grad(|x| x.sum_all(), &x32, DEFAULT_EPS).is_err());
        let x = t(&[1.0, 2.0], &[2]);
        let err = check_grad(|x| x.sqr(), &x, DEFAULT_EPS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("scalar"), "{err}");
        assert!(check_grad(|x| x.sum_all(), &x, 0.0).is_err());
    }

    /// A small discriminator: d(x; w1, w2) = sum(leaky-ish(x w1) w2) per row.
    fn disc(x: &Tensor, p: &[Tensor]) -> candle_core::Result<Tensor> {
        let h = x.matmul(&p[0])?;
        let h = (h.tanh()? + (&h * 0.2)?)?;
        h.matmul(&p[1])
    }

    #[test]
    fn r1_style_second_order_passes_and_detects_a_detach() {
        let x = t(&vals(6, 0.9), &[2, 3]);
        let w1 = t(&vals(12, 1.7), &[3, 4]);
        let w2 = t(&vals(4, 2.3), &[4, 1]);
        let r1 = |g: &Tensor| g.sqr()?.sum_all();
        let checks =
            check_grad_of_grad(disc, r1, &x, &[w1.clone(), w2.clone()], DEFAULT_EPS).unwrap();
        for c in &checks {
            assert!(c.has_grad);
            c.assert_close(1e-7);
        }
        // Cutting the second-order path through w1 (detached inside d): w1's check fails.
        let broken = |x: &Tensor, p: &[Tensor]| disc(x, &[p[0].detach(), p[1].clone()]);
        let checks = check_grad_of_grad(broken, r1, &x, &[w1, w2], DEFAULT_EPS).unwrap();
        assert!(!checks[0].passes(1e-3), "{:?}", checks[0]);
    }

    #[test]
    fn second_order_is_enabled_in_tests() {
        assert!(
            second_order_works().unwrap(),
            "CANDLE_GRAD_DO_NOT_DETACH=1 must be set (see .cargo/config.toml)"
        );
    }
}
