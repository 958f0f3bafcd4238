//! Phantom generation speed: one image, one full sample (image + masks + synthesized sketch),
//! a free-hand sketch, and parallel throughput on all cores.
//!
//! `cargo bench --bench phantom`; results go to docs/BENCHMARKS.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use sketch2medi::pharynx_phantom::sample::draw_freehand;
use sketch2medi::pharynx_phantom::{PhantomParams, Stream, generate, render};
use sketch2medi::s2m_core::rng::rng_from_seed;
use sketch2medi::sketch_synth::{SketchConfig, drawer_styles, render_label_map};
use std::hint::black_box;

fn bench_phantom(c: &mut Criterion) {
    let cfg = SketchConfig::default();
    let mut group = c.benchmark_group("phantom");
    group.sample_size(20);
    for size in [64u32, 256] {
        let params = PhantomParams::sample(&mut rng_from_seed(1));
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("render", size), &size, |b, &s| {
            b.iter(|| render(black_box(&params), s).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("sample_with_sketch", size),
            &size,
            |b, &s| {
                let mut i = 0;
                b.iter(|| {
                    i += 1;
                    generate(0, Stream::Train, i, s, &cfg).unwrap()
                })
            },
        );
    }
    let sample = generate(0, Stream::Reference, 0, 256, &cfg).unwrap();
    group.bench_function("synthesized_sketch/256", |b| {
        b.iter(|| render_label_map(black_box(&sample.phantom.labels), &cfg).unwrap())
    });
    let styles = drawer_styles();
    group.bench_function("freehand_sketch_with_chamfer/256", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            draw_freehand(&sample, &styles[i % styles.len()], 0, i).unwrap()
        })
    });
    // Throughput on all cores, as the dataset export runs it (without PNG encoding).
    let batch = 32usize;
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("parallel_samples_with_sketch/256x32", |b| {
        let mut round = 0;
        b.iter(|| {
            round += 1;
            (0..batch)
                .into_par_iter()
                .map(|i| {
                    generate(round, Stream::Train, i, 256, &cfg)
                        .unwrap()
                        .sketch
                        .width()
                })
                .sum::<u32>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_phantom);
criterion_main!(benches);
