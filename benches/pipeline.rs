//! Sketch2MedI stages (seeded random weights, `sketch2medi::timing`): E forward, one refinement
//! step (H + G with offsets), and the full generate (E + ŷ_0 + 3 refinements), at the shipped
//! 64 px configuration (batch 1 and 8) and the paper's 256 px one (batch 1; batch 8 with
//! `sketch2medi bench pipeline --preset paper256`, too slow for criterion's sampling).
//!
//! `cargo bench --bench pipeline`; results go to docs/BENCHMARKS.md. Uses the binary's allocator
//! setting (mimalloc, pages purged after 10 s) so that the numbers match `sketch2medi generate`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sketch2medi::timing::{TimingModels, TimingPreset};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench_pipeline(c: &mut Criterion) {
    sketch2medi::allocator::configure_mimalloc();
    // SAFETY: before criterion or candle start any thread.
    unsafe { sketch2medi::threads::configure_cpu_threads() };
    let dev = candle_core::Device::Cpu;
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    for (preset, name, batches) in [
        (TimingPreset::Phantom64, "phantom64", vec![1usize, 8]),
        (TimingPreset::Paper256, "paper256", vec![1]),
    ] {
        let m = TimingModels::new(preset, &dev).unwrap();
        for b in batches {
            let x = m.sketches(b).unwrap();
            let w = m.encode(&x).unwrap();
            let y0 = m.synthesize(&w).unwrap();
            group.throughput(Throughput::Elements(b as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/encoder"), b),
                &b,
                |bch, _| bch.iter(|| m.encode(black_box(&x)).unwrap()),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/one_refinement"), b),
                &b,
                |bch, _| bch.iter(|| m.refinement_step(black_box(&x), &w, &y0).unwrap()),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/generate_t3"), b),
                &b,
                |bch, _| bch.iter(|| m.generate(black_box(&x), 3).unwrap()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
