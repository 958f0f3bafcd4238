//! Fixture helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path(name), &Device::Cpu).expect("fixture")
}

/// `__metadata__` of a safetensors file (header JSON).
pub fn metadata(name: &str) -> HashMap<String, String> {
    let bytes = std::fs::read(fixture_path(name)).expect("fixture");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("header")) as usize;
    let v: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("json header");
    v["__metadata__"]
        .as_object()
        .expect("metadata")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Expected `(key, shape)` list stored by the fixture generator, sorted.
pub fn torch_keys(meta: &HashMap<String, String>, name: &str) -> Vec<(String, Vec<usize>)> {
    let s = meta
        .get(&format!("keys.{name}"))
        .unwrap_or_else(|| panic!("fixture has no keys.{name}"));
    let mut v: Vec<(String, Vec<usize>)> = serde_json::from_str(s).expect("keys json");
    v.sort();
    v
}

/// max |a - b| / max |b|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shape");
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let m = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    d / m.max(1e-12)
}
