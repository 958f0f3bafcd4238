//! Acceptance test of the evaluate API on a small phantom set: real vs blurred vs noised
//! copies. FD[stlpips-alex] (the shipped trained ST-LPIPS trunk) and ST-LPIPS must grow with
//! the degradation, DICE of the ground-truth masks against themselves is 1, metrics without
//! weights report "not available", and bad input gives clear messages.

use std::path::{Path, PathBuf};

use backbones::synthetic::synthetic_var_builder;
use candle_core::{DType, Device};
use image::RgbImage;
use metrics::clip_iqa::{ClipIqa, ClipRn50Visual};
use metrics::evaluate::{EvaluateConfig, MethodInput, Models, evaluate_with};
use metrics::report::{Metric, Report};
use rand::{Rng, SeedableRng};
use s2m_core::progress::NoProgress;

const N: usize = 24;

fn weights_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../weights")
}

/// Builds a 48 px phantom and writes `real`, `masks`, `blur1`, `blur2`, `noise` folders of N
/// images each under `root`.
fn make_sets(root: &Path) {
    let ph = root.join("phantom");
    let cfg = pharynx_phantom::export::BuildConfig {
        out: ph.clone(),
        scale: 0.0025,
        size: 48,
        seed: 11,
        force: false,
        sketch: sketch_synth::SketchConfig::default(),
        command: "metrics evaluate test".into(),
    };
    pharynx_phantom::export::build_dataset(&cfg, &NoProgress).unwrap();
    let files = metrics::features::image_files(&ph.join("images")).unwrap();
    assert!(files.len() >= N);
    for d in ["real", "masks", "blur1", "blur2", "noise"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for f in files.iter().take(N) {
        let name = f.file_name().unwrap();
        let img: RgbImage = s2m_core::imageio::load_rgb(f).unwrap();
        img.save(root.join("real").join(name)).unwrap();
        std::fs::copy(ph.join("masks").join(name), root.join("masks").join(name)).unwrap();
        image::imageops::blur(&img, 0.8)
            .save(root.join("blur1").join(name))
            .unwrap();
        image::imageops::blur(&img, 2.0)
            .save(root.join("blur2").join(name))
            .unwrap();
        let mut n = img.clone();
        for p in n.pixels_mut() {
            for c in p.0.iter_mut() {
                *c = (*c as i32 + rng.random_range(-40..=40)).clamp(0, 255) as u8;
            }
        }
        n.save(root.join("noise").join(name)).unwrap();
    }
}

fn method(root: &Path, name: &str, masks: bool) -> MethodInput {
    MethodInput {
        name: name.into(),
        images: root.join(name),
        masks: masks.then(|| root.join("masks")),
    }
}

fn synthetic_clip_iqa() -> ClipIqa {
    let dev = Device::Cpu;
    let f = candle_core::safetensors::load(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_iqa.safetensors"),
        &dev,
    )
    .unwrap();
    let visual = ClipRn50Visual::new(synthetic_var_builder(DType::F32, &dev).pp("visual")).unwrap();
    let prompts = vec![("Good photo.".to_string(), "Bad photo.".to_string())];
    ClipIqa::new(visual, &f["text_features_original"], 100f64.ln(), prompts).unwrap()
}

#[test]
fn report_orders_degradations_and_handles_missing_weights() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    make_sets(root);
    let mut cfg = EvaluateConfig::new(
        root.join("real"),
        vec![
            method(root, "real", true),
            method(root, "blur1", true),
            method(root, "blur2", false),
            method(root, "noise", false),
        ],
    );
    cfg.reference_masks = Some(root.join("masks"));
    cfg.weights_dir = weights_dir();
    // Unknown file names: TReS and the Inception are absent here by construction.
    cfg.weight_files.tres = "tres_absent_for_test.safetensors".into();
    cfg.weight_files.inception = "inception_absent_for_test.safetensors".into();
    cfg.kid.subsets = 10;
    cfg.reference_stats = Some(root.join("ref_stats.safetensors"));
    let models = Models {
        clip_iqa: Some(Box::new(synthetic_clip_iqa())),
        ..Models::default()
    };
    let dev = Device::Cpu;
    let report = evaluate_with(&cfg, models, &dev, &NoProgress).unwrap();
    println!("{}", report.to_markdown());

    assert_eq!(report.fd_extractor.as_deref(), Some("stlpips-alex"));
    assert_eq!(report.label(Metric::Fd), "FD[stlpips-alex]");
    let fd = |m: &str| report.get(m, Metric::Fd).unwrap().mean.unwrap();
    assert!(fd("real").abs() < 1e-6, "{}", fd("real"));
    assert!(
        fd("real") < fd("blur1") && fd("blur1") < fd("blur2"),
        "FD not ordered"
    );
    assert!(
        fd("noise") > fd("blur1"),
        "noise {} vs blur1 {}",
        fd("noise"),
        fd("blur1")
    );
    let kid = |m: &str| report.get(m, Metric::Kid).unwrap().mean.unwrap();
    assert!(kid("real").abs() < kid("blur2") && kid("blur1") < kid("blur2"));
    // ST-LPIPS (shipped weights) is 0 for identical images and grows with the blur.
    let st = |m: &str| report.get(m, Metric::StLpips).unwrap().mean.unwrap();
    assert!(
        st("real").abs() < 1e-6 && st("blur1") < st("blur2"),
        "{} {}",
        st("blur1"),
        st("blur2")
    );
    // DICE of the GT masks against themselves.
    let dice = report.get("real", Metric::Dice).unwrap();
    assert_eq!(dice.mean, Some(1.0));
    assert_eq!(dice.std, Some(0.0));
    // No masks and no segmentation model for blur2: n/a with the reason.
    let d2 = report.get("blur2", Metric::Dice).unwrap();
    assert!(d2.mean.is_none() && d2.note.as_ref().unwrap().contains("segmentation model"));
    // CLIP-IQA ran (synthetic weights) and lies in [0, 1].
    let c = report.get("noise", Metric::ClipIqa).unwrap();
    assert!((0.0..=1.0).contains(&c.mean.unwrap()) && c.n == N);
    // TReS weights absent: "not available: <file> missing" in the cell's note and the table.
    let t = report.get("real", Metric::Tres).unwrap();
    assert!(t.note.as_ref().unwrap().starts_with("not available:"));
    assert!(
        t.note
            .as_ref()
            .unwrap()
            .contains("tres_absent_for_test.safetensors missing")
    );
    let md = report.to_markdown();
    assert!(
        md.contains("| method | FD[stlpips-alex] ↓ | KID[stlpips-alex] ↓ | TReS ↑"),
        "{md}"
    );
    assert!(md.contains("n/a [") && md.contains("tres_absent_for_test.safetensors missing"));
    // Singular covariance warned with the count needed.
    assert!(
        report.warnings.iter().any(|w| w.contains("1153")),
        "{:?}",
        report.warnings
    );

    // JSON round trip; written files.
    let back = Report::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back.methods.len(), 4);
    let b1 = back.get("blur1", Metric::Fd).unwrap().mean.unwrap();
    assert!((b1 - fd("blur1")).abs() <= 1e-12 * fd("blur1"));
    let (j, m) = report.write(&root.join("out")).unwrap();
    assert!(j.exists() && m.exists());

    // Deterministic, and the cached reference statistics give the same FD.
    let mut cfg2 = cfg.clone();
    cfg2.metrics = vec![Metric::Fd];
    cfg2.methods.truncate(2);
    assert!(cfg2.reference_stats.as_ref().unwrap().exists());
    let r2 = evaluate_with(&cfg2, Models::default(), &dev, &NoProgress).unwrap();
    assert_eq!(r2.get("blur1", Metric::Fd).unwrap().mean, Some(fd("blur1")));
}

#[test]
fn bad_input_gives_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a, b) = (root.join("ref"), root.join("gen"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let img = RgbImage::from_fn(40, 40, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 6) as u8, 90])
    });
    for i in 0..4 {
        img.save(a.join(format!("{i:03}.png"))).unwrap();
    }
    for i in 0..3 {
        img.save(b.join(format!("{i:03}.png"))).unwrap();
    }
    let mut cfg = EvaluateConfig::new(
        &a,
        vec![MethodInput {
            name: "m".into(),
            images: b.clone(),
            masks: None,
        }],
    );
    cfg.weights_dir = weights_dir();
    // Paired metric with unequal folders: fails before computing, naming the unmatched file.
    cfg.metrics = vec![Metric::StLpips];
    let e = evaluate_with(&cfg, Models::default(), &Device::Cpu, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot be paired") && e.contains("003") && e.contains("method `m`"),
        "{e}"
    );
    // Unpaired metric: fine; an unreadable image, and one over the decode limits (a
    // 20000x20000 PNG header), are skipped and named in the warnings.
    std::fs::write(b.join("broken.png"), b"not an image").unwrap();
    std::fs::write(
        b.join("huge.png"),
        s2m_core::testing::png_claiming_size(20_000, 20_000),
    )
    .unwrap();
    cfg.metrics = vec![Metric::Fd];
    let r = evaluate_with(&cfg, Models::default(), &Device::Cpu, &NoProgress).unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("broken.png")),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("huge.png") && w.contains("20000x20000") && w.contains("16384")),
        "{:?}",
        r.warnings
    );
    std::fs::remove_file(b.join("huge.png")).unwrap();
    assert_eq!(r.methods[0].skipped.len(), 2);
    assert_eq!(r.get("m", Metric::Fd).unwrap().n, 3);
    // Strict: the unreadable image fails the run, naming the file.
    cfg.strict = true;
    let e = evaluate_with(&cfg, Models::default(), &Device::Cpu, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.png"), "{e}");
    // Unknown metric names list the known ones.
    let e = Metric::parse("psnr").unwrap_err().to_string();
    assert!(e.contains("clip-iqa") && e.contains("st-lpips"), "{e}");
    assert_eq!(Metric::parse("FID").unwrap(), Metric::Fd);
}
