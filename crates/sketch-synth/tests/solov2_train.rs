//! SOLOv2 training: augmentation, schedule, the optimiser's parameter set, exact resume,
//! the wall-clock budget, config checks, export and the label maps of predictions. Tiny
//! config (64 px), hand-drawn label maps.

use std::time::Duration;

use candle_core::Device;
use image::{GrayImage, Luma};
use s2m_core::anatomy::{Class, InstanceMask, LabelMap, encode_label};
use s2m_train::Schedule;
use sketch_synth::solov2::{
    AugmentConfig, BackboneNorm, InMemorySegDataset, InferenceStats, Prediction, SegSample,
    SoloV2Config, StopReason, TrainConfig, Trainer, augment, flip_sample, gt_instances,
    is_trainable, load_exported, toy_sample,
};

fn sample(shift: u32) -> SegSample {
    toy_sample(64, shift)
}

fn dataset() -> InMemorySegDataset {
    InMemorySegDataset {
        name: "hand-drawn".into(),
        samples: (0..3).map(sample).collect(),
    }
}

fn tiny_config() -> TrainConfig {
    TrainConfig {
        model: SoloV2Config::tiny_r18(),
        batch: 2,
        steps: 8,
        warmup_steps: 2,
        // Checkpoints and loss curves only at the end of a run.
        schedule: Schedule {
            log_every: 1,
            ..TrainConfig::default().schedule
        }
        .only_at_end(),
        ..TrainConfig::default()
    }
}

#[test]
fn flip_mirrors_and_swaps_tonsil_instances() {
    let s = sample(0);
    let f = flip_sample(&s);
    // The left tonsil (x 4..14, instance 0) lands at x 49..59 and is renumbered 1, the right
    // one 0: instance 0 stays the image-left tonsil.
    assert_eq!(f.labels.get(5, 20), encode_label(Class::Tonsil, 0));
    assert_eq!(f.labels.get(55, 20), encode_label(Class::Tonsil, 1));
    assert_eq!(f.labels.get(63 - 31, 10), s.labels.get(31, 10));
    assert_eq!(f.image.get_pixel(63 - 31, 10), s.image.get_pixel(31, 10));
    assert_eq!(flip_sample(&f), s);
}

#[test]
fn augmentation_is_seeded_and_keeps_labels_valid() {
    let s = sample(0);
    let cfg = AugmentConfig::default();
    let a = augment(&s, 64, &cfg, &mut s2m_core::rng::rng_from_seed(3));
    let b = augment(&s, 64, &cfg, &mut s2m_core::rng::rng_from_seed(3));
    assert_eq!(a, b);
    let c = augment(&s, 64, &cfg, &mut s2m_core::rng::rng_from_seed(4));
    assert_ne!(a, c);
    // Every label value is still a valid encoding (nearest resampling, no blends).
    LabelMap::from_gray(a.labels.as_gray().clone(), "augmented").unwrap();
    // No augmentation: exactly the resize; 32 px halves the map (nearest).
    let none = augment(
        &s,
        64,
        &AugmentConfig::none(),
        &mut s2m_core::rng::rng_from_seed(3),
    );
    assert_eq!(none, s);
    let half = augment(
        &s,
        32,
        &AugmentConfig::none(),
        &mut s2m_core::rng::rng_from_seed(3),
    );
    assert_eq!(half.image.dimensions(), (32, 32));
    let gts = gt_instances(&s.labels);
    assert_eq!(gts.len(), 5);
    assert_eq!(gts[0].label, Class::Uvula.index());
    assert_eq!(gts[0].mask.iter().filter(|&&v| v == 1).count(), 4 * 14);
}

#[test]
fn schedule_and_trainable_parameters() {
    let cfg = TrainConfig {
        lr: 1.0,
        steps: 1200,
        warmup_steps: 100,
        warmup_ratio: 0.01,
        ..TrainConfig::default()
    };
    assert!((cfg.lr_at(0) - 0.01).abs() < 1e-12);
    assert!((cfg.lr_at(50) - (1.0 - 0.5 * 0.99)).abs() < 1e-12);
    assert_eq!(cfg.lr_at(100), 1.0);
    assert_eq!(cfg.lr_at(899), 1.0);
    assert!((cfg.lr_at(900) - 0.1).abs() < 1e-12); // 27/36 of 1200
    assert!((cfg.lr_at(1100) - 0.01).abs() < 1e-12); // 33/36 of 1200
    assert!(!is_trainable("backbone.layer2.0.bn1.running_mean", 0));
    assert!(!is_trainable("backbone.bn1.running_var", 0));
    assert!(is_trainable("backbone.bn1.weight", 0));
    assert!(!is_trainable("backbone.bn1.weight", 1));
    assert!(!is_trainable("backbone.layer1.1.conv2.weight", 1));
    assert!(is_trainable("backbone.layer2.0.conv1.weight", 1));
    assert!(is_trainable("mask_head.conv_cls.weight", 4));
    assert!(!is_trainable("backbone.layer4.0.conv1.weight", 4));
}

fn values(t: &Trainer) -> Vec<(String, Vec<u32>)> {
    s2m_train::optim::varmap_named_vars(t.vars())
        .into_iter()
        .map(|(n, v)| {
            let bits = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect();
            (n, bits)
        })
        .collect()
}

#[test]
fn resume_is_exact_and_budget_stops() {
    let dev = Device::Cpu;
    let data = dataset();
    let cfg = tiny_config();
    let straight_dir = tempfile::tempdir().unwrap();
    let mut straight = Trainer::open(cfg.clone(), straight_dir.path(), None, &dev).unwrap();
    // The optimiser never sees BN statistics.
    assert!(
        straight
            .trainable_names()
            .iter()
            .all(|n| !n.ends_with("running_mean") && !n.ends_with("running_var"))
    );
    let mut losses = Vec::new();
    straight
        .train(&data, 4, None, |s| losses.push(s.loss))
        .unwrap();
    assert!(losses.iter().all(|l| l.is_finite()));

    let dir = tempfile::tempdir().unwrap();
    let mut first = Trainer::open(cfg.clone(), dir.path(), None, &dev).unwrap();
    assert_eq!(
        first.train(&data, 2, None, |_| {}).unwrap(),
        StopReason::Finished
    );
    drop(first);
    let mut resumed = Trainer::open(cfg.clone(), dir.path(), None, &dev).unwrap();
    assert_eq!(resumed.step(), 2);
    let mut resumed_losses = Vec::new();
    resumed
        .train(&data, 4, None, |s| resumed_losses.push(s.loss))
        .unwrap();
    assert_eq!(resumed_losses, losses[2..].to_vec());
    assert_eq!(values(&resumed), values(&straight));
    let log = s2m_train::logcsv::read_csv_log(dir.path().join("log.csv")).unwrap();
    assert_eq!(log.series("loss").unwrap().len(), 4);
    assert!(dir.path().join("loss.png").exists());

    // A zero budget stops before the first step (and still checkpoints).
    let zero = Trainer::open(cfg.clone(), dir.path(), None, &dev)
        .unwrap()
        .train(&data, 10, Some(Duration::ZERO), |_| {})
        .unwrap();
    assert_eq!(zero, StopReason::Budget);

    // Another model config in the same folder is refused, naming the checkpoint.
    let other = TrainConfig {
        batch: 3,
        ..cfg.clone()
    };
    let err = Trainer::open(other, dir.path(), None, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("ckpt-") && err.contains("batch: checkpoint"),
        "{err}"
    );

    // Export and load back: same outputs.
    let out = tempfile::tempdir().unwrap();
    let info = resumed.export(out.path(), "hand-drawn").unwrap();
    assert_eq!(info.steps, 4);
    assert_eq!(info.classes.len(), 4);
    let (loaded, info2) = load_exported(out.path(), &dev).unwrap();
    assert_eq!(
        (&info2.config, info2.steps, &info2.data),
        (&info.config, info.steps, &info.data)
    );
    let a = resumed.model().predict(&[sample(1).image]).unwrap();
    let b = loaded.predict(&[sample(1).image]).unwrap();
    assert_eq!(a, b);
    // Stored as f16: half the size, the same model (f32 compute) up to rounding.
    let half = tempfile::tempdir().unwrap();
    let hinfo =
        sketch_synth::solov2::convert_export(out.path(), half.path(), candle_core::DType::F16)
            .unwrap();
    assert_eq!(hinfo.weights_dtype, "f16");
    let size = |d: &std::path::Path| {
        std::fs::metadata(d.join("solov2.safetensors"))
            .unwrap()
            .len()
    };
    assert!((size(half.path()) as f64) < 0.6 * size(out.path()) as f64);
    let (hm, _) = load_exported(half.path(), &dev).unwrap();
    let x = loaded.preprocess(&[sample(1).image], &dev).unwrap();
    let (a, b) = (
        loaded.forward(&x).unwrap().mask_feats,
        hm.forward(&x).unwrap().mask_feats,
    );
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-2, "{diff}");
    // A JSON that names another config fails on the weights' keys or shapes.
    let json = out.path().join("solov2.json");
    let text = std::fs::read_to_string(&json).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["config"]["fpn_channels"] = 64.into();
    std::fs::write(&json, v.to_string()).unwrap();
    let err = load_exported(out.path(), &dev).err().unwrap().to_string();
    assert!(err.contains("neck"), "{err}");
}

#[test]
fn bad_configs_are_rejected() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let bad = TrainConfig {
        batch: 1,
        backbone_norm: BackboneNorm::BatchStats,
        ..tiny_config()
    };
    assert!(Trainer::open(bad, dir.path(), None, &dev).is_err());
    let bad = TrainConfig {
        lr: f64::NAN,
        ..tiny_config()
    };
    assert!(Trainer::open(bad, dir.path(), None, &dev).is_err());
    // Mismatched image/label sizes in the data are named.
    let mut s = sample(0);
    s.labels = LabelMap::new(32, 32);
    let data = InMemorySegDataset {
        name: "bad".into(),
        samples: vec![s.clone(), s],
    };
    let mut t = Trainer::open(tiny_config(), dir.path(), None, &dev).unwrap();
    let err = t.train_step(&data).err().unwrap().to_string();
    assert!(err.contains("training sample"), "{err}");
}

#[test]
fn prediction_label_map() {
    let mask = |x0: u32, x1: u32| {
        GrayImage::from_fn(8, 4, |x, _| {
            if (x0..x1).contains(&x) {
                Luma([255])
            } else {
                Luma([0])
            }
        })
    };
    let inst = |class, x0, x1, score| InstanceMask {
        class,
        mask: mask(x0, x1),
        score,
    };
    let p = Prediction {
        instances: vec![
            inst(Class::Tonsil, 5, 8, 0.9),
            inst(Class::Tongue, 2, 6, 0.8),
            inst(Class::Tonsil, 0, 3, 0.5),
            inst(Class::Uvula, 0, 8, 0.2),
        ],
        stats: InferenceStats::default(),
    };
    let m = p.to_label_map(8, 4, 0.35).unwrap();
    let row: Vec<u8> = (0..8).map(|x| m.get(x, 0)).collect();
    let (t0, t1) = (
        encode_label(Class::Tonsil, 0),
        encode_label(Class::Tonsil, 1),
    );
    let tg = encode_label(Class::Tongue, 0);
    // Left tonsil = instance 0 although it scores lower; the tonsil (0.9) wins over the tongue
    // (0.8) at x = 5, the tongue over the weaker tonsil at x = 2; the uvula is below 0.35.
    assert_eq!(row, vec![t0, t0, tg, tg, tg, t1, t1, t1]);
    assert!(p.to_label_map(4, 4, 0.35).is_err());
}

#[test]
fn shipped_training_config_parses_and_serialises_with_the_same_keys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights/solov2_phantom/solov2.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let training = meta["training"].clone();
    let cfg: TrainConfig = serde_json::from_value(training.clone()).unwrap();
    cfg.validate().unwrap();
    // plot_every is the schedule's sample cadence.
    assert_eq!(
        (cfg.schedule.sample_every, cfg.schedule.checkpoint_every),
        (100, 100_000)
    );
    // The same keys and values (`model` holds f32 values whose stored decimals do not parse
    // back bit for bit, so it is compared as a config).
    let again = serde_json::to_value(&cfg).unwrap();
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&again), keys(&training));
    for key in keys(&training).iter().filter(|k| *k != "model") {
        assert_eq!(again[key], training[key], "{key}");
    }
    assert_eq!(serde_json::from_value::<TrainConfig>(again).unwrap(), cfg);
    // Keys missing from a config keep SOLOv2's defaults.
    let partial: TrainConfig = serde_json::from_str(r#"{"batch": 4}"#).unwrap();
    assert_eq!(partial.schedule, TrainConfig::default().schedule);
    assert_eq!(
        (
            partial.schedule.checkpoint_every,
            partial.schedule.sample_every
        ),
        (200, 100)
    );
    let json = serde_json::to_value(TrainConfig::default()).unwrap();
    assert_eq!(json["plot_every"], serde_json::json!(100));
    assert!(json.get("sample_every").is_none(), "{json}");
}

#[test]
fn a_zero_cadence_is_refused_with_its_name() {
    for (name, schedule) in [
        (
            "plot_every",
            Schedule {
                sample_every: 0,
                ..tiny_config().schedule
            },
        ),
        (
            "checkpoint_every",
            Schedule {
                checkpoint_every: 0,
                ..tiny_config().schedule
            },
        ),
        (
            "log_every",
            Schedule {
                log_every: 0,
                ..tiny_config().schedule
            },
        ),
    ] {
        let cfg = TrainConfig {
            schedule,
            ..tiny_config()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(&format!("{name} must be >= 1")), "{e}");
    }
}
