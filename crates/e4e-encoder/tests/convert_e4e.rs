//! The e4e checkpoint converter (`tools/convert_e4e.py`) against e4e's own code: a checkpoint
//! saved by e4e's objects (its `pSp` net, the dict of `training/coach.py` `__get_save_dict`) is
//! converted to an encoder export, loaded with [`EncoderBundle::load`], and run against e4e's
//! `Encoder4Editing.forward` (codes + latent_avg, progressive stages, gradients).
//!
//! Fixtures (`tools/e4e_fixtures.py`, from a checkout of omertov/encoder4editing; tools/README.md):
//!
//! ```text
//! /work/venv-ref/bin/python tools/e4e_fixtures.py --e4e /path/to/encoder4editing \
//!     [--official-out /tmp/e4e_official [--official-size 1024]]
//! ```
//!
//! - committed: `e4e_narrow_export/` (the converter's output) and
//!   `e4e_narrow_reference.safetensors` (e4e's outputs): a narrow e4e (IR-SE-50 units at widths
//!   16/16/16/32, 10 styles of 16-d, 64 px), assembled from e4e's classes;
//! - `#[ignore]`: e4e's own configuration (IR-SE-50, 18 styles for stylegan_size 1024, 256 px),
//!   about 1 GB, read from `E4E_OFFICIAL_DIR` (`DIR/export`, `DIR/reference.safetensors`), and
//!   e4e's `SingleStyleCodeEncoder` (`DIR/single_export`, `DIR/single_reference.safetensors`).
//!
//! The stored outputs are e4e's forward run in f64 on the f32 weights of the export (the exact
//! answer); the metadata records PyTorch's own f32 error against it (`torch_f32_err.<key>`).
//! Tolerances: max |rust - ref| <= 1e-4 max |ref| (forward) and 1e-3 (gradients). Against
//! torch's own f32 run the official config's gradients would not do: PyTorch's f32 input
//! gradient is 7e-3 off the f64 answer (the log prints PyTorch's error beside ours).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use e4e_encoder::{Encoder, EncoderBundle};
use s2m_core::testing::{fixture_metadata, load_fixture, rel_err};

const FWD_TOL: f32 = 1e-4;
const GRAD_TOL: f32 = 1e-3;

/// PyTorch's own f32 error against the stored f64 answer (`torch_f32_err.<key>`), for the log.
fn torch_f32_err<'a>(meta: &'a HashMap<String, String>, key: &str) -> &'a str {
    meta.get(&format!("torch_f32_err.{key}"))
        .map_or("?", String::as_str)
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Checks an export against e4e's reference outputs; returns (forward, gradient) worst errors.
fn check_round_trip(export: &Path, reference: &Path) -> (f32, f32) {
    let meta = fixture_metadata(reference);
    assert_eq!(
        meta.get("reference_repository").map(String::as_str),
        Some("https://github.com/omertov/encoder4editing"),
        "provenance of {}: {meta:?}",
        reference.display()
    );
    assert!(meta.contains_key("reference_commit") && meta.contains_key("stubbed"));
    let t = load_fixture(reference);
    let dev = Device::Cpu;
    let bundle = EncoderBundle::load(export, &dev).unwrap();
    let x = &t["input"];

    let mut fwd = vec![(
        "codes".to_string(),
        rel_err(&bundle.embed(x).unwrap(), &t["codes"]),
    )];
    for stage in [0usize, 2, 5]
        .into_iter()
        .filter(|s| t.contains_key(&format!("stage{s}")))
    {
        let codes = bundle.encoder.forward_progressive(x, false, stage).unwrap();
        let w = Encoder::add_latent_avg(&codes, &bundle.latent_avg).unwrap();
        let name = format!("stage{stage}");
        let err = rel_err(&w, &t[&name]);
        fwd.push((name, err));
    }

    // Gradients of sum(w * proj) w.r.t. the input and the stored parameters: the converted
    // tensors as Vars.
    let tensors = candle_core::safetensors::load(export.join("encoder.safetensors"), &dev).unwrap();
    let vars: HashMap<String, Var> = tensors
        .into_iter()
        .map(|(k, v)| (k, Var::from_tensor(&v).unwrap()))
        .collect();
    let map: HashMap<String, Tensor> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
    let e = Encoder::new(bundle.encoder.config().clone(), vb).unwrap();
    let xv = Var::from_tensor(x).unwrap();
    let w =
        Encoder::add_latent_avg(&e.forward(xv.as_tensor()).unwrap(), &bundle.latent_avg).unwrap();
    let loss = (w * &t["proj"]).unwrap().sum_all().unwrap();
    let g = loss.backward().unwrap();
    let mut grad = Vec::new();
    for (k, want) in t.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let name = &k["grad.".len()..];
        let got = if name == "input" {
            g.get(xv.as_tensor())
        } else {
            let v = vars
                .get(name)
                .unwrap_or_else(|| panic!("export lacks {name}"));
            g.get(v.as_tensor())
        }
        .unwrap_or_else(|| panic!("no gradient for {name}"));
        grad.push((k.clone(), rel_err(got, want)));
    }
    assert!(grad.len() >= 7, "fixture has {} gradients", grad.len());
    for (name, err) in &fwd {
        println!(
            "{name}: {err:.2e} (torch f32: {})",
            torch_f32_err(&meta, name)
        );
        assert!(*err <= FWD_TOL, "{name}: {err} > {FWD_TOL}");
    }
    for (name, err) in &grad {
        println!(
            "{name}: {err:.2e} (torch f32: {})",
            torch_f32_err(&meta, name)
        );
        assert!(*err <= GRAD_TOL, "{name}: {err} > {GRAD_TOL}");
    }
    let worst_grad = grad.iter().map(|(_, e)| *e).fold(0f32, f32::max);
    let worst_fwd = fwd.iter().map(|(_, e)| *e).fold(0f32, f32::max);
    println!("worst: forward {worst_fwd:.2e}, gradient {worst_grad:.2e}");
    (worst_fwd, worst_grad)
}

#[test]
fn converted_narrow_e4e_checkpoint_matches_e4e() {
    let f = fixtures();
    check_round_trip(
        &f.join("e4e_narrow_export"),
        &f.join("e4e_narrow_reference.safetensors"),
    );
}

/// e4e's own configuration; needs the folder written by
/// `tools/e4e_fixtures.py --official-out DIR` in `E4E_OFFICIAL_DIR`.
#[test]
#[ignore = "about 1 GB of weights written by tools/e4e_fixtures.py --official-out DIR; set E4E_OFFICIAL_DIR=DIR"]
fn converted_official_e4e_checkpoint_matches_e4e() {
    let dir = PathBuf::from(
        std::env::var("E4E_OFFICIAL_DIR")
            .expect("set E4E_OFFICIAL_DIR to the folder of tools/e4e_fixtures.py --official-out"),
    );
    check_round_trip(&dir.join("export"), &dir.join("reference.safetensors"));
}

/// e4e's `SingleStyleCodeEncoder` at its own configuration (the same folder: `single_export`).
#[test]
#[ignore = "about 100 MB of weights written by tools/e4e_fixtures.py --official-out DIR; set E4E_OFFICIAL_DIR=DIR"]
fn converted_official_single_w_e4e_checkpoint_matches_e4e() {
    let dir = PathBuf::from(
        std::env::var("E4E_OFFICIAL_DIR")
            .expect("set E4E_OFFICIAL_DIR to the folder of tools/e4e_fixtures.py --official-out"),
    );
    check_round_trip(
        &dir.join("single_export"),
        &dir.join("single_reference.safetensors"),
    );
}
