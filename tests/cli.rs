//! The `sketch2medi` binary: the main job works, and bad input gives a clear message and a
//! non-zero exit code without leaving a half-written folder.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sketch2medi"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn build(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["phantom", "build", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn build_writes_a_dataset_and_contact_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    // The staging folder of a killed build of the same folder (its PID cannot be running) is
    // removed; another folder's is not touched.
    let stale = dir.path().join(".ds.partial-4999999");
    let other = dir.path().join(".other.partial-4999999");
    for d in [&stale, &other] {
        std::fs::create_dir_all(d.join("images")).unwrap();
    }
    let o = build(&out, &["--scale", "0.0025", "--size", "32"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stale.exists(),
        "the killed build's staging folder was left"
    );
    assert!(other.exists());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("150 train"), "{stdout}");
    assert!(out.join("manifest.json").is_file());
    let sheet = image::open(out.join("contact_sheet.png")).unwrap();
    // 5 columns and 8 rows of 32 px tiles with 4 px padding.
    assert_eq!(sheet.width(), 5 * 32 + 6 * 4);
    assert_eq!(sheet.height(), 8 * 32 + 9 * 4);
}

#[test]
fn bad_sizes_and_scales_fail_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    for (args, needle) in [
        (vec!["--size", "100"], "100"),
        (vec!["--size", "16"], "16"),
        (vec!["--scale", "0"], "--scale"),
        (vec!["--scale", "0.0001"], "--scale"),
        (vec!["--size", "8192"], "--size"),
        (vec!["--size", "8192"], "4096"),
        (vec!["--scale", "1000"], "--scale"),
        (vec!["--scale", "1000"], "cap of 100"),
    ] {
        let o = build(&out, &args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = stderr(&o);
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!out.exists(), "{args:?} left {out:?} behind");
    }
}

#[test]
fn non_empty_output_needs_force_and_unwritable_paths_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = build(&out, &["--scale", "0.0025", "--size", "32"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert!(
        out.join("notes.txt").exists(),
        "the user's file must survive"
    );

    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let o = build(&file.join("ds"), &["--scale", "0.0025", "--size", "32"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("plain-file"), "{}", stderr(&o));
}

#[test]
fn contact_sheet_command_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sheet.png");
    let o = run(&[
        "phantom",
        "contact-sheet",
        "--out",
        path.to_str().unwrap(),
        "--rows",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--rows"), "{}", stderr(&o));
    let o = run(&[
        "phantom",
        "contact-sheet",
        "--out",
        "/nonexistent-folder/sheet.png",
        "--size",
        "32",
        "--rows",
        "1",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent-folder/sheet.png"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn numeric_options_are_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let data = dir.path().join("no-data");
    let (out_s, data_s) = (out.to_str().unwrap(), data.to_str().unwrap());
    for (cmd, option, value, reason) in [
        (vec!["stylegan2", "train"], "--r1", "NaN", "finite"),
        (vec!["stylegan2", "train"], "--lr", "inf", "finite"),
        (vec!["stylegan2", "train"], "--lr", "0", "greater than 0"),
        (vec!["stylegan2", "train"], "--steps", "-1", "negative"),
        (vec!["stylegan2", "train"], "--batch", "0", "at least 1"),
        (
            vec!["stylegan2", "train"],
            "--checkpoint-every",
            "0",
            "at least 1",
        ),
        (
            vec!["stylegan2", "train"],
            "--sample-every",
            "0",
            "at least 1",
        ),
        (
            vec!["stylegan2", "train"],
            "--max-minutes",
            "-3",
            "greater than 0",
        ),
        (vec!["encoder", "train"], "--log-every", "0", "at least 1"),
        (vec!["encoder", "train"], "--moco", "-0.5", "0 or greater"),
        (vec!["encoder", "train"], "--augment-keep", "1.5", "[0, 1]"),
        (vec!["refiner", "train"], "--structure", "NaN", "finite"),
        (vec!["solov2", "train"], "--lr", "-1e-3", "greater than 0"),
    ] {
        let mut args = cmd.clone();
        args.extend(["--data", data_s, "--out", out_s, option, value]);
        let o = run(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = stderr(&o);
        assert!(e.contains(option) && e.contains(reason), "{args:?}: {e}");
        assert!(!out.exists(), "{args:?} created {out:?}");
    }
    // Caps on sizes that would otherwise run for hours.
    let sheet = dir.path().join("sheet.png");
    let o = run(&[
        "phantom",
        "contact-sheet",
        "--out",
        sheet.to_str().unwrap(),
        "--size",
        "32",
        "--rows",
        "100000",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("256 rows"), "{}", stderr(&o));
    let o = run(&["bench", "pipeline", "--steps", "100"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at most 16"), "{}", stderr(&o));
}

#[test]
fn stylegan2_train_resumes_and_sample_writes_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ds");
    let o = build(
        &data,
        &[
            "--scale",
            "0.0025",
            "--size",
            "32",
            "--contact-sheet",
            "false",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let model = dir.path().join("tiny.json");
    std::fs::write(
        &model,
        r#"{"size":16,"style_dim":16,"n_mlp":2,"lr_mlp":0.01,
            "channels":{"explicit":{"4":16,"8":16,"16":8}},"blur_kernel":[1.0,3.0,3.0,1.0]}"#,
    )
    .unwrap();
    let run_dir = dir.path().join("run");
    let train = |steps: &str| {
        run(&[
            "stylegan2",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--steps",
            steps,
            "--batch",
            "2",
            // Samples and checkpoints only at the end of each run.
            "--sample-every",
            "1000",
            "--checkpoint-every",
            "1000",
        ])
    };
    let o = train("2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("trained to step 2 (from 0)"));
    let o = train("3");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("trained to step 3 (from 2)"));

    // A cadence of 0 is refused, naming the option.
    let o = run(&[
        "stylegan2",
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--steps",
        "4",
        "--checkpoint-every",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--checkpoint-every") && stderr(&o).contains("at least 1"),
        "{}",
        stderr(&o)
    );

    // Resuming with another batch or seed is refused, naming the setting and both values.
    for (batch, seed, needle) in [
        ("4", "0", "batch: checkpoint 2, now 4"),
        ("2", "5", "seed: checkpoint 0, now 5"),
    ] {
        let o = run(&[
            "stylegan2",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run_dir.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--steps",
            "4",
            "--batch",
            batch,
            "--seed",
            seed,
        ]);
        assert!(
            !o.status.success(),
            "batch {batch} seed {seed} was accepted"
        );
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }

    // A damaged newest checkpoint is skipped (and named), the run continues from the one
    // before; a temporary file left by a killed process is removed.
    let checkpoints = run_dir.join("checkpoints");
    let newest = checkpoints.join("ckpt-000000003.safetensors");
    let bytes = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &bytes[..bytes.len() / 3]).unwrap();
    let stale = checkpoints.join(".ckpt-000000009.safetensors.tmp-4999999");
    std::fs::write(&stale, b"partial").unwrap();
    let o = train("4");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("trained to step 4 (from 2)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        stderr(&o).contains("skipped checkpoint") && stderr(&o).contains("ckpt-000000003"),
        "{}",
        stderr(&o)
    );
    assert!(!stale.exists(), "the stale temporary file was left");
    assert!(stderr(&o).contains("tmp-4999999"), "{}", stderr(&o));

    let weights = run_dir.join("generator.safetensors");
    let out = dir.path().join("samples");
    let o = run(&[
        "stylegan2",
        "sample",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--n",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(out.join("000002.png")).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));

    // A model that does not match the run folder's checkpoint is refused.
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        std::fs::read_to_string(&model)
            .unwrap()
            .replace("\"style_dim\":16", "\"style_dim\":8"),
    )
    .unwrap();
    let o = run(&[
        "stylegan2",
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
        "--model",
        other.to_str().unwrap(),
        "--steps",
        "4",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("other settings") && stderr(&o).contains("model.style_dim"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn encoder_train_augments_resumes_and_records_the_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ds");
    let o = build(
        &data,
        &[
            "--scale",
            "0.0025",
            "--size",
            "32",
            "--contact-sheet",
            "false",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let enc = dir.path().join("enc");
    let train_e = |steps: &str, augment: &[&str]| {
        let mut a = vec![
            "encoder",
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            enc.to_str().unwrap(),
            "--steps",
            steps,
            "--batch",
            "2",
            "--adv-lambda",
            "0",
            "--sample-every",
            "1000",
            "--checkpoint-every",
            "1000",
        ];
        a.extend_from_slice(augment);
        run(&a)
    };
    // A probability outside [0, 1] is refused, naming the option.
    let o = train_e("1", &["--augment", "--augment-keep", "1.5"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--augment-keep") && stderr(&o).contains("[0, 1]"),
        "{}",
        stderr(&o)
    );
    let o = train_e("1", &["--augment", "--augment-keep", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = train_e("2", &["--augment", "--augment-keep", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("step 2 (from 1)"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Without a terminal the progress comes as lines on stderr.
    assert!(stderr(&o).contains("step 2/2 ("), "{}", stderr(&o));
    let meta = std::fs::read_to_string(enc.join("export/encoder.json")).unwrap();
    assert!(meta.contains("augmented on the fly"), "{meta}");
}
