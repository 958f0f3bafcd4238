//! Helpers for parity tests against committed PyTorch fixtures (safetensors files written by
//! the scripts in `tools/`). Test support, not model code: they panic with a message on a
//! broken fixture instead of returning errors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

/// All tensors of a fixture file.
pub fn load_fixture(path: impl AsRef<Path>) -> HashMap<String, Tensor> {
    let path = path.as_ref();
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The `__metadata__` map of a safetensors header.
pub fn fixture_metadata(path: impl AsRef<Path>) -> HashMap<String, String> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    meta.metadata().clone().unwrap_or_default()
}

/// The sorted `(key, shape)` list a fixture generator stored under `keys.<name>` (the state
/// dict of the PyTorch model), to compare parameter names and shapes.
pub fn torch_keys(meta: &HashMap<String, String>, name: &str) -> Vec<(String, Vec<usize>)> {
    let s = meta
        .get(&format!("keys.{name}"))
        .unwrap_or_else(|| panic!("fixture has no keys.{name}"));
    let mut v: Vec<(String, Vec<usize>)> =
        serde_json::from_str(s).unwrap_or_else(|e| panic!("keys.{name}: {e}"));
    v.sort();
    v
}

/// A CPU f32 tensor of `shape` with N(0, 1) values from the seeded stream `seed`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(
        crate::rng::randn_vec(&mut crate::rng::rng_from_seed(seed), n),
        shape,
        &Device::Cpu,
    )
    .expect("shape matches the data")
}

/// `max |a - b|` (f32 tensors of equal shape).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .expect("f32 tensors of equal shape")
}

/// `max |a - b| / max |b|` (f32 tensors of equal shape).
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    let max_abs = |t: &Tensor| -> f32 {
        t.abs()
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("f32 tensor")
    };
    let d = max_abs(&(a - b).expect("same shape"));
    d / max_abs(b).max(1e-12)
}
