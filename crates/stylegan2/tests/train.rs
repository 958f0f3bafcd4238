//! The training loop: exact resume, outputs, export round trip, divergence stop.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use s2m_core::rng::{randn_vec, rng_from_seed};
use s2m_train::Schedule;
use stylegan2::train::{TensorDataset, TrainConfig, TrainError, Trainer};
use stylegan2::{ChannelTable, GeneratorInput, NoiseMode, StyleGan2Config};

fn tiny_model() -> StyleGan2Config {
    StyleGan2Config {
        size: 16,
        style_dim: 16,
        n_mlp: 2,
        lr_mlp: 0.01,
        channels: ChannelTable::Explicit(BTreeMap::from([(4, 16), (8, 16), (16, 8)])),
        blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
    }
}

fn tiny_config() -> TrainConfig {
    TrainConfig {
        model: tiny_model(),
        batch: 2,
        d_reg_every: 2,
        g_reg_every: 2,
        // Sample grids and checkpoints only at the end of a run.
        schedule: Schedule {
            seed: 3,
            log_every: 1,
            ..Schedule::default()
        }
        .only_at_end(),
        grid_samples: 4,
        ..TrainConfig::default()
    }
}

fn data() -> TensorDataset {
    let v: Vec<f32> = randn_vec(&mut rng_from_seed(9), 6 * 3 * 16 * 16)
        .into_iter()
        .map(|x| (x * 0.5).tanh())
        .collect();
    TensorDataset {
        images: Tensor::from_vec(v, (6, 3, 16, 16), &Device::Cpu).unwrap(),
    }
}

fn ema_image(t: &Trainer) -> Vec<f32> {
    let z = Tensor::from_vec(
        randn_vec(&mut rng_from_seed(1), 2 * 16),
        (2, 16),
        &Device::Cpu,
    )
    .unwrap();
    t.g_ema()
        .forward(&GeneratorInput::z(vec![z]).with_noise(NoiseMode::Const))
        .unwrap()
        .image
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let mut straight = Trainer::open(tiny_config(), dir.path().join("a"), &Device::Cpu).unwrap();
    let mut losses_a = Vec::new();
    for _ in 0..5 {
        losses_a.push(straight.train_step(&data).unwrap());
    }

    let mut first = Trainer::open(tiny_config(), dir.path().join("b"), &Device::Cpu).unwrap();
    let mut losses_b = Vec::new();
    for _ in 0..3 {
        losses_b.push(first.train_step(&data).unwrap());
    }
    first.save_checkpoint().unwrap();
    drop(first);
    let mut resumed = Trainer::open(tiny_config(), dir.path().join("b"), &Device::Cpu).unwrap();
    assert_eq!(resumed.step(), 3);
    for _ in 0..2 {
        losses_b.push(resumed.train_step(&data).unwrap());
    }
    for (a, b) in losses_a.iter().zip(&losses_b) {
        assert_eq!(a.d_loss.to_bits(), b.d_loss.to_bits(), "step {}", a.step);
        assert_eq!(a.g_loss.to_bits(), b.g_loss.to_bits(), "step {}", a.step);
        assert_eq!(a.r1.to_bits(), b.r1.to_bits(), "step {}", a.step);
        assert_eq!(a.path.to_bits(), b.path.to_bits(), "step {}", a.step);
    }
    assert_eq!(ema_image(&straight), ema_image(&resumed));
    // The regularisers ran on their lazy schedule.
    assert!(losses_a[0].r1.is_finite() && losses_a[1].r1.is_nan() && losses_a[2].r1.is_finite());
    assert!(losses_a[0].path.is_finite() && losses_a[1].path.is_nan());
    // The log has one row per step, without duplicates after the resume.
    let log = s2m_train::logcsv::read_csv_log(dir.path().join("b").join("log.csv")).unwrap();
    let steps: Vec<f64> = log
        .series("d_loss")
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn train_writes_outputs_and_exports_a_loadable_generator() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        schedule: Schedule {
            sample_every: 2,
            checkpoint_every: 2,
            ..tiny_config().schedule
        },
        ..tiny_config()
    };
    let mut t = Trainer::open(cfg, dir.path(), &Device::Cpu).unwrap();
    let mut seen = 0;
    t.train(&data, 4, |s| {
        assert!(s.d_loss.is_finite() && s.g_loss.is_finite());
        seen += 1;
    })
    .unwrap();
    assert_eq!(seen, 4);
    assert!(dir.path().join("samples/step0000002.png").is_file());
    assert!(dir.path().join("samples/final.png").is_file());
    assert!(dir.path().join("loss.png").is_file());
    assert!(
        s2m_train::checkpoint::latest_checkpoint(dir.path().join("checkpoints"))
            .unwrap()
            .is_some()
    );

    let path = dir.path().join("g.safetensors");
    t.export_generator(&path).unwrap();
    let ck = stylegan2::Checkpoint::open(&path).unwrap();
    assert_eq!(ck.config(), &tiny_model());
    let g = ck
        .generator("", candle_core::DType::F32, &Device::Cpu)
        .unwrap();
    let z = Tensor::from_vec(
        randn_vec(&mut rng_from_seed(1), 2 * 16),
        (2, 16),
        &Device::Cpu,
    )
    .unwrap();
    let img: Vec<f32> = g
        .forward(&GeneratorInput::z(vec![z]).with_noise(NoiseMode::Const))
        .unwrap()
        .image
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    // The loaded copy holds plain tensors, so it takes the CPU inference kernels
    // (stylegan2::fast), which sum in another order than the trainer's tracked EMA model:
    // equal within f32 rounding.
    let ema = ema_image(&t);
    assert_eq!(img.len(), ema.len());
    let worst = img
        .iter()
        .zip(&ema)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "exported vs EMA image: max abs diff {worst}");
}

#[test]
fn non_finite_data_stops_training_with_a_clear_error() {
    // NaN pixels are refused at D's input.
    let images = Tensor::full(f32::NAN, (4, 3, 16, 16), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::open(tiny_config(), dir.path(), &Device::Cpu).unwrap();
    let err = t.train_step(&TensorDataset { images }).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    // Finite but absurd pixels overflow D: the loss is caught as a divergence.
    let images = Tensor::full(3.0e38f32, (4, 3, 16, 16), &Device::Cpu).unwrap();
    let err = t.train_step(&TensorDataset { images }).unwrap_err();
    assert!(matches!(err, TrainError::Diverged { step: 0, .. }), "{err}");
    assert!(err.to_string().contains("D loss"), "{err}");
}

#[test]
fn resuming_with_another_model_config_is_refused() {
    let data = data();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::open(tiny_config(), dir.path(), &Device::Cpu).unwrap();
    t.train_step(&data).unwrap();
    t.save_checkpoint().unwrap();
    let mut other = tiny_config();
    other.model.style_dim = 8;
    let err = Trainer::open(other, dir.path(), &Device::Cpu)
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("model.style_dim: checkpoint 16, now 8"),
        "{err}"
    );
}

#[test]
fn wrong_sized_data_is_a_clear_error() {
    let images = Tensor::zeros((4, 3, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut t = Trainer::open(tiny_config(), dir.path(), &Device::Cpu).unwrap();
    let err = t.train_step(&TensorDataset { images }).unwrap_err();
    assert!(err.to_string().contains("[B, 3, 16, 16]"), "{err}");
}

#[test]
fn shipped_checkpoint_config_parses_and_serialises_with_the_same_keys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights/stylegan2_phantom64/resume/ckpt-000005175.safetensors");
    let ck = s2m_train::checkpoint::Checkpoint::load(&path).unwrap();
    let cfg: TrainConfig = serde_json::from_value(ck.meta.config.clone()).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.schedule.seed, ck.meta.seed);
    assert_eq!(serde_json::to_value(&cfg).unwrap(), ck.meta.config);
}

#[test]
fn a_zero_cadence_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for (name, schedule) in [
        (
            "sample_every",
            Schedule {
                sample_every: 0,
                ..Schedule::default()
            },
        ),
        (
            "keep_checkpoints",
            Schedule {
                keep_checkpoints: 0,
                ..Schedule::default()
            },
        ),
    ] {
        let cfg = TrainConfig {
            schedule,
            ..tiny_config()
        };
        let e = Trainer::open(cfg, dir.path(), &Device::Cpu).err().unwrap();
        assert!(
            matches!(e, TrainError::Config(_))
                && e.to_string().contains(&format!("{name} must be >= 1")),
            "{e}"
        );
    }
}

#[test]
fn nan_or_negative_regularisation_is_refused_with_its_name() {
    for (name, cfg) in [
        (
            "r1_gamma",
            TrainConfig {
                r1_gamma: f64::NAN,
                ..TrainConfig::default()
            },
        ),
        (
            "path_regularize",
            TrainConfig {
                path_regularize: -1.0,
                ..TrainConfig::default()
            },
        ),
        (
            "ema_rampup",
            TrainConfig {
                ema_rampup: f64::INFINITY,
                ..TrainConfig::default()
            },
        ),
    ] {
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    TrainConfig::default().validate().unwrap();
}
