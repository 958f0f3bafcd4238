//! Adam / AdamW over named candle [`Var`]s, with state that can be checkpointed.
//!
//! candle-nn's `AdamW` keeps its moments private, so a training run using it cannot be resumed
//! exactly. [`Adam`] follows PyTorch's `torch.optim.Adam` / `AdamW` (non-amsgrad, non-fused)
//! step for step:
//!
//! ```text
//! p <- p * (1 - lr * weight_decay)            (decoupled weight decay, AdamW; skipped if 0)
//! m <- beta1 * m + (1 - beta1) * g
//! v <- beta2 * v + (1 - beta2) * g^2
//! p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! with `eps` outside the square root and `t` the number of steps taken (starting at 1).
//! `beta1 = 0` (StyleGAN2's setting) is allowed: the first moment is then the gradient itself.
//!
//! Differences from PyTorch, on purpose:
//! - the step counter `t` is global (PyTorch keeps one per parameter and only advances it for
//!   parameters that received a gradient). The two agree whenever every parameter gets a
//!   gradient at every step, which is the case for all training loops of this workspace;
//!   parameters that never get a gradient (frozen ones, BatchNorm running statistics) are never
//!   touched either way.
//!
//! StyleGAN2's lazy regularisation runs the regulariser every `k` steps and compensates by
//! scaling the optimiser: `lr * c`, `beta ** c` with `c = k / (k + 1)`;
//! [`AdamConfig::lazy_regularized`] does that.
//!
//! The state ([`Adam::state_tensors`] / [`Adam::load_state`]) has the keys
//! `adam.m.<name>`, `adam.v.<name>` (moments, shaped like the var) and `adam.step`
//! (a one-element `i64` tensor). Loading validates every name and shape before changing
//! anything, so a failed load leaves the optimiser as it was.
//!
//! Gradients are detached before use: with `CANDLE_GRAD_DO_NOT_DETACH=1` (needed for R1) the
//! gradients carry their own graph, and keeping it alive in the moments would leak memory
//! across steps.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use s2m_core::error::{CoreError, Result};
use std::collections::{BTreeSet, HashMap};

/// Prefix of the first-moment keys in [`Adam::state_tensors`].
pub const M_PREFIX: &str = "adam.m.";
/// Prefix of the second-moment keys in [`Adam::state_tensors`].
pub const V_PREFIX: &str = "adam.v.";
/// Key of the step counter in [`Adam::state_tensors`].
pub const STEP_KEY: &str = "adam.step";

/// Hyper-parameters of [`Adam`] (PyTorch names and meaning).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment, in `[0, 1)`.
    pub beta1: f64,
    /// Decay of the second moment, in `[0, 1)`.
    pub beta2: f64,
    /// Added to the bias-corrected `sqrt(v)` (outside the square root).
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 gives plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's defaults: `lr = 1e-3`, `betas = (0.9, 0.999)`, `eps = 1e-8`, no weight decay.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// StyleGAN2's optimiser: `betas = (0, 0.99)`, `eps = 1e-8`, no weight decay.
    pub fn stylegan2(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// The config for lazy regularisation every `interval` steps (StyleGAN2 `G_reg_interval`,
    /// `D_reg_interval`): `lr * c` and `beta ** c` with `c = interval / (interval + 1)`.
    /// `interval = 0` returns the config unchanged (regularisation at every step, not lazy).
    pub fn lazy_regularized(&self, interval: u32) -> Self {
        if interval == 0 {
            return *self;
        }
        let c = interval as f64 / (interval as f64 + 1.0);
        Self {
            lr: self.lr * c,
            beta1: self.beta1.powf(c),
            beta2: self.beta2.powf(c),
            ..*self
        }
    }

    /// Checks the ranges: `lr >= 0`, `0 <= beta < 1`, `eps > 0`, `weight_decay >= 0`, all
    /// finite.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::invalid("Adam config", m));
        let all = [self.lr, self.beta1, self.beta2, self.eps, self.weight_decay];
        if all.iter().any(|x| !x.is_finite()) {
            return bad(format!("non-finite value in {self:?}"));
        }
        if self.lr < 0.0 {
            return bad(format!("lr = {} must be >= 0", self.lr));
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} = {b} must be in [0, 1)"));
            }
        }
        if self.eps <= 0.0 {
            return bad(format!("eps = {} must be > 0", self.eps));
        }
        if self.weight_decay < 0.0 {
            return bad(format!("weight_decay = {} must be >= 0", self.weight_decay));
        }
        Ok(())
    }
}

/// One optimised variable with its moments.
struct Param {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam / AdamW over named vars; see the [module docs](self) for the exact update.
pub struct Adam {
    params: Vec<Param>,
    config: AdamConfig,
    step: u64,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("config", &self.config)
            .field("step", &self.step)
            .field("vars", &self.names())
            .finish()
    }
}

/// The vars of a `VarMap`, sorted by name (deterministic order for optimisers and files).
pub fn varmap_named_vars(varmap: &candle_nn::VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut vars: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// All tensors of a `VarMap` by name (detached copies of the current values).
pub fn varmap_tensors(varmap: &candle_nn::VarMap) -> std::collections::HashMap<String, Tensor> {
    varmap_named_vars(varmap)
        .into_iter()
        .map(|(n, v)| (n, v.as_detached_tensor()))
        .collect()
}

/// The inverse of [`varmap_tensors`]: copies `tensors` (keyed by var name) into the vars of
/// `varmap`, converting dtype and device to each var's. Every var must be present with its
/// shape, and `tensors` must hold no other name; errors call the source `what` and name the key
/// as `<key_prefix><name>`. Nothing is changed unless all validate.
pub fn load_varmap(
    tensors: &HashMap<String, Tensor>,
    varmap: &candle_nn::VarMap,
    what: &str,
    key_prefix: &str,
) -> Result<()> {
    let vars = varmap_named_vars(varmap);
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        if !vars.iter().any(|(n, _)| n == name) {
            return Err(CoreError::UnexpectedKey {
                what: what.to_string(),
                key: format!("{key_prefix}{name}"),
                hint: match key_prefix.strip_suffix('.') {
                    Some(group) => format!("the `{group}` model has no var `{name}`"),
                    None => format!("the model has no var `{name}`"),
                },
            });
        }
    }
    let mut values = Vec::with_capacity(vars.len());
    for (name, var) in &vars {
        let key = format!("{key_prefix}{name}");
        let t = tensors.get(name).ok_or_else(|| CoreError::MissingKey {
            what: what.to_string(),
            key: key.clone(),
        })?;
        if t.dims() != var.dims() {
            return Err(CoreError::Shape {
                what: format!("{what} key `{key}`"),
                expected: format!("{:?} (the var's shape)", var.dims()),
                got: format!("{:?}", t.dims()),
            });
        }
        values.push(t.to_dtype(var.dtype())?.to_device(var.device())?);
    }
    for ((_, var), value) in vars.iter().zip(values) {
        var.set(&value)?;
    }
    Ok(())
}

impl Adam {
    /// An optimiser over `named_vars` (names must be unique and non-empty; vars must be
    /// floating point). Moments start at zero, the step counter at 0.
    pub fn new(named_vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let mut seen = BTreeSet::new();
        let mut params = Vec::with_capacity(named_vars.len());
        for (name, var) in named_vars {
            if name.is_empty() {
                return Err(CoreError::invalid("Adam var name", "empty name"));
            }
            if !seen.insert(name.clone()) {
                return Err(CoreError::invalid(
                    "Adam var list",
                    format!("var `{name}` given twice"),
                ));
            }
            if !var.dtype().is_float() {
                return Err(CoreError::invalid(
                    format!("Adam var `{name}`"),
                    format!("dtype {:?} is not floating point", var.dtype()),
                ));
            }
            let m = var.as_tensor().zeros_like()?;
            let v = var.as_tensor().zeros_like()?;
            params.push(Param { name, var, m, v });
        }
        Ok(Self {
            params,
            config,
            step: 0,
        })
    }

    /// An optimiser over all vars of a `VarMap` (sorted by name).
    pub fn from_varmap(varmap: &candle_nn::VarMap, config: AdamConfig) -> Result<Self> {
        Self::new(varmap_named_vars(varmap), config)
    }

    /// The current hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Replaces all hyper-parameters (validated).
    pub fn set_config(&mut self, config: AdamConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate (must be finite and >= 0).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.set_config(AdamConfig { lr, ..self.config })
    }

    /// Sets both betas (each in `[0, 1)`).
    pub fn set_betas(&mut self, beta1: f64, beta2: f64) -> Result<()> {
        self.set_config(AdamConfig {
            beta1,
            beta2,
            ..self.config
        })
    }

    /// Number of steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The names of the optimised vars, in optimiser order.
    pub fn names(&self) -> Vec<&str> {
        self.params.iter().map(|p| p.name.as_str()).collect()
    }

    /// The optimised vars with their names, in optimiser order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    /// One update of every var that has a gradient in `grads`; vars without one are skipped
    /// (their moments do not decay). Advances the step counter once.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as f64;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.config;
        let bias1 = 1.0 - beta1.powf(t);
        let bias2_sqrt = (1.0 - beta2.powf(t)).sqrt();
        let step_size = lr / bias1;
        for p in self.params.iter_mut() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.detach().to_dtype(p.var.dtype())?;
            let m = if beta1 == 0.0 {
                g.clone()
            } else {
                ((&p.m * beta1)? + (&g * (1.0 - beta1))?)?
            };
            let v = ((&p.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let mut theta = p.var.as_detached_tensor();
            if weight_decay != 0.0 {
                theta = (theta * (1.0 - lr * weight_decay))?;
            }
            let denom = ((v.sqrt()? / bias2_sqrt)? + eps)?;
            let update = ((&m / &denom)? * step_size)?;
            p.var.set(&(theta - update)?)?;
            p.m = m;
            p.v = v;
        }
        Ok(())
    }

    /// The state as named tensors: `adam.m.<name>` (omitted when beta1 = 0), `adam.v.<name>`,
    /// `adam.step`.
    /// The tensors share storage with the optimiser only until its next step (moments are
    /// replaced, not mutated), so the map is a consistent snapshot.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::with_capacity(2 * self.params.len() + 1);
        // With beta1 = 0 the first moment is just the current gradient and is never read
        // before being overwritten, so it is not part of the state (a third smaller
        // checkpoint for StyleGAN2's Adam(0, 0.99)).
        let keep_m = self.config.beta1 != 0.0;
        for p in &self.params {
            if keep_m {
                out.insert(format!("{M_PREFIX}{}", p.name), p.m.clone());
            }
            out.insert(format!("{V_PREFIX}{}", p.name), p.v.clone());
        }
        let step = i64::try_from(self.step)
            .map_err(|_| CoreError::invalid("Adam step", format!("{} too large", self.step)))?;
        out.insert(STEP_KEY.to_string(), Tensor::new(&[step], &Device::Cpu)?);
        Ok(out)
    }

    /// Restores a state written by [`Adam::state_tensors`]. Every var must have both moments,
    /// shaped like the var; moments for vars this optimiser does not own are an error (they
    /// mean the model changed). Dtype and device are converted to the var's. Nothing changes
    /// unless everything validates.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        const WHAT: &str = "Adam state";
        let step_t = state.get(STEP_KEY).ok_or_else(|| CoreError::MissingKey {
            what: WHAT.into(),
            key: STEP_KEY.into(),
        })?;
        if step_t.elem_count() != 1 {
            return Err(CoreError::Shape {
                what: format!("{WHAT} key `{STEP_KEY}`"),
                expected: "one element".into(),
                got: format!("{:?}", step_t.dims()),
            });
        }
        let step = step_t
            .flatten_all()?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?[0];
        let step = u64::try_from(step)
            .map_err(|_| CoreError::invalid(format!("{WHAT} key `{STEP_KEY}`"), "negative step"))?;

        let owned: BTreeSet<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        let mut unknown: Vec<&String> = state
            .keys()
            .filter(|k| {
                k.as_str() != STEP_KEY
                    && !k
                        .strip_prefix(M_PREFIX)
                        .or_else(|| k.strip_prefix(V_PREFIX))
                        .is_some_and(|n| owned.contains(n))
            })
            .collect();
        unknown.sort();
        if let Some(key) = unknown.first() {
            return Err(CoreError::UnexpectedKey {
                what: WHAT.into(),
                key: (*key).clone(),
                hint: format!(
                    "{} key(s) in the state belong to no var of this optimiser",
                    unknown.len()
                ),
            });
        }

        let mut loaded = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut pair = Vec::with_capacity(2);
            for prefix in [M_PREFIX, V_PREFIX] {
                let key = format!("{prefix}{}", p.name);
                let t = match state.get(&key) {
                    Some(t) => t,
                    // See `state_tensors`: without beta1 the first moment is not state.
                    None if prefix == M_PREFIX && self.config.beta1 == 0.0 => {
                        pair.push(p.var.as_tensor().zeros_like()?);
                        continue;
                    }
                    None => {
                        return Err(CoreError::MissingKey {
                            what: WHAT.into(),
                            key: key.clone(),
                        });
                    }
                };
                if t.dims() != p.var.dims() {
                    return Err(CoreError::Shape {
                        what: format!("{WHAT} key `{key}` (var `{}`)", p.name),
                        expected: format!("{:?}", p.var.dims()),
                        got: format!("{:?}", t.dims()),
                    });
                }
                pair.push(
                    t.detach()
                        .to_dtype(p.var.dtype())?
                        .to_device(p.var.device())?,
                );
            }
            loaded.push(pair);
        }
        for (p, mut pair) in self.params.iter_mut().zip(loaded) {
            p.v = pair.pop().expect("two moments per var");
            p.m = pair.pop().expect("two moments per var");
        }
        self.step = step;
        Ok(())
    }

    /// [`clip_grad_norm`] over this optimiser's vars.
    pub fn clip_grad_norm(&self, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
        let vars: Vec<&Var> = self.params.iter().map(|p| &p.var).collect();
        clip_grad_norm(grads, &vars, max_norm)
    }
}

/// The global L2 norm of the gradients of `vars` (vars without a gradient count as zero).
pub fn grad_norm(grads: &GradStore, vars: &[&Var]) -> Result<f64> {
    let mut sum = 0.0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            sum += g
                .detach()
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
    }
    Ok(sum.sqrt())
}

/// PyTorch's `clip_grad_norm_`: if the global L2 norm of the gradients of `vars` exceeds
/// `max_norm`, scales them all by `max_norm / (norm + 1e-6)`. Returns the norm before clipping.
///
/// A non-finite norm leaves the gradients unchanged and is returned as is: the caller should
/// then skip the step (PyTorch would silently turn every gradient into NaN).
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[&Var], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(CoreError::invalid(
            "clip_grad_norm max_norm",
            format!("{max_norm} must be finite and > 0"),
        ));
    }
    let norm = grad_norm(grads, vars)?;
    if !norm.is_finite() {
        return Ok(norm);
    }
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g.detach() * coef)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var_f64(data: &[f64]) -> Var {
        Var::from_vec(data.to_vec(), data.len(), &Device::Cpu).unwrap()
    }

    fn values(var: &Var) -> Vec<f64> {
        var.as_tensor().to_vec1::<f64>().unwrap()
    }

    /// loss = sum(c * x^2): gradient 2 c x.
    fn quadratic_grads(x: &Var, c: &[f64]) -> GradStore {
        let c = Tensor::new(c, &Device::Cpu)
            .unwrap()
            .to_dtype(x.dtype())
            .unwrap();
        let loss = (x.as_tensor().sqr().unwrap() * c)
            .unwrap()
            .sum_all()
            .unwrap();
        loss.backward().unwrap()
    }

    /// The textbook formula in plain f64, one element at a time.
    fn reference(x0: &[f64], c: &[f64], cfg: AdamConfig, steps: usize) -> Vec<f64> {
        let mut x = x0.to_vec();
        let mut m = vec![0.0; x.len()];
        let mut v = vec![0.0; x.len()];
        for t in 1..=steps {
            for i in 0..x.len() {
                let g = 2.0 * c[i] * x[i];
                x[i] *= 1.0 - cfg.lr * cfg.weight_decay;
                m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
                v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
                let mhat = m[i] / (1.0 - cfg.beta1.powi(t as i32));
                let vhat = v[i] / (1.0 - cfg.beta2.powi(t as i32));
                x[i] -= cfg.lr * mhat / (vhat.sqrt() + cfg.eps);
            }
        }
        x
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}] {x} vs {y}");
        }
    }

    #[test]
    fn matches_hand_formula_adam_adamw_and_beta1_zero() {
        let x0 = [0.5, -1.5, 2.0, 1e-3];
        let c = [1.0, 0.3, -0.7, 5.0];
        let configs = [
            AdamConfig {
                lr: 0.1,
                ..AdamConfig::default()
            },
            AdamConfig {
                lr: 0.05,
                beta1: 0.8,
                beta2: 0.9,
                eps: 1e-3,
                weight_decay: 0.1,
            },
            AdamConfig::stylegan2(0.02),
        ];
        for cfg in configs {
            let x = var_f64(&x0);
            let mut opt = Adam::new(vec![("x".into(), x.clone())], cfg).unwrap();
            for _ in 0..5 {
                opt.step(&quadratic_grads(&x, &c)).unwrap();
            }
            assert_eq!(opt.step_count(), 5);
            let want = reference(&x0, &c, cfg, 5);
            assert_close(&values(&x), &want, 1e-12);
            // The update did move the parameters (guards against a no-op optimiser).
            assert!((values(&x)[0] - x0[0]).abs() > 1e-3);
        }
    }

    #[test]
    fn f32_vars_follow_the_formula_too() {
        let x0 = [0.25f32, -0.75, 1.5];
        let x = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("x".into(), x.clone())], AdamConfig::default()).unwrap();
        let c = [1.0f32, 2.0, 3.0];
        for _ in 0..3 {
            let ct = Tensor::new(&c, &Device::Cpu).unwrap();
            let loss = (x.as_tensor().sqr().unwrap() * ct)
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        let got: Vec<f64> = x
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let x064: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
        let c64: Vec<f64> = c.iter().map(|&v| v as f64).collect();
        assert_close(
            &got,
            &reference(&x064, &c64, AdamConfig::default(), 3),
            1e-6,
        );
    }

    #[test]
    fn vars_without_grad_are_skipped() {
        let x = var_f64(&[1.0, 2.0]);
        let frozen = var_f64(&[3.0]);
        let mut opt = Adam::new(
            vec![("x".into(), x.clone()), ("frozen".into(), frozen.clone())],
            AdamConfig::default(),
        )
        .unwrap();
        opt.step(&quadratic_grads(&x, &[1.0, 1.0])).unwrap();
        assert_eq!(values(&frozen), vec![3.0]);
        assert_ne!(values(&x), vec![1.0, 2.0]);
    }

    #[test]
    fn lazy_regularisation_scales_lr_and_betas() {
        let c = AdamConfig::stylegan2(0.002).lazy_regularized(16);
        let r = 16.0 / 17.0;
        assert!((c.lr - 0.002 * r).abs() < 1e-15);
        assert_eq!(c.beta1, 0.0);
        assert!((c.beta2 - 0.99f64.powf(r)).abs() < 1e-15);
        let mut opt = Adam::new(vec![], AdamConfig::default()).unwrap();
        opt.set_lr(0.5).unwrap();
        opt.set_betas(0.0, 0.9).unwrap();
        assert_eq!(opt.config().lr, 0.5);
        assert_eq!(opt.config().beta2, 0.9);
        assert!(opt.set_betas(1.0, 0.9).is_err());
        assert!(opt.set_lr(f64::NAN).is_err());
    }

    fn run(opt: &mut Adam, x: &Var, steps: usize) {
        for _ in 0..steps {
            opt.step(&quadratic_grads(x, &[1.0, -0.5, 2.0])).unwrap();
        }
    }

    #[test]
    fn beta1_zero_state_has_no_first_moment_and_still_resumes_exactly() {
        let cfg = AdamConfig::stylegan2(0.02);
        let x0 = [0.3f32, 1.2, -0.8];
        let straight = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("w".into(), straight.clone())], cfg).unwrap();
        run(&mut opt, &straight, 6);

        let first = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut opt1 = Adam::new(vec![("w".into(), first.clone())], cfg).unwrap();
        run(&mut opt1, &first, 2);
        let state = opt1.state_tensors().unwrap();
        assert!(!state.contains_key("adam.m.w") && state.contains_key("adam.v.w"));
        let mut opt2 = Adam::new(vec![("w".into(), first.clone())], cfg).unwrap();
        opt2.load_state(&state).unwrap();
        run(&mut opt2, &first, 4);
        assert_eq!(
            straight.as_tensor().to_vec1::<f32>().unwrap(),
            first.as_tensor().to_vec1::<f32>().unwrap()
        );
        // With beta1 != 0 a missing first moment is still an error naming it.
        let mut opt3 = Adam::new(
            vec![("w".into(), first.clone())],
            AdamConfig { beta1: 0.9, ..cfg },
        )
        .unwrap();
        let err = opt3.load_state(&state).unwrap_err().to_string();
        assert!(err.contains("adam.m.w"), "{err}");
    }

    #[test]
    fn save_load_continue_is_bit_identical() {
        let cfg = AdamConfig {
            lr: 0.03,
            beta1: 0.5,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let x0 = [0.3f32, 1.2, -0.8];
        let straight = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut opt = Adam::new(vec![("w".into(), straight.clone())], cfg).unwrap();
        run(&mut opt, &straight, 7);

        let first = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut opt1 = Adam::new(vec![("w".into(), first.clone())], cfg).unwrap();
        run(&mut opt1, &first, 3);
        // Through a real safetensors file, as a checkpoint would.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("opt.safetensors");
        candle_core::safetensors::save(&opt1.state_tensors().unwrap(), &file).unwrap();
        let params = first.as_tensor().to_vec1::<f32>().unwrap();
        drop(opt1);

        let resumed = Var::from_vec(params, 3, &Device::Cpu).unwrap();
        let mut opt2 = Adam::new(vec![("w".into(), resumed.clone())], cfg).unwrap();
        let state = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
        opt2.load_state(&state).unwrap();
        assert_eq!(opt2.step_count(), 3);
        run(&mut opt2, &resumed, 4);

        let a = straight.as_tensor().to_vec1::<f32>().unwrap();
        let b = resumed.as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );

        // Without the state (fresh moments, step 0) the result differs: the test can fail.
        let fresh = Var::from_vec(x0.to_vec(), 3, &Device::Cpu).unwrap();
        let mut o = Adam::new(vec![("w".into(), fresh.clone())], cfg).unwrap();
        run(&mut o, &fresh, 3);
        let mut o2 = Adam::new(vec![("w".into(), fresh.clone())], cfg).unwrap();
        run(&mut o2, &fresh, 4);
        assert_ne!(fresh.as_tensor().to_vec1::<f32>().unwrap(), a);
    }

    #[test]
    fn load_state_names_the_bad_key_and_changes_nothing() {
        let x = var_f64(&[1.0, 2.0]);
        let mut opt =
            Adam::new(vec![("layer.w".into(), x.clone())], AdamConfig::default()).unwrap();
        opt.step(&quadratic_grads(&x, &[1.0, 1.0])).unwrap();
        let good = opt.state_tensors().unwrap();

        let mut missing = good.clone();
        missing.remove("adam.v.layer.w");
        let err = opt.load_state(&missing).unwrap_err().to_string();
        assert!(err.contains("adam.v.layer.w"), "{err}");

        let mut shaped = good.clone();
        shaped.insert(
            "adam.m.layer.w".into(),
            Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(),
        );
        let err = opt.load_state(&shaped).unwrap_err().to_string();
        assert!(
            err.contains("adam.m.layer.w") && err.contains("[3]"),
            "{err}"
        );

        let mut extra = good.clone();
        extra.insert(
            "adam.m.other".into(),
            Tensor::zeros(2, DType::F64, &Device::Cpu).unwrap(),
        );
        let err = opt.load_state(&extra).unwrap_err().to_string();
        assert!(err.contains("adam.m.other"), "{err}");

        let mut no_step = good.clone();
        no_step.remove(STEP_KEY);
        assert!(
            opt.load_state(&no_step)
                .unwrap_err()
                .to_string()
                .contains(STEP_KEY)
        );

        assert_eq!(opt.step_count(), 1);
        opt.load_state(&good).unwrap();
        assert_eq!(opt.step_count(), 1);
    }

    #[test]
    fn constructor_rejects_duplicates_and_bad_config() {
        let x = var_f64(&[1.0]);
        assert!(
            Adam::new(
                vec![("a".into(), x.clone()), ("a".into(), x.clone())],
                AdamConfig::default()
            )
            .is_err()
        );
        let bad = AdamConfig {
            eps: 0.0,
            ..AdamConfig::default()
        };
        assert!(Adam::new(vec![("a".into(), x)], bad).is_err());
    }

    #[test]
    fn clip_grad_norm_scales_like_pytorch() {
        let x = var_f64(&[3.0, 4.0]);
        // loss = sum(x^2 / 2): gradient x, norm 5.
        let loss = (x.as_tensor().sqr().unwrap() * 0.5)
            .unwrap()
            .sum_all()
            .unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, &[&x], 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
        let coef = 1.0 / (5.0 + 1e-6);
        assert_close(&g, &[3.0 * coef, 4.0 * coef], 1e-12);
        // Below the threshold nothing changes.
        let n2 = clip_grad_norm(&mut grads, &[&x], 10.0).unwrap();
        assert!((n2 - 5.0 * coef).abs() < 1e-9);
        assert_close(
            &grads.get(x.as_tensor()).unwrap().to_vec1::<f64>().unwrap(),
            &[3.0 * coef, 4.0 * coef],
            1e-12,
        );
        assert!(clip_grad_norm(&mut grads, &[&x], 0.0).is_err());
    }

    #[test]
    fn varmap_vars_are_sorted() {
        let vm = candle_nn::VarMap::new();
        vm.get(2, "b", candle_nn::Init::Const(0.), DType::F32, &Device::Cpu)
            .unwrap();
        vm.get(3, "a", candle_nn::Init::Const(1.), DType::F32, &Device::Cpu)
            .unwrap();
        let opt = Adam::from_varmap(&vm, AdamConfig::default()).unwrap();
        assert_eq!(opt.names(), vec!["a", "b"]);
    }
}
