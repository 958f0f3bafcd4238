//! candle's conv2d / conv_transpose2d vs the gemm-based versions in `s2m_kernels::conv`:
//! forward + backward (input and kernel gradients) and the transposed-conv forward.
//! `cargo bench -p s2m-core --bench conv`.

use candle_core::{DType, Device, Tensor, Var};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use s2m_core::rng::{randn_vec, rng_from_seed};
use s2m_kernels::conv::{conv_transpose2d, conv2d};

fn randn(shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(randn_vec(&mut rng_from_seed(1), n), shape, &Device::Cpu).unwrap()
}

fn bench_conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv3x3_fwd_bwd");
    group.sample_size(10);
    for (b, ch, hw) in [(8usize, 128usize, 16usize), (8, 64, 32), (8, 32, 64)] {
        let x = Var::from_tensor(&randn(&[b, ch, hw, hw])).unwrap();
        let w = Var::from_tensor(&randn(&[ch, ch, 3, 3])).unwrap();
        let id = format!("B{b}_C{ch}_{hw}px");
        group.bench_function(BenchmarkId::new("candle", &id), |bch| {
            bch.iter(|| {
                x.conv2d(&w, 1, 1, 1, 1)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("fast", &id), |bch| {
            bch.iter(|| {
                conv2d(&x, &w, 1, 1)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("conv_transpose_s2_fwd");
    group.sample_size(10);
    for (b, ch, hw) in [(8usize, 128usize, 16usize), (8, 64, 32)] {
        let x = randn(&[b, ch, hw, hw]);
        let w = randn(&[ch, ch, 3, 3]);
        let id = format!("B{b}_C{ch}_{hw}px");
        group.bench_function(BenchmarkId::new("candle", &id), |bch| {
            bch.iter(|| x.conv_transpose2d(&w, 0, 0, 2, 1).unwrap())
        });
        group.bench_function(BenchmarkId::new("fast", &id), |bch| {
            bch.iter(|| conv_transpose2d(&x, &w, 0, 0, 2).unwrap())
        });
    }
    group.finish();
    let _ = DType::F32;
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
