//! CycleGAN training on the workspace loop (unpaired: a sketch set and an image set): the tiny
//! config's cycle loss goes down, a resumed run (pools and their RNG included) is bit-identical
//! to an uninterrupted one, bad data is an error.

use baselines::cyclegan::CycleGanConfig;
use baselines::cyclegan::train::{
    CycleGanTrainConfig, CycleGanTrainer, TensorImages, Unpaired, run_training,
};
use candle_core::{Device, Tensor};

mod common;
use common::{
    assert_goes_down, assert_run_outputs, assert_same_losses, blocky_sketches, rgb_of,
    test_schedule,
};

/// Domain A: three blocky 64 px sketches in {-1, 1}; domain B: two RGB images (another seed).
fn domains() -> (TensorImages, TensorImages) {
    let images = rgb_of(&blocky_sketches(2, 6));
    (TensorImages(blocky_sketches(3, 5)), TensorImages(images))
}

fn config(seed: u64) -> CycleGanTrainConfig {
    let mut model = CycleGanConfig::tiny_64().with_channels(1, 3);
    model.pool_size = 2; // full after two steps, so the resume test crosses the random phase
    CycleGanTrainConfig {
        model,
        batch: 1,
        val_samples: 2,
        schedule: test_schedule(seed),
        ..CycleGanTrainConfig::default()
    }
}

#[test]
fn tiny_config_cycle_loss_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = domains();
    let data = Unpaired { a: &a, b: &b };
    let mut cfg = config(1);
    cfg.lr = 2e-3;
    let mut t = CycleGanTrainer::open(cfg, dir.path(), &Device::Cpu).unwrap();
    let mut cyc = Vec::new();
    run_training(&mut t, &data, 60, None, |s| {
        cyc.push(s.loss_cycle_a + s.loss_cycle_b)
    })
    .unwrap();
    assert_goes_down(&cyc, 0.7, "cycle loss");
    assert_run_outputs(dir.path(), 60);
}

fn vars_of(t: &CycleGanTrainer) -> Vec<(String, Vec<u8>)> {
    common::var_bytes(t.model().named_var_maps())
}

#[test]
fn a_resumed_run_is_bit_identical() {
    let (a, b) = domains();
    let data = Unpaired { a: &a, b: &b };
    let straight = tempfile::tempdir().unwrap();
    let mut x = CycleGanTrainer::open(config(7), straight.path(), &Device::Cpu).unwrap();
    run_training(&mut x, &data, 6, None, |_| {}).unwrap();

    let split = tempfile::tempdir().unwrap();
    let mut y = CycleGanTrainer::open(config(7), split.path(), &Device::Cpu).unwrap();
    run_training(&mut y, &data, 3, None, |_| {}).unwrap();
    drop(y);
    let mut y = CycleGanTrainer::open(config(7), split.path(), &Device::Cpu).unwrap();
    assert_eq!(y.step(), 3);
    run_training(&mut y, &data, 6, None, |_| {}).unwrap();

    assert_eq!(vars_of(&x), vars_of(&y), "weights of G_A, G_B, D_A, D_B");
    assert_same_losses(straight.path(), split.path(), 10);

    // Another model config cannot resume this run.
    let mut other = config(7);
    other.model.generator.ngf = 8;
    assert!(CycleGanTrainer::open(other, split.path(), &Device::Cpu).is_err());
}

#[test]
fn bad_data_and_configs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = domains();
    let mut t = CycleGanTrainer::open(config(2), dir.path(), &Device::Cpu).unwrap();
    // Domains swapped: 3-channel images where sketches are expected.
    assert!(t.train_step(&Unpaired { a: &b, b: &a }).is_err());
    let empty =
        TensorImages(Tensor::zeros((0, 1, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap());
    assert!(t.train_step(&Unpaired { a: &empty, b: &b }).is_err());
    let mut c = config(2);
    c.batch = 0;
    assert!(CycleGanTrainer::open(c, tempfile::tempdir().unwrap().path(), &Device::Cpu).is_err());
    let mut c = config(2);
    c.model.loss.lambda_identity = 0.5; // 1 -> 3 channels
    assert!(CycleGanTrainer::open(c, tempfile::tempdir().unwrap().path(), &Device::Cpu).is_err());
}

/// `cargo test -p baselines --test cyclegan_train -- --ignored --nocapture`: seconds per step of
/// the narrow preset (sketch 1 -> image 3, batch 1) on this machine.
#[test]
#[ignore = "timing, about half a minute"]
fn narrow_preset_step_time() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = domains();
    let data = Unpaired { a: &a, b: &b };
    let mut cfg = config(2);
    cfg.model = CycleGanConfig::narrow_64().with_channels(1, 3);
    let mut t = CycleGanTrainer::open(cfg, dir.path(), &Device::Cpu).unwrap();
    let mut secs = Vec::new();
    run_training(&mut t, &data, 12, None, |s| secs.push(s.seconds)).unwrap();
    let mean = secs[2..].iter().sum::<f64>() / (secs.len() - 2) as f64;
    println!("narrow_64 (1 -> 3), batch 1: {mean:.3} s per step (mean of steps 3..12)");
}
