//! Benchmarks of the metrics: FID Inception-v3 feature extraction throughput (299 px, batch 16,
//! synthetic weights: the speed does not depend on the values) and the Frechet distance of
//! 2048-d statistics (two 2048x2048 symmetric eigendecompositions, f64, faer).
//!
//! `cargo bench -p metrics --bench metrics`; numbers in docs/METRICS.md.

use candle_core::{Device, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metrics::features::{FeatureExtractor, InceptionFeatures};
use metrics::frechet::{GaussianStats, frechet_distance};

fn inception(c: &mut Criterion) {
    let dev = Device::Cpu;
    let ext = InceptionFeatures::synthetic(&dev).expect("synthetic inception");
    let x = Tensor::rand(0f32, 1f32, (16, 3, 299, 299), &dev).expect("input");
    let mut g = c.benchmark_group("fid_inception");
    g.sample_size(10);
    g.throughput(Throughput::Elements(16));
    g.bench_function("pool3_299px_batch16", |b| {
        b.iter(|| ext.features(&x).expect("features"))
    });
    g.finish();
}

fn frechet(c: &mut Criterion) {
    let d = 2048;
    // Two full-rank covariances from 2500 pseudo-random correlated samples each.
    let make = |seed: u64| {
        let n = 2500;
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        };
        let base: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let f: Vec<f32> = (0..n * d)
            .map(|i| base[i] + 0.5 * base[(i / d) * d + (i % d + 1) % d])
            .collect();
        GaussianStats::from_features("bench", &f, d).expect("stats")
    };
    let (a, b) = (make(1), make(2));
    let mut g = c.benchmark_group("frechet");
    g.sample_size(10);
    g.bench_function("fd_2048d", |bch| {
        bch.iter(|| frechet_distance(&a, &b).expect("fd"))
    });
    g.finish();
}

criterion_group!(benches, frechet, inception);
criterion_main!(benches);
