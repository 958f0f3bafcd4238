//! Frechet distance, KID and the FID feature pipeline against fixtures produced by the
//! reference packages themselves (pytorch-fid 0.3.0, torch-fidelity 0.4.0; the versions, the
//! calls and the one stub are in each file's metadata, checked below):
//!
//! ```text
//! /work/venv-ref/bin/python tools/metrics_fid_fixture.py
//! ```
//!
//! pytorch-fid's `calculate_frechet_distance` (scipy `sqrtm`), torch-fidelity's
//! `fid_features_to_statistics` / `fid_statistics_to_metric` / `kid_features_to_metric` /
//! `kernel_mmd`, pytorch-fid's `InceptionV3` with synthetic weights (only its download stubbed).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use metrics::features::{FeatureExtractor, InceptionFeatures, check_finite};
use metrics::frechet::{GaussianStats, frechet_distance};
use metrics::kid::{KidConfig, KidSampler, kid, kid_subsets, mmd2_unbiased};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    s2m_core::testing::load_fixture(fixture_path(name))
}

/// The fixture's safetensors `__metadata__` (provenance written by the generator script).
fn fixture_metadata(name: &str) -> HashMap<String, String> {
    s2m_core::testing::fixture_metadata(fixture_path(name))
}

/// Fails unless the fixture was written by `tools/metrics_fid_fixture.py` running the named
/// reference packages (pinned as `package==version`) and records its config and stub: a
/// fixture re-written by a stand-in for the reference cannot come back silently.
fn assert_reference(name: &str, packages: &[&str]) {
    let meta = fixture_metadata(name);
    let field = |k: &str| {
        meta.get(k)
            .unwrap_or_else(|| panic!("{name}: fixture metadata lacks `{k}`: {meta:?}"))
    };
    assert_eq!(field("generator"), "tools/metrics_fid_fixture.py", "{name}");
    for package in packages {
        assert!(
            field("reference")
                .split("; ")
                .any(|r| r.starts_with(&format!("{package}=="))),
            "{name}: reference does not name {package}: {meta:?}"
        );
    }
    assert!(!field("stubbed").is_empty(), "{name}: stub not recorded");
    assert!(!field("config").is_empty(), "{name}: config not recorded");
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

#[test]
fn frechet_matches_pytorch_fid_and_torch_fidelity() {
    assert_reference("frechet", &["pytorch-fid", "torch-fidelity"]);
    let f = fixture("frechet");
    let d = 64;
    let s1 = GaussianStats {
        extractor: "fixture".into(),
        n: 200,
        mu: f64s(&f["mu1"]),
        sigma: f64s(&f["sigma1"]),
    };
    let s2 = GaussianStats {
        extractor: "fixture".into(),
        n: 150,
        mu: f64s(&f["mu2"]),
        sigma: f64s(&f["sigma2"]),
    };
    assert_eq!(s1.dim(), d);
    let want = f64s(&f["fid"])[0];
    let got = frechet_distance(&s1, &s2).unwrap();
    println!(
        "frechet: rust {got:.15} scipy {want:.15} rel {:.2e}",
        rel(got, want)
    );
    assert!(rel(got, want) < 1e-6, "{got} vs {want}");
    let want_tf = f64s(&f["fid_torch_fidelity"])[0];
    println!(
        "frechet: rust {got:.15} torch-fidelity {want_tf:.15} rel {:.2e}",
        rel(got, want_tf)
    );
    assert!(rel(got, want_tf) < 1e-6, "{got} vs {want_tf}");

    // Statistics from the raw features equal torch-fidelity's (np.mean, np.cov(rowvar=False)).
    let ours = GaussianStats::from_features("fixture", &f32s(&f["f1"]), d).unwrap();
    let worst = ours
        .sigma
        .iter()
        .zip(&s1.sigma)
        .chain(ours.mu.iter().zip(&s1.mu))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "stats differ by {worst}");
    let ours2 = GaussianStats::from_features("fixture", &f32s(&f["f2"]), d).unwrap();
    let got2 = frechet_distance(&ours, &ours2).unwrap();
    assert!(rel(got2, want) < 1e-6, "{got2} vs {want}");
    // Symmetric.
    let back = frechet_distance(&s2, &s1).unwrap();
    assert!(rel(back, want) < 1e-6, "{back} vs {want}");
}

#[test]
fn stats_round_trip_through_a_file() {
    let f = fixture("frechet");
    let s = GaussianStats::from_features("fixture-x", &f32s(&f["f1"]), 64).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ref_stats.safetensors");
    s.save(&p).unwrap();
    let back = GaussianStats::load(&p).unwrap();
    assert_eq!(back, s);
    assert!(s.singular_warning().is_none());
    let small = GaussianStats::from_features("x", &f32s(&f["f1"])[..10 * 64], 64).unwrap();
    let w = small.singular_warning().unwrap();
    assert!(
        w.contains("only 10 images") && w.contains("at least 65"),
        "{w}"
    );
}

#[test]
fn kid_matches_torch_fidelity() {
    let f = fixture("frechet");
    let (f1, f2) = (f32s(&f["f1"]), f32s(&f["f2"]));
    let rows = |k: &str| -> Vec<Vec<usize>> {
        f[k].to_vec2::<i64>()
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(|v| v as usize).collect())
            .collect()
    };
    let (r1, r2) = (rows("kid_rows1"), rows("kid_rows2"));
    // torch-fidelity's `kernel_mmd` on the subsets it drew.
    let want = f64s(&f["kid"]);
    for i in 0..want.len() {
        let got = mmd2_unbiased(&f1, &f2, 64, &r1[i], &r2[i]);
        println!(
            "kid subset {i}: rust {got:.12} torch-fidelity {:.12} rel {:.2e}",
            want[i],
            rel(got, want[i])
        );
        assert!(rel(got, want[i]) < 1e-9, "{got} vs {}", want[i]);
    }
    // The numpy RandomState draw gives exactly torch-fidelity's subsets (rng_seed 2020).
    let cfg = KidConfig {
        subsets: 5,
        subset_size: 50,
        ..KidConfig::torch_fidelity()
    };
    let drawn = kid_subsets(200, 150, 50, &cfg).unwrap();
    for (i, (rx, ry)) in drawn.iter().enumerate() {
        assert_eq!(rx, &r1[i], "subset {i} of the first set");
        assert_eq!(ry, &r2[i], "subset {i} of the second set");
    }
    // kid_features_to_metric's mean and std: 5 x 50, its default 100 subsets (of 100), and from
    // the f32 features as its extractors hand them over (kernels in f32 there).
    let cases = [
        ("kid_mean_std", cfg, 1e-9),
        (
            "kid100_mean_std",
            KidConfig {
                subset_size: 100,
                ..KidConfig::torch_fidelity()
            },
            1e-9,
        ),
        ("kid_f32_mean_std", cfg, 1e-4),
    ];
    for (key, cfg, tol) in cases {
        let want = f64s(&f[key]);
        let got = kid(&f1, &f2, 64, &cfg).unwrap();
        println!(
            "{key}: rust {:.12} +- {:.12} torch-fidelity {:.12} +- {:.12} rel {:.2e} / {:.2e}",
            got.mean,
            got.std,
            want[0],
            want[1],
            rel(got.mean, want[0]),
            rel(got.std, want[1])
        );
        assert!(rel(got.mean, want[0]) < tol, "{key}: {got:?} vs {want:?}");
        assert!(rel(got.std, want[1]) < tol, "{key}: {got:?} vs {want:?}");
        assert_eq!(got.subsets, cfg.subsets);
    }

    // The ChaCha8 sampler: deterministic; same distribution gives ~0, a shifted one > 0.
    let cfg = KidConfig {
        subsets: 10,
        subset_size: 50,
        seed: 3,
        sampler: KidSampler::ChaCha8,
    };
    let a = kid(&f1, &f2, 64, &cfg).unwrap();
    let b = kid(&f1, &f2, 64, &cfg).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.subset_size, 50);
    let mean_sub: f64 = want.iter().sum::<f64>() / want.len() as f64;
    assert!(a.mean > 0.3 * mean_sub && a.mean < 3.0 * mean_sub, "{a:?}");
    let same = kid(&f1[..100 * 64], &f1[100 * 64..], 64, &cfg).unwrap();
    assert!(same.mean.abs() < a.mean / 5.0, "{same:?} vs {a:?}");

    // numpy's RandomState takes 32-bit seeds only.
    let big = KidConfig {
        seed: 1 << 32,
        ..KidConfig::torch_fidelity()
    };
    let e = kid(&f1, &f2, 64, &big).unwrap_err().to_string();
    assert!(e.contains("seed"), "{e}");
}

#[test]
fn fid_pipeline_matches_pytorch_fid_inception() {
    assert_reference("fid_pipeline", &["pytorch-fid", "torch-fidelity"]);
    let f = fixture("fid_pipeline");
    let dev = Device::Cpu;
    let ext = InceptionFeatures::synthetic(&dev).unwrap();
    assert!(!ext.is_fid());
    assert_eq!(ext.fd_label(), "FD[inception-v3-synthetic]");
    let feats: Vec<Vec<f32>> = ["1", "2"]
        .iter()
        .map(|k| {
            let x = &f[&format!("images{k}")];
            let ours = ext.features(x).unwrap();
            let want = &f[&format!("pool3_{k}")];
            let scale = f32s(want).iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = f32s(&(&ours - want).unwrap())
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            println!("pool3 set {k}: max err {err:.3e} / max {scale:.3e}");
            assert!(err <= 1e-4 * scale, "{err} vs {scale}");
            f32s(&ours)
        })
        .collect();
    let s1 = GaussianStats::from_features(ext.name(), &feats[0], 2048).unwrap();
    let s2 = GaussianStats::from_features(ext.name(), &feats[1], 2048).unwrap();
    assert!(s1.singular_warning().unwrap().contains("2049"));
    let fd = frechet_distance(&s1, &s2).unwrap();
    let want = f64s(&f["fd"])[0];
    println!(
        "pipeline FD: rust {fd:.10e} torch-fidelity {want:.10e} rel {:.2e}",
        rel(fd, want)
    );
    assert!(rel(fd, want) < 1e-3, "{fd} vs {want}");
    // torch-fidelity with kid_subsets=1 and kid_subset_size=5 (= the clamp to 5 images).
    let cfg = KidConfig {
        subsets: 1,
        ..KidConfig::torch_fidelity()
    };
    let k = kid(&feats[0], &feats[1], 2048, &cfg).unwrap();
    assert_eq!(k.subset_size, 5);
    let want_k = f64s(&f["kid"])[0];
    println!(
        "pipeline KID: rust {:.6e} torch-fidelity {want_k:.6e} rel {:.2e}",
        k.mean,
        rel(k.mean, want_k)
    );
    assert!(rel(k.mean, want_k) < 1e-2, "{} vs {want_k}", k.mean);
}

#[test]
fn non_finite_features_name_the_image() {
    let files = vec![PathBuf::from("a.png"), PathBuf::from("bad.png")];
    let e = check_finite(&[0.0, 1.0, f32::NAN, 2.0], 2, &files, "x").unwrap_err();
    let s = e.to_string();
    assert!(s.contains("bad.png") && s.contains("NaN"), "{s}");
    let s1 = GaussianStats::from_features("x", &[0.0, 1.0, 2.0, 3.0], 2).unwrap();
    let mut s2 = s1.clone();
    s2.mu[0] = f64::NAN;
    assert!(frechet_distance(&s1, &s2).is_err());
    let mut s3 = s1.clone();
    s3.mu.push(0.0);
    assert!(
        frechet_distance(&s1, &s3)
            .unwrap_err()
            .to_string()
            .contains("dimensions")
    );
}
