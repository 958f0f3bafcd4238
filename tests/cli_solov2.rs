//! `sketch2medi solov2 train | eval | sketches` and `evaluate --segmenter` on a tiny phantom
//! (64 px, tiny_r18, 2 steps): the commands run end to end, write what they promise, count
//! empty predictions, and refuse bad input with a clear message.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sketch2medi"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_eval_sketches_and_evaluate_with_segmenter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ds");
    ok(&run(&[
        "phantom",
        "build",
        "--out",
        s(&data),
        "--scale",
        "0.005",
        "--size",
        "64",
        "--contact-sheet",
        "false",
    ]));
    let runs = dir.path().join("run");
    let out = ok(&run(&[
        "solov2",
        "train",
        "--data",
        s(&data),
        "--out",
        s(&runs),
        "--preset",
        "tiny_r18",
        "--steps",
        "2",
        "--batch",
        "2",
        "--warmup",
        "1",
    ]));
    assert!(out.contains("exported 2 steps"), "{out}");
    assert!(out.contains("mean"), "{out}");
    let export = runs.join("export");
    assert!(export.join("solov2.safetensors").is_file());
    assert!(export.join("solov2.json").is_file());
    assert!(runs.join("val_dice.json").is_file());

    // Resuming with another preset is refused, naming the checkpoint.
    let o = run(&[
        "solov2",
        "train",
        "--data",
        s(&data),
        "--out",
        s(&runs),
        "--preset",
        "phantom_r18",
        "--steps",
        "3",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));

    let json = dir.path().join("dice.json");
    let out = ok(&run(&[
        "solov2",
        "eval",
        "--weights",
        s(&export),
        "--data",
        s(&data),
        "--out",
        s(&json),
    ]));
    assert!(out.contains("empty predictions"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["summary"]["images"], 2);

    let sk = dir.path().join("sketches");
    let out = ok(&run(&[
        "solov2",
        "sketches",
        "--weights",
        s(&export),
        "--data",
        s(&data),
        "--out",
        s(&sk),
        "--limit",
        "3",
        "--batch",
        "2",
    ]));
    assert!(out.contains("3 sketches"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sk.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["images"], 3);
    // Two steps from scratch find little: blank sketches are counted and listed.
    assert_eq!(
        r["empty"].as_u64().unwrap() as usize,
        r["empty_ids"].as_array().unwrap().len()
    );
    let img = image::open(sk.join("000000.png")).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));

    // DICE of evaluate through the segmenter (reference = generated: same images).
    let images = dir.path().join("few");
    std::fs::create_dir_all(&images).unwrap();
    for id in ["000000", "000001", "000002"] {
        std::fs::copy(
            data.join("images").join(format!("{id}.png")),
            images.join(format!("{id}.png")),
        )
        .unwrap();
    }
    let report = dir.path().join("report");
    ok(&run(&[
        "evaluate",
        "--reference",
        s(&images),
        "--generated",
        &format!("same={}", s(&images)),
        "--metrics",
        "dice",
        "--segmenter",
        s(&export),
        "--out",
        s(&report),
    ]));
    assert!(report.join("report.json").is_file());

    // f16 copy of the export: loads and evaluates like the original.
    let half = dir.path().join("half");
    let out = ok(&run(&[
        "solov2",
        "convert",
        "--weights",
        s(&export),
        "--out",
        s(&half),
        "--dtype",
        "f16",
    ]));
    assert!(out.contains("f16"), "{out}");
    ok(&run(&[
        "solov2",
        "eval",
        "--weights",
        s(&half),
        "--data",
        s(&data),
    ]));

    // Bad input: unknown split, a folder that is not an export.
    let o = run(&[
        "solov2",
        "eval",
        "--weights",
        s(&export),
        "--data",
        s(&data),
        "--split",
        "nope",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown split"));
    let o = run(&[
        "solov2",
        "sketches",
        "--weights",
        s(&data),
        "--data",
        s(&data),
        "--out",
        s(&sk),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("solov2.json"));
}
