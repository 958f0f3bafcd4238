//! Forward-pass timings of every backbone at 256x256 (FID Inception: its own 299 resize of a
//! 256 input), batch 1, eval mode, synthetic weights. Small sample sizes: this is a CPU-bound
//! 2-core machine. Run: `cargo bench -p backbones --bench backbones`.

use std::hint::black_box;
use std::time::Duration;

use backbones::synthetic::synthetic_var_builder;
use backbones::{
    AlexNetFeatures, FidInceptionConfig, FidInceptionV3, IrSe, IrSeConfig, ResNet, ResNetConfig,
    Vgg16Config, Vgg16Features,
};
use candle_core::{DType, Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};

fn input(b: usize) -> Tensor {
    let n = b * 3 * 256 * 256;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f32) * 0.0137).sin() * 0.5 + 0.5)
        .collect();
    Tensor::from_vec(v, (b, 3, 256, 256), &Device::Cpu).expect("input")
}

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vb = synthetic_var_builder(DType::F32, &dev);
    let mut g = c.benchmark_group("forward_256");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let x1 = input(1);

    for (name, cfg) in [
        ("resnet18", ResNetConfig::resnet18()),
        ("resnet34", ResNetConfig::resnet34()),
        ("resnet50", ResNetConfig::resnet50()),
        ("resnet101", ResNetConfig::resnet101()),
    ] {
        let net = ResNet::new(cfg, vb.clone()).expect("resnet");
        g.bench_function(format!("{name}_b1"), |b| {
            b.iter(|| black_box(net.forward(&x1).expect("fwd")))
        });
    }
    let vgg = Vgg16Features::new(Vgg16Config::lpips(), vb.clone()).expect("vgg");
    g.bench_function("vgg16_maxpool_b1", |b| {
        b.iter(|| black_box(vgg.forward(&x1).expect("fwd")))
    });
    let vgg_l2 = Vgg16Features::new(Vgg16Config::dists(), vb.clone()).expect("vgg");
    g.bench_function("vgg16_l2pool_b1", |b| {
        b.iter(|| black_box(vgg_l2.forward(&x1).expect("fwd")))
    });
    let alex = AlexNetFeatures::new(vb.clone()).expect("alexnet");
    g.bench_function("alexnet_b1", |b| {
        b.iter(|| black_box(alex.forward(&x1).expect("fwd")))
    });
    let irse = IrSe::new(IrSeConfig::ir_se50(), vb.clone()).expect("irse");
    g.bench_function("irse50_b1", |b| {
        b.iter(|| black_box(irse.forward(&x1).expect("fwd")))
    });
    let fid = FidInceptionV3::new(FidInceptionConfig::default(), vb.clone()).expect("fid");
    g.bench_function("fid_inception_b1", |b| {
        b.iter(|| black_box(fid.forward(&x1).expect("fwd")))
    });
    // Batch 8 only for the cheap trunks the losses run every step.
    let x8 = input(8);
    let r50 = ResNet::new(ResNetConfig::moco_v2(), vb.clone()).expect("resnet");
    g.bench_function("resnet50_b8", |b| {
        b.iter(|| black_box(r50.forward(&x8).expect("fwd")))
    });
    g.bench_function("alexnet_b8", |b| {
        b.iter(|| black_box(alex.forward(&x8).expect("fwd")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
