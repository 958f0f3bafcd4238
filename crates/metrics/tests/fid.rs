//! Frechet distance, KID and the FID feature pipeline against committed Python fixtures
//! (`tools/metrics_fid_fixture.py`: pytorch-fid's `calculate_frechet_distance` with scipy
//! `sqrtm`, clean-fid's KID estimator, pytorch-fid's `InceptionV3` with synthetic weights).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use metrics::features::{FeatureExtractor, InceptionFeatures, check_finite};
use metrics::frechet::{GaussianStats, frechet_distance};
use metrics::kid::{KidConfig, kid, mmd2_unbiased};

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&p, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
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
fn frechet_matches_scipy_sqrtm_on_committed_statistics() {
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

    // Statistics from the raw features equal numpy's mean and np.cov(rowvar=False).
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
fn kid_matches_clean_fid_estimator_on_fixed_subsets() {
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
    let want = f64s(&f["kid"]);
    for i in 0..want.len() {
        let got = mmd2_unbiased(&f1, &f2, 64, &r1[i], &r2[i]);
        println!("kid subset {i}: rust {got:.12} numpy {:.12}", want[i]);
        assert!(rel(got, want[i]) < 1e-9, "{got} vs {}", want[i]);
    }
    // Seeded subsets: deterministic; same distribution gives ~0, a shifted one > 0.
    let cfg = KidConfig {
        subsets: 10,
        subset_size: 50,
        seed: 3,
    };
    let a = kid(&f1, &f2, 64, &cfg).unwrap();
    let b = kid(&f1, &f2, 64, &cfg).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.subset_size, 50);
    let mean_sub: f64 = want.iter().sum::<f64>() / want.len() as f64;
    assert!(a.mean > 0.3 * mean_sub && a.mean < 3.0 * mean_sub, "{a:?}");
    let same = kid(&f1[..100 * 64], &f1[100 * 64..], 64, &cfg).unwrap();
    assert!(same.mean.abs() < a.mean / 5.0, "{same:?} vs {a:?}");
}

#[test]
fn fid_pipeline_matches_pytorch_fid_inception() {
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
        "pipeline FD: rust {fd:.10e} torch+numpy {want:.10e} rel {:.2e}",
        rel(fd, want)
    );
    assert!(rel(fd, want) < 1e-3, "{fd} vs {want}");
    let cfg = KidConfig {
        subsets: 1,
        subset_size: 1000,
        seed: 0,
    };
    let k = kid(&feats[0], &feats[1], 2048, &cfg).unwrap();
    let want_k = f64s(&f["kid"])[0];
    println!("pipeline KID: rust {:.6e} numpy {want_k:.6e}", k.mean);
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
