//! Forward + backward of each loss at 256x256 (CPU, f32), gradient w.r.t. the prediction.
//! `cargo bench -p losses --bench losses` (filter with e.g. `-- stlpips`). Batch 8 runs for the
//! cheap losses by default; `LOSSES_BENCH_B8=1` adds it for ST-LPIPS-alex and L_sim (about 30 s
//! per iteration on 2 cores, 10 iterations each). Trunks without
//! shipped weights use the `backbones::synthetic` formula (speed does not depend on values).
//! Numbers and the machine are in docs/LOSSES.md.

use std::collections::HashMap;
use std::time::Duration;

use backbones::synthetic::{synthetic_tensor, synthetic_var_builder};
use backbones::{ResNet, ResNetConfig};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::VarBuilder;
use criterion::{Criterion, criterion_group, criterion_main};
use losses::weights::{self, shipped_weights_dir};
use losses::{Dists, Lpips, LpipsNet, MocoConfig, MocoLoss, SimilarityLoss, StLpips, l2_loss};

const SIZE: usize = 256;

fn image(b: usize, k: f64) -> Tensor {
    let n = b * 3 * SIZE * SIZE;
    let v: Vec<f32> = (0..n)
        .map(|i| (0.8 * ((i as f64) * k).sin()) as f32)
        .collect();
    Tensor::from_vec(v, (b, 3, SIZE, SIZE), &Device::Cpu).unwrap()
}

fn shipped(file: &str) -> VarBuilder<'static> {
    let t = candle_core::safetensors::load(shipped_weights_dir().join(file), &Device::Cpu).unwrap();
    VarBuilder::from_tensors(t, DType::F32, &Device::Cpu)
}

/// ST-LPIPS vgg with formula weights but the real scaling constants and shared blur filters.
fn st_vgg() -> StLpips {
    let spec = backbones::weights::record_params(|vb| {
        StLpips::new(LpipsNet::Vgg, vb).map_err(|e| backbones::BackboneError::Config(e.to_string()))
    })
    .unwrap();
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    for (k, shape) in spec {
        let v = if k == "scaling_layer.shift" {
            Tensor::new(&[-0.030f32, -0.088, -0.188], &dev)
                .unwrap()
                .reshape((1, 3, 1, 1))
                .unwrap()
        } else if k == "scaling_layer.scale" {
            Tensor::new(&[0.458f32, 0.448, 0.450], &dev)
                .unwrap()
                .reshape((1, 3, 1, 1))
                .unwrap()
        } else if k.ends_with(".filt") {
            let b = (Tensor::new(&[1f32, 2., 1., 2., 4., 2., 1., 2., 1.], &dev).unwrap() / 16.0)
                .unwrap()
                .reshape((1, 1, 3, 3))
                .unwrap();
            b.broadcast_as((shape[0], 1, 3, 3))
                .unwrap()
                .contiguous()
                .unwrap()
        } else {
            synthetic_tensor(&k, &Shape::from(shape.clone()), DType::F32, &dev).unwrap()
        };
        t.insert(k, v);
    }
    StLpips::new(LpipsNet::Vgg, VarBuilder::from_tensors(t, DType::F32, &dev)).unwrap()
}

fn bench_fwd_bwd(
    c: &mut Criterion,
    name: &str,
    batch: usize,
    f: &dyn Fn(&Tensor, &Tensor) -> Tensor,
) {
    let y = image(batch, 0.37);
    let x = Var::from_tensor(&image(batch, 0.53)).unwrap();
    c.bench_function(&format!("{name} fwd+bwd 256 b{batch}"), |b| {
        b.iter(|| {
            let l = f(x.as_tensor(), &y);
            let g = l.backward().unwrap();
            assert!(g.get(x.as_tensor()).is_some());
        })
    });
}

fn losses(c: &mut Criterion) {
    let dev = Device::Cpu;
    bench_fwd_bwd(c, "l2", 1, &|x, y| l2_loss(x, y).unwrap());
    let big: &[usize] = if std::env::var_os("LOSSES_BENCH_B8").is_some() {
        &[1, 8]
    } else {
        &[1]
    };
    let st = StLpips::shipped_alex(&dev).unwrap();
    for &b in big {
        bench_fwd_bwd(c, "stlpips_alex", b, &|x, y| st.loss(x, y).unwrap());
    }
    let sv = st_vgg();
    bench_fwd_bwd(c, "stlpips_vgg", 1, &|x, y| sv.loss(x, y).unwrap());
    let la = Lpips::new(
        LpipsNet::Alex,
        synthetic_var_builder(DType::F32, &dev),
        shipped(weights::LPIPS_ALEX_LIN),
    )
    .unwrap();
    for b in [1, 8] {
        bench_fwd_bwd(c, "lpips_alex", b, &|x, y| la.loss(x, y).unwrap());
    }
    let lv = Lpips::new(
        LpipsNet::Vgg,
        synthetic_var_builder(DType::F32, &dev),
        shipped(weights::LPIPS_VGG_LIN),
    )
    .unwrap();
    bench_fwd_bwd(c, "lpips_vgg", 1, &|x, y| lv.loss(x, y).unwrap());
    let d = Dists::new(
        synthetic_var_builder(DType::F32, &dev),
        shipped(weights::DISTS_ALPHA_BETA),
    )
    .unwrap();
    bench_fwd_bwd(c, "dists", 1, &|x, y| {
        d.loss(&x.affine(0.5, 0.5).unwrap(), &y.affine(0.5, 0.5).unwrap())
            .unwrap()
    });
    let r50 = ResNet::new(
        ResNetConfig::moco_v2(),
        synthetic_var_builder(DType::F32, &dev),
    )
    .unwrap();
    let moco = MocoLoss::new(r50, MocoConfig::reference()).unwrap();
    bench_fwd_bwd(c, "moco_r50_224", 1, &|x, y| moco.loss(x, y).unwrap());
    let sim = SimilarityLoss::cpu_default(&shipped_weights_dir()).unwrap();
    for &b in big {
        bench_fwd_bwd(c, "l_sim_cpu_default", b, &|x, y| {
            sim.forward(x, y).unwrap().total
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    targets = losses
}
criterion_main!(benches);
