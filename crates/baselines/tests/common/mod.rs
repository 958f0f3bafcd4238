//! Helpers shared by the integration tests (`mod common;`): fixture paths and groups, the
//! blocky training data, checks of a finished or resumed training run.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_nn::VarMap;
use s2m_train::Schedule;
use s2m_train::logcsv::{CsvLog, read_csv_log};

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `e <= tol`, false for NaN.
pub fn within(e: f32, tol: f32) -> bool {
    e <= tol
}

/// The tensors of `fx` under `prefix.` with the prefix removed.
pub fn group(fx: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    let p = format!("{prefix}.");
    fx.iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone())))
        .collect()
}

/// The keys every baseline fixture's metadata records (`tools/baselines_*_fixtures.py`).
pub const PROVENANCE_KEYS: [&str; 7] = [
    "script",
    "reference_repository",
    "reference_commit",
    "torch_version",
    "stubbed",
    "config",
    "gan_loss",
];

/// Asserts that `meta` holds [`PROVENANCE_KEYS`] and `extra`.
pub fn assert_provenance(meta: &HashMap<String, String>, extra: &[&str]) {
    for k in PROVENANCE_KEYS.iter().chain(extra) {
        assert!(meta.contains_key(*k), "metadata {k}");
    }
}

/// The schedule of the training tests: seeded, a log row every step, checkpoints and samples
/// only at the end.
pub fn test_schedule(seed: u64) -> Schedule {
    Schedule {
        seed,
        log_every: 1,
        ..Schedule::default()
    }
    .only_at_end()
}

/// `n` blocky 64 px sketches in {-1, 1}: `[n, 1, 64, 64]`, 8x8 noise signs from `seed`.
pub fn blocky_sketches(n: usize, seed: u64) -> Tensor {
    s2m_core::testing::randn(&[n, 1, 8, 8], seed)
        .sign()
        .unwrap()
        .upsample_nearest2d(64, 64)
        .unwrap()
}

/// An RGB image that is a fixed function of the one-channel `s`: `[N, 3, H, W]`.
pub fn rgb_of(s: &Tensor) -> Tensor {
    Tensor::cat(
        &[
            (s * 0.8).unwrap(),
            (s * -0.5).unwrap(),
            (s.abs().unwrap() * 0.3).unwrap(),
        ],
        1,
    )
    .unwrap()
}

/// Asserts that the mean of the last five `values` is below `ratio` times the mean of the
/// first five (`what` names the loss).
pub fn assert_goes_down(values: &[f64], ratio: f64, what: &str) {
    let first: f64 = values[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = values[values.len() - 5..].iter().sum::<f64>() / 5.0;
    println!(
        "{what} over {} steps: first 5 {first:.4}, last 5 {last:.4}",
        values.len()
    );
    assert!(
        last < ratio * first,
        "{what} did not go down: first {first:.4}, last {last:.4}"
    );
}

/// Asserts that the run in `dir` wrote its final sample strip, its loss plot and `steps` log rows.
pub fn assert_run_outputs(dir: &Path, steps: usize) {
    assert!(dir.join("samples/final.png").exists());
    assert!(dir.join("loss.png").exists());
    let log = read_csv_log(dir.join("log.csv")).unwrap();
    assert_eq!(log.steps.len(), steps);
}

/// Asserts that the runs in `a` and `b` logged the same steps and the same values in the first
/// `columns` columns (the losses, not the wall time).
pub fn assert_same_losses(a: &Path, b: &Path, columns: usize) {
    let la = read_csv_log(a.join("log.csv")).unwrap();
    let lb = read_csv_log(b.join("log.csv")).unwrap();
    let losses = |l: &CsvLog| -> Vec<Vec<Option<f64>>> {
        l.values.iter().map(|r| r[..columns].to_vec()).collect()
    };
    assert_eq!(la.steps, lb.steps);
    assert_eq!(losses(&la), losses(&lb), "logged losses");
}

/// The vars of `nets` as `(net.name, bytes)`: f32 values little-endian, i64 buffers (BatchNorm's
/// `num_batches_tracked`) printed; for bit-identity checks.
pub fn var_bytes<'a>(
    nets: impl IntoIterator<Item = (&'a str, &'a VarMap)>,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (net, vars) in nets {
        for (name, v) in s2m_train::optim::varmap_named_vars(vars) {
            let t = v.as_tensor();
            let bytes = match t.dtype() {
                candle_core::DType::I64 => {
                    format!("{:?}", t.to_scalar::<i64>().unwrap()).into_bytes()
                }
                _ => t
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            };
            out.push((format!("{net}.{name}"), bytes));
        }
    }
    out
}
