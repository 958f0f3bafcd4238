//! pix2pix training on the workspace loop: the tiny config overfits one batch, a resumed run is
//! bit-identical to an uninterrupted one, the learning-rate policy is the official one.

use baselines::pix2pix::Pix2PixConfig;
use baselines::pix2pix::train::{
    PairedData, Pix2PixTrainConfig, Pix2PixTrainer, TensorPairs, run_training,
};
use candle_core::Device;

mod common;
use common::{
    assert_goes_down, assert_run_outputs, assert_same_losses, blocky_sketches, rgb_of,
    test_schedule,
};

/// Two 64 px pairs: a blocky sketch in {-1, 1} and an RGB image that is a fixed function of it.
fn pairs() -> TensorPairs {
    let sketches = blocky_sketches(2, 5);
    TensorPairs {
        images: rgb_of(&sketches),
        sketches,
    }
}

fn config(seed: u64) -> Pix2PixTrainConfig {
    Pix2PixTrainConfig {
        model: Pix2PixConfig::tiny_64(),
        batch: 2,
        val_samples: 2,
        schedule: test_schedule(seed),
        ..Pix2PixTrainConfig::default()
    }
}

#[test]
fn tiny_config_overfits_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = pairs();
    let mut cfg = config(1);
    cfg.lr = 2e-3;
    let mut t = Pix2PixTrainer::open(cfg, dir.path(), &Device::Cpu).unwrap();
    let mut l1 = Vec::new();
    run_training(&mut t, &data as &dyn PairedData, 60, None, |s| {
        l1.push(s.loss_g_l1)
    })
    .unwrap();
    assert_goes_down(&l1, 0.6, "L1");
    assert_run_outputs(dir.path(), 60);
}

fn vars_of(t: &Pix2PixTrainer) -> Vec<(String, Vec<u8>)> {
    let m = t.model();
    common::var_bytes([("g", &m.g_vars), ("d", &m.d_vars)])
}

#[test]
fn a_resumed_run_is_bit_identical() {
    let data = pairs();
    let straight = tempfile::tempdir().unwrap();
    let mut a = Pix2PixTrainer::open(config(7), straight.path(), &Device::Cpu).unwrap();
    run_training(&mut a, &data as &dyn PairedData, 6, None, |_| {}).unwrap();

    let split = tempfile::tempdir().unwrap();
    let mut b = Pix2PixTrainer::open(config(7), split.path(), &Device::Cpu).unwrap();
    run_training(&mut b, &data as &dyn PairedData, 3, None, |_| {}).unwrap();
    drop(b);
    let mut b = Pix2PixTrainer::open(config(7), split.path(), &Device::Cpu).unwrap();
    assert_eq!(b.step(), 3);
    run_training(&mut b, &data as &dyn PairedData, 6, None, |_| {}).unwrap();

    assert_eq!(vars_of(&a), vars_of(&b), "weights and BatchNorm buffers");
    // Every column but the wall time.
    assert_same_losses(straight.path(), split.path(), 7);

    // Another model config cannot resume this run.
    let mut other = config(7);
    other.model = Pix2PixConfig::narrow_64();
    assert!(Pix2PixTrainer::open(other, split.path(), &Device::Cpu).is_err());
}

#[test]
fn learning_rate_policy_is_the_official_linear_one() {
    let cfg = Pix2PixTrainConfig::default();
    assert_eq!(cfg.lr_factor(1), 1.0);
    assert_eq!(cfg.lr_factor(100), 1.0);
    assert!((cfg.lr_factor(101) - (1.0 - 1.0 / 101.0)).abs() < 1e-15);
    assert!((cfg.lr_factor(200) - 1.0 / 101.0).abs() < 1e-15);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(3);
    c.n_epochs = 2;
    c.n_epochs_decay = 2;
    let t = Pix2PixTrainer::open(c, dir.path(), &Device::Cpu).unwrap();
    // 5 pairs, batch 2: 3 steps an epoch; epoch 3 (steps 6..9) runs at 2/3 of the rate.
    assert_eq!(t.lr_at(5, 5), 2e-4);
    assert!((t.lr_at(6, 5) - 2e-4 * 2.0 / 3.0).abs() < 1e-18);
}

/// Seconds per step of the narrow 64 px preset at batch 1 (the number in docs/BASELINES.md):
/// `cargo test -p baselines --test train -- --ignored --nocapture`.
#[test]
#[ignore = "timing, about half a minute"]
fn narrow_preset_step_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = pairs();
    let mut cfg = config(2);
    cfg.model = Pix2PixConfig::narrow_64();
    cfg.batch = 1;
    let mut t = Pix2PixTrainer::open(cfg, dir.path(), &Device::Cpu).unwrap();
    let mut secs = Vec::new();
    run_training(&mut t, &data as &dyn PairedData, 12, None, |s| {
        secs.push(s.seconds)
    })
    .unwrap();
    let mean = secs[2..].iter().sum::<f64>() / (secs.len() - 2) as f64;
    println!("narrow_64, batch 1: {mean:.3} s per step (mean of steps 3..12)");
}
