//! Phase 2 (H with E and G frozen): overfitting a fixed batch, exact resume, export / load
//! round trip, no gradient into G, bad inputs. Tiny models (`e4e_encoder::testing`), CPU.

use std::path::{Path, PathBuf};

use candle_core::Device;
use e4e_encoder::testing::{
    max_abs_diff, tiny_generator, tiny_generator_config, tiny_generator_from_vars,
};
use e4e_encoder::{PairDataset, TensorPairs};
use hyperstyle_refiner::testing::{test_loss, tiny_pairs, tiny_train_config};
use hyperstyle_refiner::train::{RefinerStepStats, run_training};
use hyperstyle_refiner::{
    HyperConfig, HyperNetwork, RefinerBundle, RefinerError, RefinerTrainConfig, RefinerTrainer,
};
use losses::SimilarityLoss;
use s2m_train::Schedule;

fn loss() -> SimilarityLoss {
    test_loss().unwrap()
}

fn config() -> RefinerTrainConfig {
    tiny_train_config()
}

/// A fresh (untrained) encoder exported for the tiny generator `g_seed`.
fn encoder_export(dir: &Path, g_seed: u64) -> PathBuf {
    hyperstyle_refiner::testing::encoder_export(dir, g_seed).unwrap()
}

fn try_open(
    cfg: RefinerTrainConfig,
    encoder: &Path,
    out: &Path,
) -> hyperstyle_refiner::Result<RefinerTrainer> {
    RefinerTrainer::open(
        cfg,
        tiny_generator(1).unwrap(),
        encoder,
        loss(),
        out,
        &Device::Cpu,
    )
}

fn open(cfg: RefinerTrainConfig, encoder: &Path, out: &Path) -> RefinerTrainer {
    try_open(cfg, encoder, out).unwrap()
}

/// The error of opening a run that must be refused.
fn open_err(cfg: RefinerTrainConfig, encoder: &Path, out: &Path) -> String {
    match try_open(cfg, encoder, out) {
        Ok(_) => panic!("opening {} must fail", out.display()),
        Err(e) => e.to_string(),
    }
}

fn data(n: usize) -> TensorPairs {
    tiny_pairs(n).unwrap()
}

fn without_time(s: &RefinerStepStats) -> RefinerStepStats {
    RefinerStepStats {
        seconds: 0.0,
        ..s.clone()
    }
}

#[test]
fn loss_decreases_on_a_fixed_batch_and_every_iteration_has_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("run"));
    let stats: Vec<_> = (0..12).map(|_| t.train_step(&data).unwrap()).collect();
    assert!(stats.iter().all(|s| s.sim_t.len() == 3));
    let last_iter = |s: &RefinerStepStats| s.sim_t[2];
    let first = stats[..3].iter().map(last_iter).sum::<f64>() / 3.0;
    let last = stats[9..].iter().map(last_iter).sum::<f64>() / 3.0;
    assert!(last < 0.8 * first, "L_sim(ŷ_3) {first} -> {last}");
    // E is frozen: its loss on the fixed batch does not move (up to the batch order).
    assert!((stats[0].sim_e - stats[11].sim_e).abs() < 1e-5 * stats[0].sim_e);
    // H helps the frozen E on the batch it was fitted to.
    assert!(
        last < stats[11].sim_e,
        "{last} vs E alone {}",
        stats[11].sim_e
    );
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(4);
    let mut straight = open(config(), &enc, &dir.path().join("a"));
    let a: Vec<_> = (0..3)
        .map(|_| straight.train_step(&data).unwrap())
        .collect();

    let mut first = open(config(), &enc, &dir.path().join("b"));
    let mut b = vec![first.train_step(&data).unwrap()];
    first.save_checkpoint().unwrap();
    drop(first);
    let mut resumed = open(config(), &enc, &dir.path().join("b"));
    assert_eq!(resumed.step(), 1);
    b.extend((0..2).map(|_| resumed.train_step(&data).unwrap()));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(without_time(x), without_time(y));
    }
}

#[test]
fn run_exports_and_the_bundle_loads() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("run"));
    run_training(&mut t, &data, 1, None, |_| {}).unwrap();
    for f in ["loss.png", "samples/final.png", "log.csv", "checkpoints"] {
        assert!(dir.path().join("run").join(f).exists(), "{f}");
    }
    let export = dir.path().join("run/export");
    let meta = t.export(&export).unwrap();
    assert_eq!(meta.steps, 1);
    assert_eq!(meta.iterations, 3);
    assert_eq!(meta.generator.sha256, t.generator().sha256());
    assert_eq!(meta.encoder.sha256, t.encoder().meta.encoder_sha256);

    let bundle = RefinerBundle::load(&export, &tiny_generator_config(), &Device::Cpu).unwrap();
    assert_eq!(bundle.meta, meta);
    let sketch = data.sketches.clone();
    let w = t.encoder().embed(&sketch).unwrap();
    let w_plus = e4e_encoder::Encoder::to_w_plus(&w, tiny_generator_config().n_latent()).unwrap();
    let out = hyperstyle_refiner::refine(
        &bundle.hypernet,
        t.generator().generator(),
        &sketch,
        &w_plus,
        3,
        stylegan2::NoiseMode::Const,
    )
    .unwrap();
    let want = t.refine_images(&sketch).unwrap();
    assert_eq!(out.images.len(), 4);
    // The loaded bundle holds plain tensors and takes the CPU inference kernels (one-pass
    // BatchNorm and resize, block-GEMM convolutions), which round differently from the trainer's
    // tracked ops: equal within f32 rounding (images in [-1, 1]).
    for (a, b) in out.images.iter().zip(&want) {
        let d = max_abs_diff(a, b);
        assert!(d < 1e-4, "bundle vs trainer refinement: {d}");
    }

    // Another generator config is refused; missing files are named.
    let other = stylegan2::StyleGan2Config {
        style_dim: 16,
        ..tiny_generator_config()
    };
    let e = RefinerBundle::load(&export, &other, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refiner.json") && e.contains("generator config"),
        "{e}"
    );
    for f in ["refiner.json", "refiner.safetensors"] {
        let d = dir.path().join(format!("no_{f}"));
        std::fs::create_dir_all(&d).unwrap();
        for g in ["refiner.json", "refiner.safetensors"] {
            if g != f {
                std::fs::copy(export.join(g), d.join(g)).unwrap();
            }
        }
        let e = RefinerBundle::load(&d, &tiny_generator_config(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains(f), "missing {f}: {e}");
    }
}

#[test]
fn no_gradient_reaches_the_generator_or_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let cfg = tiny_generator_config();
    let (g, vars) = tiny_generator_from_vars(1).unwrap();
    // Same weights as tiny_generator(1), so the encoder's recorded hash matches.
    let t = RefinerTrainer::open(
        config(),
        g,
        &enc,
        loss(),
        dir.path().join("r"),
        &Device::Cpu,
    )
    .unwrap();
    let pairs = data(2).load(&[0, 1], &Device::Cpu).unwrap();
    let (grads, losses) = t.accumulated_gradients(&pairs).unwrap();
    assert_eq!(losses.sim_t.len(), 3);
    for (name, v) in &vars {
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "gradient reached G's {name}"
        );
    }
    let h = s2m_train::run::trainable_vars(t.hypernet_vars());
    for (name, v) in &h {
        assert!(
            grads.get(v.as_tensor()).is_some(),
            "no gradient for H's {name}"
        );
    }
    // E's weights are plain tensors loaded from the export: none is a Var.
    let n_params = HyperNetwork::parameter_shapes(&HyperConfig::tiny_test(), &cfg)
        .unwrap()
        .len();
    assert!(h.len() < n_params, "BatchNorm statistics are not trained");
}

#[test]
fn mismatched_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An encoder trained with another generator.
    let enc_other = encoder_export(&dir.path().join("other"), 2);
    let err = open_err(config(), &enc_other, &dir.path().join("r1"));
    assert!(err.contains("generator sha256"), "{err}");
    // A missing encoder bundle is named.
    let err = open_err(
        config(),
        &dir.path().join("no_encoder"),
        &dir.path().join("r2"),
    );
    assert!(err.contains("no_encoder"), "{err}");
    // Sketches with 3 channels.
    let enc = encoder_export(dir.path(), 1);
    let mut t = open(config(), &enc, &dir.path().join("r3"));
    let good = data(2);
    let bad = TensorPairs {
        sketches: candle_core::Tensor::cat(&[&good.sketches, &good.sketches, &good.sketches], 1)
            .unwrap(),
        ..good
    };
    let e = t.train_step(&bad).unwrap_err();
    assert!(
        matches!(&e, RefinerError::Training(b) if matches!(**b, e4e_encoder::TrainError::Data(_))),
        "{e}"
    );
}

#[test]
fn init_from_an_export_copies_its_weights_and_survives_resume() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("base"));
    t.train_step(&data).unwrap();
    let export = dir.path().join("base/export");
    let meta = t.export(&export).unwrap();

    // A fresh run with another seed, initialised from the export: the same H.
    let cfg = RefinerTrainConfig {
        schedule: Schedule {
            seed: 99,
            ..config().schedule
        },
        init_from: Some(export.clone()),
        ..config()
    };
    let mut ft = open(cfg.clone(), &enc, &dir.path().join("ft"));
    assert_eq!(ft.step(), 0);
    let init = ft.init().unwrap().clone();
    assert_eq!(
        (init.sha256.as_str(), init.steps),
        (meta.refiner_sha256.as_str(), 1)
    );
    let sketch = data.sketches.clone();
    let (a, b) = (
        t.refine_images(&sketch).unwrap(),
        ft.refine_images(&sketch).unwrap(),
    );
    assert_eq!(max_abs_diff(&a[3], &b[3]), 0.0);
    // Without init_from, seed 99 gives another H.
    let other = open(
        RefinerTrainConfig {
            schedule: Schedule {
                seed: 99,
                ..config().schedule
            },
            ..config()
        },
        &enc,
        &dir.path().join("fresh"),
    );
    assert!(max_abs_diff(&a[3], &other.refine_images(&sketch).unwrap()[3]) > 0.0);

    // The warm start is recorded in checkpoints and exports, across a resume.
    ft.train_step(&data).unwrap();
    ft.save_checkpoint().unwrap();
    drop(ft);
    let resumed = open(
        RefinerTrainConfig {
            init_from: None,
            ..cfg
        },
        &enc,
        &dir.path().join("ft"),
    );
    assert_eq!(resumed.step(), 1);
    let m = resumed.export(&dir.path().join("ft/export")).unwrap();
    assert_eq!(m.init, Some(init));

    // Another H config is refused, naming the file.
    let bad = RefinerTrainConfig {
        init_from: Some(export.clone()),
        hyper: HyperConfig {
            refine_inner: HyperConfig::tiny_test().refine_inner + 1,
            ..HyperConfig::tiny_test()
        },
        ..config()
    };
    let e = open_err(bad, &enc, &dir.path().join("bad"));
    assert!(e.contains("refiner.json") && e.contains("init_from"), "{e}");

    // A weights file without one of H's tensors (metadata and sha256 consistent) is refused,
    // naming the key and the file.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let mut tensors =
        candle_core::safetensors::load(export.join("refiner.safetensors"), &Device::Cpu).unwrap();
    let mut keys: Vec<String> = tensors.keys().cloned().collect();
    keys.sort();
    let dropped = keys[0].clone();
    tensors.remove(&dropped);
    let weights = broken.join("refiner.safetensors");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("refiner.json")).unwrap())
            .unwrap();
    json["refiner_sha256"] = s2m_train::bundle::sha256_file(&weights).unwrap().into();
    std::fs::write(broken.join("refiner.json"), json.to_string()).unwrap();
    let cfg = RefinerTrainConfig {
        init_from: Some(broken),
        ..config()
    };
    let e = open_err(cfg, &enc, &dir.path().join("broken_run"));
    assert!(
        e.contains(&dropped) && e.contains("refiner.safetensors"),
        "{e}"
    );
}
