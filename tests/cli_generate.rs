//! The main job, `sketch2medi generate`, with the committed default pipeline
//! (`weights/sketch2medi_phantom64`): a sketch file or a folder in, PNGs with provenance out;
//! warnings and clear errors for bad input.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sketch2medi"))
        .args(args)
        .env_remove("SKETCH2MEDI_WEIGHTS")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/sketches")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn generate_writes_image_strip_variations_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/throat.png");
    let strip = dir.path().join("strip.png");
    let o = run(&[
        "generate",
        "--sketch",
        &example("freehand_careful.png"),
        "--out",
        out.to_str().unwrap(),
        "--strip",
        strip.to_str().unwrap(),
        "--variations",
        "2",
        "--steps",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    let s = image::open(&strip).unwrap();
    assert!(s.width() > 5 * 64, "sketch + E + 3 steps");
    for i in 0..2 {
        assert!(dir.path().join(format!("sub/throat_var{i}.png")).is_file());
    }
    let prov = sketch2medi::pipeline::read_provenance(&out)
        .unwrap()
        .expect("provenance");
    assert_eq!(prov["synthetic"], true);
    assert_eq!(prov["steps"], 3);
    assert_eq!(prov["weights"]["generator"].as_str().unwrap().len(), 64);
    // Deterministic: the same sketch gives the same image.
    let out2 = dir.path().join("again.png");
    let o = run(&[
        "generate",
        "--sketch",
        &example("freehand_careful.png"),
        "--out",
        out2.to_str().unwrap(),
        "--steps",
        "3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        image::open(&out2).unwrap().to_rgb8(),
        img.to_rgb8(),
        "same sketch, same image"
    );
}

#[test]
fn folder_mode_skips_bad_files_and_warns_on_blank_sketches() {
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("sketches");
    std::fs::create_dir_all(&sk).unwrap();
    std::fs::copy(example("freehand_shaky.png"), sk.join("a.png")).unwrap();
    image::GrayImage::from_pixel(100, 80, image::Luma([255]))
        .save(sk.join("blank.png"))
        .unwrap();
    std::fs::write(sk.join("broken.png"), b"not an image").unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "generate",
        "--sketch",
        sk.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("broken.png"), "{err}");
    assert!(err.contains("blank.png") && err.contains("blank"), "{err}");
    assert!(out.join("a.png").is_file() && out.join("blank.png").is_file());
    assert!(!out.join("broken.png").exists());
    assert!(
        text(&o.stdout).contains("1 files skipped"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn folder_mode_skips_sketches_over_the_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("sketches");
    std::fs::create_dir_all(&sk).unwrap();
    std::fs::copy(example("freehand_shaky.png"), sk.join("a.png")).unwrap();
    // 1x300000: over the decode limit; 16000x10: too thin (aspect ratio); a 20000x20000 PNG
    // header and a JPEG header saying 64x65535.
    image::GrayImage::from_pixel(1, 300_000, image::Luma([0]))
        .save(sk.join("thin.png"))
        .unwrap();
    image::GrayImage::from_pixel(16_000, 10, image::Luma([255]))
        .save(sk.join("strip.png"))
        .unwrap();
    std::fs::write(
        sk.join("huge.png"),
        s2m_core::testing::png_claiming_size(20_000, 20_000),
    )
    .unwrap();
    std::fs::write(
        sk.join("tall.jpg"),
        s2m_core::testing::jpeg_claiming_size(64, 65_535),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "generate",
        "--sketch",
        sk.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    for name in ["thin.png", "strip.png", "huge.png", "tall.jpg"] {
        assert!(err.contains(name), "{name}: {err}");
        assert!(
            !out.join(name).with_extension("png").exists(),
            "{name} written"
        );
    }
    assert!(
        err.contains("16384") && err.contains("aspect ratio"),
        "{err}"
    );
    assert!(out.join("a.png").is_file());
    assert!(
        text(&o.stdout).contains("4 files skipped"),
        "{}",
        text(&o.stdout)
    );
    // Single-file mode: an error naming the file, nothing written.
    let single = dir.path().join("single.png");
    let o = run(&[
        "generate",
        "--sketch",
        sk.join("thin.png").to_str().unwrap(),
        "--out",
        single.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("thin.png"), "{}", text(&o.stderr));
    assert!(!single.exists());
}

#[test]
fn bad_inputs_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.png");
    std::fs::write(&bad, b"plain text").unwrap();
    let out = dir.path().join("x.png");
    let o = run(&[
        "generate",
        "--sketch",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("notes.png"), "{}", text(&o.stderr));
    let o = run(&[
        "generate",
        "--sketch",
        &example("freehand_careful.png"),
        "--out",
        out.to_str().unwrap(),
        "--weights",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("pipeline.json"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists());
}

#[test]
fn numeric_options_above_their_caps_are_refused_naming_the_option_and_cap() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.png");
    for (args, needles) in [
        (vec!["--steps", "17"], ["--steps", "16"]),
        (vec!["--batch", "0"], ["--batch", "at least 1"]),
        (vec!["--batch", "257"], ["--batch", "256"]),
        (vec!["--variations", "257"], ["--variations", "256"]),
    ] {
        let mut a = vec![
            "generate".to_string(),
            "--sketch".into(),
            example("freehand_careful.png"),
            "--out".into(),
            out.to_str().unwrap().into(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = run(&a);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = text(&o.stderr);
        for n in needles {
            assert!(e.contains(n), "{args:?}: {e}");
        }
        assert!(!out.exists());
    }
}

fn generate(sketch: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "generate",
        "--sketch",
        sketch.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "1",
    ];
    a.extend_from_slice(extra);
    run(&a)
}

#[test]
fn single_file_mode_never_overwrites_the_sketch_or_one_output_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let sketch = dir.path().join("s.png");
    std::fs::copy(example("freehand_careful.png"), &sketch).unwrap();
    let original = std::fs::read(&sketch).unwrap();
    // --out is the sketch, spelled another way.
    let same = dir.path().join(".").join("sub/../s.png");
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let o = generate(&sketch, &same, &[]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("--out") && e.contains("input sketch"), "{e}");
    // --strip is the sketch, or --out; a variation is the sketch.
    let out = dir.path().join("out.png");
    let o = generate(&sketch, &out, &["--strip", sketch.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--strip"), "{}", text(&o.stderr));
    let o = generate(&sketch, &out, &["--strip", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("--strip") && e.contains("same file"), "{e}");
    let o = generate(&sketch, &dir.path().join("s.jpg"), &["--variations", "1"]);
    assert!(
        o.status.success(),
        "s_var0.png is not s.png: {}",
        text(&o.stderr)
    );
    let o = generate(
        &sketch,
        &dir.path().join("x.png"),
        &[
            "--strip",
            dir.path().join("x_var0.png").to_str().unwrap(),
            "--variations",
            "2",
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--variations"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read(&sketch).unwrap(),
        original,
        "the sketch is untouched"
    );
    assert!(!out.exists() && !dir.path().join("x.png").exists());
    // An existing --out that is not the sketch is replaced (documented behaviour).
    std::fs::write(&out, b"old").unwrap();
    let o = generate(&sketch, &out, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(image::open(&out).unwrap().width(), 64);
}

#[test]
fn folder_mode_refuses_overwrites_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let sk = dir.path().join("sketches");
    std::fs::create_dir_all(&sk).unwrap();
    std::fs::copy(example("freehand_shaky.png"), sk.join("a.png")).unwrap();
    std::fs::copy(example("freehand_careful.png"), sk.join("b.png")).unwrap();
    let listing = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    // --out is the sketch folder (another spelling).
    let o = generate(&sk, &dir.path().join("sketches/."), &[]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--sketch folder"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(listing(&sk), ["a.png", "b.png"]);
    // Two sketches with one output name: an error naming both, nothing written.
    image::RgbImage::from_pixel(40, 40, image::Rgb([255, 255, 255]))
        .save(sk.join("A.jpg"))
        .unwrap();
    let out = dir.path().join("out");
    let o = generate(&sk, &out, &[]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("A.jpg") && e.contains("a.png"), "{e}");
    assert!(!out.exists(), "nothing written");
    std::fs::remove_file(sk.join("A.jpg")).unwrap();
    // An existing output: refused without --force (the file is kept), replaced with it.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("b.png"), b"mine").unwrap();
    let o = generate(&sk, &out, &[]);
    assert!(!o.status.success());
    let e = text(&o.stderr);
    assert!(e.contains("b.png") && e.contains("--force"), "{e}");
    assert_eq!(listing(&out), ["b.png"], "nothing written");
    assert_eq!(std::fs::read(out.join("b.png")).unwrap(), b"mine");
    let o = generate(&sk, &out, &["--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(listing(&out), ["a.png", "b.png"]);
    assert!(
        sketch2medi::pipeline::read_provenance(&out.join("b.png"))
            .unwrap()
            .is_some()
    );
}
