//! StyleGAN2 CPU benchmarks: modulated conv (shared vs per-sample offsets), upfirdn2d,
//! generator forward (phantom_64, paper_256), discriminator forward, one phantom_64 G step,
//! one full phantom_64 training step (G + D, lazy R1).
//!
//! `cargo bench -p stylegan2`; set `S2M_BENCH_FULL=1` to add paper_256 with batch 8 (slow).

use std::hint::black_box;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use criterion::{Criterion, criterion_group, criterion_main};
use s2m_core::rng::{randn_vec, rng_from_seed};
use stylegan2::init::{init_discriminator, init_generator, init_generator_frozen};
use stylegan2::layers::{DEFAULT_BLUR_KERNEL, ModulatedConv2d, ModulatedConv2dConfig};
use stylegan2::ops::{kernel_tensor, separable_taps, upfirdn2d, upfirdn2d_separable};
use stylegan2::{GeneratorInput, NoiseMode, StyleGan2Config};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(randn_vec(&mut rng_from_seed(seed), n), shape, &Device::Cpu)
        .expect("bench tensor")
}

fn bench_modconv(c: &mut Criterion) {
    let mut g = c.benchmark_group("modconv");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let (b, ch, hw, s) = (4, 128, 16, 128);
    for up in [false, true] {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let cfg = ModulatedConv2dConfig::new(ch, ch, 3, s);
        let cfg = if up {
            cfg.upsample(&DEFAULT_BLUR_KERNEL)
        } else {
            cfg
        };
        let conv = ModulatedConv2d::new(&cfg, vb).expect("modconv");
        let x = randn(&[b, ch, hw, hw], 1);
        let style = randn(&[b, s], 2);
        let delta = (randn(&[b, ch, ch, 3, 3], 3) * 0.1).expect("delta");
        let tag = if up { "up" } else { "same" };
        g.bench_function(format!("shared_b4_c128_16px_{tag}"), |bn| {
            bn.iter(|| black_box(conv.forward(&x, &style, None).expect("fwd")))
        });
        g.bench_function(format!("offsets_b4_c128_16px_{tag}"), |bn| {
            bn.iter(|| black_box(conv.forward(&x, &style, Some(&delta)).expect("fwd")))
        });
    }
    g.finish();
}

fn bench_upfirdn(c: &mut Criterion) {
    let mut g = c.benchmark_group("upfirdn2d");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let x = randn(&[4, 64, 64, 64], 4);
    let taps = [1.0f32, 3., 3., 1.];
    let kdn = kernel_tensor(&taps, 1, DType::F32, &Device::Cpu).expect("k");
    let sdn = separable_taps(&taps, 1);
    let sup = separable_taps(&taps, 2);
    g.bench_function("reference_conv_blur_b4_c64_64px", |bn| {
        bn.iter(|| black_box(upfirdn2d(&x, &kdn, 1, 1, (2, 2)).expect("blur")))
    });
    g.bench_function("separable_blur_b4_c64_64px", |bn| {
        bn.iter(|| black_box(upfirdn2d_separable(&x, &sdn, 1, 1, (2, 2)).expect("blur")))
    });
    g.bench_function("separable_up2_b4_c64_64px", |bn| {
        bn.iter(|| black_box(upfirdn2d_separable(&x, &sup, 2, 1, (2, 1)).expect("up")))
    });
    g.bench_function("separable_blur_b4_c64_64px_fwd_bwd", |bn| {
        bn.iter(|| {
            let v = candle_core::Var::from_tensor(&x).expect("var");
            let y = upfirdn2d_separable(v.as_tensor(), &sdn, 1, 1, (2, 2)).expect("blur");
            black_box(y.sum_all().expect("sum").backward().expect("bwd"))
        })
    });
    g.finish();
}

fn bench_generator(c: &mut Criterion) {
    let full = std::env::var("S2M_BENCH_FULL").is_ok_and(|v| v == "1");
    let mut g = c.benchmark_group("generator");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut cases = vec![
        ("phantom_64", StyleGan2Config::phantom_64(), 1),
        ("phantom_64", StyleGan2Config::phantom_64(), 8),
    ];
    cases.push(("paper_256", StyleGan2Config::paper_256(), 1));
    if full {
        cases.push(("paper_256", StyleGan2Config::paper_256(), 8));
    }
    for (name, cfg, b) in cases {
        // Inference: plain tensors as a loaded checkpoint (the CPU inference kernels apply).
        let gen_ = init_generator_frozen(&cfg, &mut rng_from_seed(0), DType::F32, &Device::Cpu)
            .expect("init");
        let z = randn(&[b, cfg.style_dim], 5);
        let input = GeneratorInput::z(vec![z]).with_noise(NoiseMode::Random { seed: 1 });
        g.bench_function(format!("{name}_b{b}_forward"), |bn| {
            bn.iter(|| black_box(gen_.forward(&input).expect("G")))
        });
    }
    // One phantom_64 generator training step's autograd part (forward + backward), batch 8.
    let cfg = StyleGan2Config::phantom_64();
    let (gen_, _vm) =
        init_generator(&cfg, &mut rng_from_seed(0), DType::F32, &Device::Cpu).expect("init");
    let z = randn(&[8, cfg.style_dim], 6);
    let input = GeneratorInput::z(vec![z]).with_noise(NoiseMode::Random { seed: 2 });
    g.bench_function("phantom_64_b8_forward_backward", |bn| {
        bn.iter(|| {
            let img = gen_.forward(&input).expect("G").image;
            black_box(img.sum_all().expect("sum").backward().expect("bwd"))
        })
    });
    g.finish();
}

fn bench_discriminator(c: &mut Criterion) {
    let mut g = c.benchmark_group("discriminator");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (name, cfg, b) in [
        ("phantom_64", StyleGan2Config::phantom_64(), 8),
        ("paper_256", StyleGan2Config::paper_256(), 4),
    ] {
        let (d, _vm) = init_discriminator(&cfg, &mut rng_from_seed(0), DType::F32, &Device::Cpu)
            .expect("init");
        let x = randn(&[b, 3, cfg.size as usize, cfg.size as usize], 7);
        g.bench_function(format!("{name}_b{b}_forward"), |bn| {
            bn.iter(|| black_box(d.forward(&x).expect("D")))
        });
    }
    g.finish();
}

fn bench_training_step(c: &mut Criterion) {
    // A full phantom_64 training step (D step, G step, EMA; lazy R1 every 16th step, so the
    // mean over many iterations includes it as a real run does), batch 8, random images.
    use stylegan2::train::{TensorDataset, TrainConfig, Trainer};
    let mut g = c.benchmark_group("training");
    g.sample_size(16).measurement_time(Duration::from_secs(30));
    let cfg = StyleGan2Config::phantom_64();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = TensorDataset {
        images: randn(&[32, 3, 64, 64], 8)
            .clamp(-1f32, 1f32)
            .expect("clamp"),
    };
    let tcfg = TrainConfig {
        model: cfg,
        batch: 8,
        path_regularize: 0.0,
        schedule: s2m_train::Schedule::default().only_at_end(),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::open(tcfg, dir.path(), &Device::Cpu).expect("trainer");
    g.bench_function("phantom_64_b8_step", |bn| {
        bn.iter(|| black_box(trainer.train_step(&data).expect("step")))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_modconv,
    bench_upfirdn,
    bench_generator,
    bench_discriminator,
    bench_training_step
);
criterion_main!(benches);
