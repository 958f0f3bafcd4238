//! Phase 1 (E + D_w, G frozen): overfitting a fixed batch, exact resume, export / load round
//! trip, no gradient into G, bad inputs. Tiny models (`e4e_encoder::testing`), CPU.

use std::path::Path;

use candle_core::{Device, Tensor};
use e4e_encoder::testing::{
    max_abs_diff, reachable_pairs, tiny_encoder_config, tiny_generator, tiny_generator_config,
    tiny_generator_from_vars, tiny_generator_tensors,
};
use e4e_encoder::train::{EncoderStepStats, run_training};
use e4e_encoder::{
    EncoderBundle, EncoderTrainConfig, EncoderTrainer, FrozenGenerator, PairDataset, TensorPairs,
    TrainError,
};
use losses::SimilarityLoss;
use s2m_train::Schedule;

fn loss() -> SimilarityLoss {
    SimilarityLoss::cpu_default(&losses::weights::shipped_weights_dir()).unwrap()
}

fn config() -> EncoderTrainConfig {
    EncoderTrainConfig {
        encoder: tiny_encoder_config(),
        batch: 2,
        lr: 1e-3,
        d_reg_every: 2,
        latent_avg_samples: 256,
        // Sample strips and checkpoints only at the end of a run.
        schedule: Schedule {
            seed: 5,
            log_every: 1,
            ..Schedule::default()
        }
        .only_at_end(),
        val_samples: 2,
        ..EncoderTrainConfig::default()
    }
}

fn open(cfg: EncoderTrainConfig, dir: &Path) -> EncoderTrainer {
    EncoderTrainer::open(cfg, tiny_generator(1).unwrap(), loss(), dir, &Device::Cpu).unwrap()
}

fn data(n: usize) -> TensorPairs {
    reachable_pairs(&tiny_generator(1).unwrap(), n, 32, 11).unwrap()
}

fn without_time(s: &EncoderStepStats) -> EncoderStepStats {
    EncoderStepStats { seconds: 0.0, ..*s }
}

fn same(a: &EncoderStepStats, b: &EncoderStepStats) -> bool {
    let (a, b) = (without_time(a), without_time(b));
    // NaN == NaN for terms that did not run.
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn loss_decreases_on_a_fixed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(2);
    let mut t = open(config(), dir.path());
    let sims: Vec<f64> = (0..16).map(|_| t.train_step(&data).unwrap().sim).collect();
    let first = sims[..3].iter().sum::<f64>() / 3.0;
    let last = sims[13..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.8 * first, "L_sim {first} -> {last}: {sims:?}");
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(4);
    let mut straight = open(config(), &dir.path().join("a"));
    let a: Vec<_> = (0..4)
        .map(|_| straight.train_step(&data).unwrap())
        .collect();

    let mut first = open(config(), &dir.path().join("b"));
    let mut b: Vec<_> = (0..2).map(|_| first.train_step(&data).unwrap()).collect();
    first.save_checkpoint().unwrap();
    drop(first);
    let mut resumed = open(config(), &dir.path().join("b"));
    assert_eq!(resumed.step(), 2);
    b.extend((0..2).map(|_| resumed.train_step(&data).unwrap()));
    for (x, y) in a.iter().zip(&b) {
        assert!(same(x, y), "straight {x:?}\nresumed  {y:?}");
    }
    // R1 ran (d_reg_every = 2) and D_w trained.
    assert!(a[0].r1.is_finite() && a[2].r1.is_finite() && a[1].r1.is_nan());
    assert!(a.iter().all(|s| s.d_loss.is_finite() && s.adv.is_finite()));
    // The log was continued without duplicated steps.
    let log = s2m_train::logcsv::read_csv_log(dir.path().join("b/log.csv")).unwrap();
    let steps: Vec<f64> = log.series("total").unwrap().iter().map(|p| p.0).collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn resume_with_another_generator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(config(), dir.path());
    t.save_checkpoint().unwrap();
    drop(t);
    let other = tiny_generator(2).unwrap();
    let err = EncoderTrainer::open(config(), other, loss(), dir.path(), &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        matches!(err, TrainError::Resume { .. }) && err.to_string().contains("sha256"),
        "{err}"
    );
}

#[test]
fn run_exports_and_the_bundle_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(2);
    let mut t = open(config(), &dir.path().join("run"));
    let reason = run_training(&mut t, &data, 2, None, |_| {}).unwrap();
    assert_eq!(reason, s2m_train::run::StopReason::Finished);
    for f in ["loss.png", "samples/final.png", "log.csv"] {
        assert!(dir.path().join("run").join(f).is_file(), "{f}");
    }
    let export = dir.path().join("run/export");
    let meta = t.export(&export).unwrap();
    assert_eq!(meta.steps, 2);
    assert_eq!(meta.generator.sha256, t.generator().sha256());
    assert!(!meta.losses.moco_active, "no MoCo weights are shipped");

    let bundle = EncoderBundle::load(&export, &Device::Cpu).unwrap();
    assert_eq!(bundle.meta, meta);
    assert_eq!(bundle.generator_config(), &tiny_generator_config());
    let sketch = data.sketches.clone();
    let w = bundle.embed(&sketch).unwrap();
    assert_eq!(w.dims(), &[2, 32]);
    let diff = max_abs_diff(&w, &t.embed(&sketch).unwrap());
    assert_eq!(diff, 0.0);

    // A 3-channel or wrongly sized sketch is refused with the expected shape.
    let rgb = Tensor::zeros((1, 3, 32, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let e = bundle.embed(&rgb).unwrap_err().to_string();
    assert!(e.contains("[B, 1, 32, 32]"), "{e}");
    let big = Tensor::zeros((1, 1, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(bundle.embed(&big).is_err());
}

#[test]
fn bundle_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = open(config(), &dir.path().join("run"));
    let export = dir.path().join("export");
    t.export(&export).unwrap();
    let err_of = |d: &Path| {
        EncoderBundle::load(d, &Device::Cpu)
            .unwrap_err()
            .to_string()
    };

    let copy = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "encoder.json",
            "encoder.safetensors",
            "latent_avg.safetensors",
        ] {
            std::fs::copy(export.join(f), d.join(f)).unwrap();
        }
        d
    };
    for f in [
        "encoder.json",
        "encoder.safetensors",
        "latent_avg.safetensors",
    ] {
        let d = copy(&format!("no_{f}"));
        std::fs::remove_file(d.join(f)).unwrap();
        let e = err_of(&d);
        assert!(e.contains(f), "missing {f}: {e}");
    }
    let d = copy("bad_tag");
    let json = std::fs::read_to_string(d.join("encoder.json")).unwrap();
    std::fs::write(
        d.join("encoder.json"),
        json.replace("sketch2medi-encoder/1", "something-else"),
    )
    .unwrap();
    let e = err_of(&d);
    assert!(e.contains("encoder.json") && e.contains("format"), "{e}");
    let d = copy("changed_weights");
    let mut bytes = std::fs::read(d.join("encoder.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(d.join("encoder.safetensors"), bytes).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("encoder.safetensors") && e.contains("sha256"),
        "{e}"
    );
    // latent_avg: its sha256 is recorded and checked; an export without it still loads.
    let d = copy("changed_latent_avg");
    let mut bytes = std::fs::read(d.join("latent_avg.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(d.join("latent_avg.safetensors"), bytes).unwrap();
    let e = err_of(&d);
    assert!(
        e.contains("latent_avg.safetensors") && e.contains("sha256"),
        "{e}"
    );
    let d = copy("old_export");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("encoder.json")).unwrap()).unwrap();
    assert!(
        meta["latent_avg_sha256"].is_string(),
        "the export records it"
    );
    meta.as_object_mut().unwrap().remove("latent_avg_sha256");
    std::fs::write(d.join("encoder.json"), meta.to_string()).unwrap();
    let old = EncoderBundle::load(&d, &Device::Cpu).unwrap();
    assert_eq!(old.meta.latent_avg_sha256, None);
    assert_eq!(
        old.latent_avg_sha256,
        s2m_train::bundle::sha256_file(&export.join("latent_avg.safetensors")).unwrap()
    );
    let e = err_of(&dir.path().join("nowhere"));
    assert!(e.contains("nowhere"), "{e}");
}

#[test]
fn no_gradient_reaches_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    // A generator whose weights are Vars (as a trainable G would have): FrozenGenerator must
    // cut them off.
    let (g, vars) = tiny_generator_from_vars(1).unwrap();
    let t = EncoderTrainer::open(config(), g, loss(), dir.path(), &Device::Cpu).unwrap();
    let pairs = data(2).load(&[0, 1], &Device::Cpu).unwrap();
    let obj = t.encoder_objective(&pairs, true, None).unwrap();
    let grads = obj.total.backward().unwrap();
    for (name, v) in &vars {
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "gradient reached G's {name}"
        );
    }
    let enc = s2m_train::run::trainable_vars(t.encoder_vars());
    assert!(!enc.is_empty());
    for (name, v) in &enc {
        assert!(
            grads.get(v.as_tensor()).is_some(),
            "no gradient for E's {name}"
        );
    }
    assert!(t.trainable_names().iter().all(|n| !n.contains("running_")));
}

#[test]
fn bad_pairs_are_refused_and_nan_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let good = data(2);
    let mut t = open(config(), dir.path());
    let rgb_sketches = TensorPairs {
        sketches: Tensor::cat(&[&good.sketches, &good.sketches, &good.sketches], 1).unwrap(),
        ..good.clone()
    };
    let e = t.train_step(&rgb_sketches).unwrap_err();
    assert!(
        matches!(e, TrainError::Data(_)) && e.to_string().contains("[B, 1, 32, 32]"),
        "{e}"
    );
    let small = TensorPairs {
        sketches: good
            .sketches
            .narrow(2, 0, 16)
            .unwrap()
            .narrow(3, 0, 16)
            .unwrap(),
        ..good.clone()
    };
    let e = t.train_step(&small).unwrap_err();
    assert!(matches!(e, TrainError::Data(_)), "{e}");
    assert_eq!(t.step(), 0);

    // A generator that outputs NaN: the run stops with a clear error instead of training on.
    let cfg = tiny_generator_config();
    let mut init = tiny_generator_tensors(1).unwrap();
    let bias = init["to_rgb1.bias"].clone();
    init.insert("to_rgb1.bias".into(), (bias * f64::NAN).unwrap());
    let g = FrozenGenerator::from_tensors(&cfg, init, "nan", &Device::Cpu).unwrap();
    let mut t =
        EncoderTrainer::open(config(), g, loss(), dir.path().join("nan"), &Device::Cpu).unwrap();
    let e = t.train_step(&good).unwrap_err();
    assert!(
        matches!(e, TrainError::Diverged { .. })
            && e.to_string().contains("encoder loss is NaN (not finite)"),
        "{e}"
    );
    assert_eq!(t.step(), 0);
}

#[test]
fn a_zero_cadence_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.schedule.checkpoint_every = 0;
    let e = EncoderTrainer::open(
        cfg,
        tiny_generator(1).unwrap(),
        loss(),
        dir.path(),
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, TrainError::Config(_))
            && e.to_string().contains("checkpoint_every must be >= 1"),
        "{e}"
    );
}

#[test]
fn fine_tuning_starts_from_the_export_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(2);
    let mut t = open(config(), &dir.path().join("run"));
    run_training(&mut t, &data, 2, None, |_| {}).unwrap();
    let export = dir.path().join("run/export");
    let meta = t.export(&export).unwrap();

    // A fresh run with init_from embeds exactly as the export does, with its w_avg, although
    // its own seed would draw other weights and another w_avg.
    let cfg = EncoderTrainConfig {
        init_from: Some(export.clone()),
        schedule: Schedule {
            seed: 99,
            ..config().schedule
        },
        ..config()
    };
    let mut ft = open(cfg.clone(), &dir.path().join("ft"));
    assert_eq!(ft.step(), 0);
    let bundle = EncoderBundle::load(&export, &Device::Cpu).unwrap();
    assert_eq!(max_abs_diff(ft.latent_avg(), &bundle.latent_avg), 0.0);
    let sketch = data.sketches.clone();
    assert_eq!(
        max_abs_diff(&ft.embed(&sketch).unwrap(), &bundle.embed(&sketch).unwrap()),
        0.0
    );
    run_training(&mut ft, &data, 1, None, |_| {}).unwrap();
    let ft_meta = ft.export(&dir.path().join("ft/export")).unwrap();
    let init = ft_meta.init_from.expect("the export names its init");
    assert_eq!(init.sha256, meta.encoder_sha256);
    assert_eq!(init.steps, 2);
    assert_eq!(ft_meta.latent_avg.seed, meta.latent_avg.seed);

    // A resumed fine-tuning run keeps its warm start from its checkpoint: the export it started
    // from may have moved, and `init_from` may be left out.
    drop(ft);
    let moved = dir.path().join("moved");
    std::fs::rename(&export, &moved).unwrap();
    let resumed = open(
        EncoderTrainConfig {
            init_from: None,
            ..cfg.clone()
        },
        &dir.path().join("ft"),
    );
    assert_eq!(resumed.step(), 1);
    let m = resumed.export(&dir.path().join("ft/export2")).unwrap();
    assert_eq!(m.init_from, Some(init.clone()));
    assert_eq!(m.latent_avg.seed, meta.latent_avg.seed);
    drop(resumed);
    std::fs::rename(&moved, &export).unwrap();

    // Another E config is refused, naming the field.
    let other = EncoderTrainConfig {
        encoder: e4e_encoder::EncoderConfig {
            backbone: e4e_encoder::EncoderBackbone::ResNet {
                depth: backbones::ResNetDepth::R18,
                widths: [8, 8, 16, 32],
            },
            ..tiny_encoder_config()
        },
        ..cfg
    };
    let e = EncoderTrainer::open(
        other,
        tiny_generator(1).unwrap(),
        loss(),
        dir.path().join("ft2"),
        &Device::Cpu,
    )
    .err()
    .expect("a different config is refused")
    .to_string();
    assert!(e.contains("init_from"), "{e}");
}
