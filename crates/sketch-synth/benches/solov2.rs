//! SOLOv2 benches (criterion): the network forward and `predict` (forward + post-processing +
//! masks at the image size) at the preset's resolution for batch 1 and 8, and one training
//! step (augmentation, targets, forward, loss, backward, AdamW) at batch 8.
//!
//! `cargo bench -p sketch-synth --bench solov2` (phantom_r18 at 256 px input, the shipped S's
//! configuration, seeded weights; `S2M_SOLOV2_BENCH_SIZE=128` for the 128 px input).
//! Seeded (untrained) weights put many cells above the score threshold, so `predict` here is
//! an upper bound of a trained model's (see docs/SOLOV2.md for trained-weight timings).

use candle_core::{DType, Device};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use image::RgbImage;
use sketch_synth::solov2::{
    InMemorySegDataset, SoloV2, SoloV2Config, TrainConfig, Trainer, toy_sample,
};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let size: usize = std::env::var("S2M_SOLOV2_BENCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let cfg = SoloV2Config::phantom_r18().with_input_size(size);
    let size = cfg.input_size as u32;
    let (model, _vars) =
        s2m_core::init::seeded_var_map(0, DType::F32, &dev, |vb| SoloV2::new(cfg.clone(), vb))
            .expect("model");
    let mut g = c.benchmark_group(format!("solov2_phantom_r18_{size}"));
    g.sample_size(10);
    for batch in [1usize, 8] {
        let images: Vec<RgbImage> = (0..batch)
            .map(|i| toy_sample(size, i as u32 % 4).image)
            .collect();
        let x = model.preprocess(&images, &dev).expect("input");
        g.bench_with_input(BenchmarkId::new("forward", batch), &x, |b, x| {
            b.iter(|| model.forward(x).expect("forward"))
        });
        g.bench_with_input(BenchmarkId::new("predict", batch), &images, |b, im| {
            b.iter(|| model.predict(im).expect("predict"))
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = InMemorySegDataset {
        name: "bench".into(),
        samples: (0..8).map(|i| toy_sample(size, i % 4)).collect(),
    };
    let tc = TrainConfig {
        model: cfg.clone(),
        schedule: s2m_train::Schedule {
            log_every: u64::MAX,
            ..TrainConfig::default().schedule
        }
        .only_at_end(),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::open(tc, dir.path(), None, &dev).expect("trainer");
    g.bench_function("train_step/8", |b| {
        b.iter(|| trainer.train_step(&data).expect("step"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
