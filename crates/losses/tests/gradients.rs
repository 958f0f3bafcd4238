//! Gradients of every loss against central finite differences (`s2m_train::gradcheck`), in f64,
//! on tiny inputs. The perceptual networks are checked on a small patch of the input (the
//! patch is added to a fixed image through zero padding, so its gradient is exactly the
//! gradient of those input pixels) to keep the number of forward passes small.
//!
//! Weights: ST-LPIPS alex uses the real shipped network; the other trunks use the
//! `backbones::synthetic` formula (LPIPS/DISTS lin and alpha/beta are the shipped ones).
//! Tolerance: max |analytic - numeric| <= 1e-5 x the largest gradient entry (measured values
//! are printed with `--nocapture` and recorded in docs/LOSSES.md).
//!
//! The image pairs come from `tests/fixtures/pairs/`, generated (with the reference values) by
//! `.venv/bin/python tools/losses_fixtures.py --phantom /tmp/ph` after
//! `cargo run --release -- phantom build --out /tmp/ph --scale 0.0025 --size 64`.

mod common;

use std::collections::HashMap;

use backbones::synthetic::{synthetic_tensor, synthetic_var_builder};
use backbones::{ResNet, ResNetConfig};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use common::{pairs, wave};
use losses::weights::{self, shipped_weights_dir};
use losses::{
    Dists, Lpips, LpipsNet, MocoConfig, MocoLoss, Perceptual, SimilarityLoss, StLpips,
    d_logistic_loss, g_nonsaturating_loss, l2_loss, r1_penalty,
};
use s2m_train::gradcheck::{DEFAULT_EPS, check_grad, check_grads};

const TOL: f64 = 1e-5;

fn c<T>(r: losses::Result<T>) -> candle_core::Result<T> {
    r.map_err(|e| candle_core::Error::Msg(e.to_string()))
}

/// Checks d f(base + patch) / d patch at patch = 0 for a `size` x `size` patch at `(r0, c0)`.
fn check_patch(
    name: &str,
    f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    base: &Tensor,
    (r0, c0): (usize, usize),
    size: usize,
    tol: f64,
) {
    let (b, ch, h, w) = base.dims4().unwrap();
    let p0 = Tensor::zeros((b, ch, size, size), DType::F64, &Device::Cpu).unwrap();
    let g = check_grad(
        |p| {
            let e = p
                .pad_with_zeros(2, r0, h - r0 - size)?
                .pad_with_zeros(3, c0, w - c0 - size)?;
            f(&(base + e)?)
        },
        &p0,
        DEFAULT_EPS,
    )
    .unwrap();
    let gmax = g.analytic.iter().fold(0f64, |m, v| m.max(v.abs()));
    println!(
        "{name:>22}: {} entries, max |grad| {gmax:.3e}, max rel err {:.2e}",
        g.analytic.len(),
        g.max_rel_err
    );
    assert!(g.has_grad, "{name}: no gradient");
    assert!(gmax > 0.0, "{name}: zero gradient");
    g.assert_close(tol);
}

/// A pair of 64 px phantom images cropped to `size` in f64.
fn crop_pair(size: usize) -> (Tensor, Tensor) {
    let (a, b) = pairs(DType::F64);
    let crop = |t: &Tensor| {
        t.narrow(0, 1, 1)
            .unwrap()
            .narrow(2, 10, size)
            .unwrap()
            .narrow(3, 20, size)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    (crop(&a), crop(&b))
}

fn shipped(file: &str, dtype: DType) -> VarBuilder<'static> {
    let t = candle_core::safetensors::load(shipped_weights_dir().join(file), &Device::Cpu).unwrap();
    VarBuilder::from_tensors(t, dtype, &Device::Cpu)
}

#[test]
fn l2_and_gan_losses() {
    let a = wave(&[2, 3, 2, 2], 0.7, 1.0, DType::F64);
    let b = wave(&[2, 3, 2, 2], 1.3, 1.0, DType::F64);
    for g in check_grads(|t| c(l2_loss(&t[0], &t[1])), &[a, b], DEFAULT_EPS).unwrap() {
        g.assert_close(1e-8);
    }
    let real = wave(&[4, 1], 0.9, 4.0, DType::F64);
    let fake = wave(&[4, 1], 2.1, 30.0, DType::F64); // large logits: softplus must not overflow
    for g in check_grads(
        |t| c(d_logistic_loss(&t[0], &t[1])),
        &[real, fake.clone()],
        DEFAULT_EPS,
    )
    .unwrap()
    {
        g.assert_close(1e-7);
    }
    check_grad(|t| c(g_nonsaturating_loss(t)), &fake, DEFAULT_EPS)
        .unwrap()
        .assert_close(1e-7);
}

/// A tiny conv discriminator `D(x; w1, b1, w2)`.
fn tiny_d(x: &Tensor, p: &[Tensor]) -> candle_core::Result<Tensor> {
    let h = x.conv2d(&p[0], 1, 2, 1, 1)?.broadcast_add(&p[1])?;
    // A smooth activation, so that every parameter (the bias too) has a non-zero
    // second-order gradient (with leaky ReLU the bias's is exactly 0).
    let h = (h.tanh()? + (&h * 0.2)?)?;
    h.flatten_from(1)?.matmul(&p[2])
}

#[test]
fn r1_penalty_second_order_gradient() {
    let real = wave(&[2, 3, 6, 6], 0.45, 1.0, DType::F64);
    let params = vec![
        wave(&[4, 3, 3, 3], 1.1, 0.4, DType::F64),
        wave(&[1, 4, 1, 1], 0.3, 0.1, DType::F64),
        wave(&[36, 1], 0.77, 0.3, DType::F64),
    ];
    let r1 = |ps: &[Tensor]| -> candle_core::Result<Tensor> {
        let out = c(r1_penalty(|x: &Tensor| tiny_d(x, ps), &real))?;
        assert_eq!(out.logits.dims(), &[2, 1]);
        Ok(out.penalty)
    };
    for (i, g) in check_grads(r1, &params, DEFAULT_EPS)
        .unwrap()
        .iter()
        .enumerate()
    {
        println!("R1 param {i}: max rel err {:.2e}", g.max_rel_err);
        assert!(g.has_grad, "R1: no second-order gradient for param {i}");
        g.assert_close(1e-6);
    }
    // The value: ||dD/dx||^2 per sample, batch mean, by finite differences of D itself.
    let v = r1(&params).unwrap().to_scalar::<f64>().unwrap();
    let gx = check_grad(|x| tiny_d(x, &params)?.sum_all(), &real, DEFAULT_EPS).unwrap();
    let want = gx.numeric.iter().map(|g| g * g).sum::<f64>() / 2.0;
    assert!((v - want).abs() < 1e-6 * want, "{v} vs {want}");
}

#[test]
fn lpips_alex_and_vgg_gradients() {
    for (net, lin, size) in [
        (LpipsNet::Alex, weights::LPIPS_ALEX_LIN, 32),
        (LpipsNet::Vgg, weights::LPIPS_VGG_LIN, 16),
    ] {
        let m = Lpips::new(
            net,
            synthetic_var_builder(DType::F64, &Device::Cpu),
            shipped(lin, DType::F64),
        )
        .unwrap();
        let (x, y) = crop_pair(size);
        let f = |x: &Tensor| c(m.distance_unchecked(x, &y))?.sum_all();
        check_patch(
            &format!("LPIPS-{}", net.name()),
            &f,
            &x,
            (size / 2 - 1, size / 2 - 1),
            2,
            TOL,
        );
    }
}

#[test]
fn stlpips_alex_real_weights_gradient() {
    let m = StLpips::from_dir(
        LpipsNet::Alex,
        &shipped_weights_dir(),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let (x, y) = crop_pair(24);
    let f = |x: &Tensor| c(m.loss(x, &y));
    check_patch("ST-LPIPS-alex (real)", &f, &x, (10, 11), 3, TOL);
}

/// An ST-LPIPS vgg state dict from the formula, except the scaling layer (the reference
/// constants) and the BlurPool filters (binomial in channel 0, distinct elsewhere so that the
/// per-channel path runs).
fn st_vgg_synthetic(dtype: DType) -> VarBuilder<'static> {
    let spec = backbones::weights::record_params(|vb| {
        StLpips::new(LpipsNet::Vgg, vb).map_err(|e| backbones::BackboneError::Config(e.to_string()))
    })
    .unwrap();
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    for (k, shape) in spec {
        let v = if k == "scaling_layer.shift" {
            Tensor::new(&[-0.030f64, -0.088, -0.188], &dev)
                .unwrap()
                .reshape((1, 3, 1, 1))
                .unwrap()
        } else if k == "scaling_layer.scale" {
            Tensor::new(&[0.458f64, 0.448, 0.450], &dev)
                .unwrap()
                .reshape((1, 3, 1, 1))
                .unwrap()
        } else if k.ends_with(".filt") {
            let b = Tensor::new(&[1f64, 2., 1., 2., 4., 2., 1., 2., 1.], &dev).unwrap() / 16.0;
            let b = b.unwrap().reshape((1, 1, 3, 3)).unwrap();
            let mut v = vec![b.clone()];
            for ch in 1..shape[0] {
                v.push((&b * (1.0 + 0.01 * (ch % 7) as f64)).unwrap());
            }
            Tensor::cat(&v, 0).unwrap()
        } else {
            synthetic_tensor(&k, &Shape::from(shape.clone()), DType::F64, &dev).unwrap()
        };
        t.insert(k, v);
    }
    VarBuilder::from_tensors(t, dtype, &dev)
}

#[test]
fn stlpips_vgg_gradient_and_min_size() {
    let m = StLpips::new(LpipsNet::Vgg, st_vgg_synthetic(DType::F64)).unwrap();
    assert_eq!(m.min_size(), 18);
    let (x, y) = crop_pair(20);
    let f = |x: &Tensor| c(m.distance_unchecked(x, &y))?.sum_all();
    check_patch("ST-LPIPS-vgg (formula)", &f, &x, (9, 9), 2, TOL);
}

#[test]
fn dists_gradient() {
    let m = Dists::new(
        synthetic_var_builder(DType::F64, &Device::Cpu),
        shipped(weights::DISTS_ALPHA_BETA, DType::F64),
    )
    .unwrap();
    let (x, y) = crop_pair(16);
    let (x, y) = (x.affine(0.5, 0.5).unwrap(), y.affine(0.5, 0.5).unwrap());
    let f = |x: &Tensor| c(m.loss(x, &y));
    check_patch("DISTS", &f, &x, (7, 7), 2, TOL);
}

fn small_moco(dtype: DType) -> MocoLoss {
    let net = ResNet::new(
        ResNetConfig::moco_v2(),
        synthetic_var_builder(dtype, &Device::Cpu),
    )
    .unwrap();
    MocoLoss::new(
        net,
        MocoConfig {
            input_size: 32,
            imagenet_normalize: false,
        },
    )
    .unwrap()
}

#[test]
fn moco_gradient_through_nearest_resize() {
    let m = small_moco(DType::F64);
    // 20 -> 32: nearest upsampling repeats rows/columns, so index_select's backward must add.
    let (x, y) = crop_pair(20);
    let f = |x: &Tensor| c(m.loss(x, &y));
    // 1 - cos is ~1e-4 here (formula weights make the pooled features bias-dominated), so
    // ResNet-50's f64 rounding (~1e-15) over a 1e-6 step leaves ~1e-9 of noise on gradients of
    // ~1e-4: tolerance 5e-5. (A 1e-4 step is worse: ReLU/max-pool kinks get crossed.)
    check_patch("MoCo (formula R50)", &f, &x, (8, 8), 2, 5e-5);
}

#[test]
fn similarity_loss_gradient() {
    let st = StLpips::from_dir(
        LpipsNet::Alex,
        &shipped_weights_dir(),
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let s = SimilarityLoss::new(Perceptual::StLpips(st), Some(small_moco(DType::F64)));
    assert!(s.notes().is_empty());
    let (x, y) = crop_pair(24);
    let f = |x: &Tensor| Ok(c(s.forward(x, &y))?.total);
    check_patch("L_sim (ST-LPIPS+MoCo)", &f, &x, (11, 10), 2, TOL);
}
