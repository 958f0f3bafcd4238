//! Shared helpers of the losses tests: fixture paths, the committed image pairs, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The reference values written by tools/losses_fixtures.py.
pub fn reference() -> HashMap<String, Tensor> {
    let p = fixtures().join("perceptual_pairs.safetensors");
    candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
}

pub fn vec1(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// The committed pairs as two `[N, 3, 64, 64]` batches in [-1, 1] (reference, distorted).
pub fn pairs(dtype: DType) -> (Tensor, Tensor) {
    let load = |sub: &str| {
        let dir = fixtures().join("pairs").join(sub);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert_eq!(names.len(), 6, "{}", dir.display());
        let ts: Vec<Tensor> = names
            .iter()
            .map(|p| {
                let img = s2m_core::imageio::load_rgb(p).unwrap();
                s2m_core::imageio::rgb_to_tensor(&img, &Device::Cpu).unwrap()
            })
            .collect();
        Tensor::stack(&ts, 0).unwrap().to_dtype(dtype).unwrap()
    };
    (load("ref"), load("dist"))
}

/// Worst `|ours - ref| / |ref|` over the elements; panics above `tol`.
pub fn assert_rel(name: &str, ours: &[f64], reference: &[f64], tol: f64) -> f64 {
    assert_eq!(ours.len(), reference.len(), "{name}: length");
    let mut worst = 0f64;
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        let rel = (a - b).abs() / b.abs().max(1e-12);
        println!("{name:>18}[{i}] rust {a:.9e} python {b:.9e} rel {rel:.2e}");
        worst = worst.max(rel);
    }
    println!("{name:>18} worst relative error {worst:.2e} (tolerance {tol:.0e})");
    assert!(
        worst <= tol,
        "{name}: worst relative error {worst:.3e} > {tol:.0e}"
    );
    worst
}

/// Deterministic values in [-amp, amp] (no RNG needed in tests).
pub fn wave(shape: &[usize], k: f64, amp: f64, dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|i| amp * ((i as f64 + 1.0) * k).sin() * ((i as f64) * 0.37 + 0.5).cos())
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}
