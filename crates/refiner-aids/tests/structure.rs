//! The structure net of the optional structure loss: shapes and names, the loss against an
//! explicit f64 computation and finite differences, the upsampling's gradient, training on a
//! toy segmentation task with exact resume, and the export / load round trip with its errors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use e4e_encoder::TensorPairs;
use e4e_encoder::testing::max_abs_diff;
use hyperstyle_refiner::train::run_training;
use refiner_aids::structure::{
    FeatureTarget, NUM_CLASSES, STRUCTURE_JSON, STRUCTURE_WEIGHTS, StructureBundle, StructureNet,
    StructureNetConfig, StructureTrainConfig, StructureTrainer, label_classes, one_hot,
    structure_feature_distance, structure_loss,
};
use s2m_train::Schedule;
use s2m_train::gradcheck::check_grad;

fn tiny() -> StructureNetConfig {
    StructureNetConfig {
        width: 4,
        levels: 2,
    }
}

#[test]
fn names_shapes_and_bad_input() {
    let (net, vars) = StructureNet::seeded(StructureNetConfig::default(), 1, &Device::Cpu).unwrap();
    let data = vars.data().lock().unwrap();
    let count: usize = data.values().map(|v| v.elem_count()).sum();
    // Double 3x3 convs (weights + biases) at widths 16, 32, 64, mid 128, up 64, 32, 16, head.
    let dc = |i: usize, o: usize| i * o * 9 + o + o * o * 9 + o;
    let want = dc(3, 16)
        + dc(16, 32)
        + dc(32, 64)
        + dc(64, 128)
        + dc(128 + 64, 64)
        + dc(64 + 32, 32)
        + dc(32 + 16, 16)
        + 16 * NUM_CLASSES
        + NUM_CLASSES;
    assert_eq!(count, want);
    for key in [
        "down.0.a.weight",
        "down.2.b.bias",
        "mid.a.weight",
        "up.0.b.weight",
        "head.weight",
    ] {
        assert!(data.contains_key(key), "{key}");
    }
    assert_eq!(data["up.2.a.weight"].dims(), &[64, 192, 3, 3]);
    drop(data);
    let x = s2m_core::testing::randn(&[2, 3, 16, 24], 1);
    assert_eq!(net.forward(&x).unwrap().dims(), &[2, NUM_CLASSES, 16, 24]);
    for bad in [[2, 3, 12, 16], [2, 1, 16, 16]] {
        let e = net
            .forward(&s2m_core::testing::randn(&bad, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("structure net input"), "{e}");
    }
    let e = StructureNet::seeded(
        StructureNetConfig {
            width: 0,
            levels: 2,
        },
        1,
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("width"), "{e}");
}

/// Label maps `[n, 16, 16]` (class_id * 16 + instance) and images in which every class has
/// its own colour (plus noise): a toy segmentation task.
fn toy(n: usize, seed: u64) -> TensorPairs {
    let colours = [
        [-0.8f32, -0.8, -0.8],
        [0.9, 0.9, 0.2],
        [0.2, -0.4, 0.8],
        [0.8, -0.2, -0.2],
        [-0.3, 0.7, -0.5],
    ];
    let mut labels = vec![0u8; n * 256];
    let mut img = vec![0f32; n * 3 * 256];
    let noise: Vec<f32> = s2m_core::testing::randn(&[n * 3 * 256], seed)
        .to_vec1()
        .unwrap();
    for b in 0..n {
        let shift = (b * 3) % 5;
        for y in 0..16 {
            for x in 0..16 {
                let class = if y < 3 {
                    2
                } else if (x + shift) % 16 < 4 {
                    3
                } else if y > 12 {
                    4
                } else if (6..11).contains(&x) && (4..10).contains(&y) {
                    1
                } else {
                    0
                };
                labels[b * 256 + y * 16 + x] = if class == 0 { 0 } else { class * 16 };
                for (c, v) in colours[class as usize].iter().enumerate() {
                    let i = b * 768 + c * 256 + y * 16 + x;
                    img[i] = v + 0.1 * noise[i];
                }
            }
        }
    }
    TensorPairs {
        images: Tensor::from_vec(img, (n, 3, 16, 16), &Device::Cpu).unwrap(),
        sketches: Tensor::zeros((n, 1, 16, 16), DType::F32, &Device::Cpu).unwrap(),
        masks: Some(Tensor::from_vec(labels, (n, 16, 16), &Device::Cpu).unwrap()),
        description: "toy".into(),
    }
}

#[test]
fn loss_matches_an_explicit_computation_and_finite_differences() {
    let dev = Device::Cpu;
    // Sample 0 has uvula (two instances) and tongue; sample 1 only background and tonsil.
    let labels = Tensor::from_vec(
        vec![16u8, 17, 0, 64, 0, 0, 48, 49, 0, 0, 0, 48],
        (2, 2, 3),
        &dev,
    )
    .unwrap();
    let classes = label_classes(&labels).unwrap();
    assert_eq!(
        classes.flatten_all().unwrap().to_vec1::<u32>().unwrap(),
        vec![1, 1, 0, 4, 0, 0, 3, 3, 0, 0, 0, 3]
    );
    let target = one_hot(&classes).unwrap();
    let logits = (s2m_core::testing::randn(&[2, NUM_CLASSES, 2, 3], 5) * 2.0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let terms = structure_loss(&logits, &target).unwrap();
    let l: Vec<f64> = logits.flatten_all().unwrap().to_vec1().unwrap();
    let c: Vec<u32> = classes.flatten_all().unwrap().to_vec1().unwrap();
    let (mut ce, mut dice, mut count) = (0f64, 0f64, 0f64);
    let mut p = vec![0f64; l.len()];
    for b in 0..2 {
        for px in 0..6 {
            let at = |k: usize| b * NUM_CLASSES * 6 + k * 6 + px;
            let z: f64 = (0..NUM_CLASSES).map(|k| l[at(k)].exp()).sum();
            for k in 0..NUM_CLASSES {
                p[at(k)] = l[at(k)].exp() / z;
            }
            ce -= (l[at(c[b * 6 + px] as usize)].exp() / z).ln();
        }
        for k in 1..NUM_CLASSES {
            let g = |px: usize| (c[b * 6 + px] as usize == k) as u8 as f64;
            let area: f64 = (0..6).map(g).sum();
            if area == 0.0 {
                continue;
            }
            let pk = |px: usize| p[b * NUM_CLASSES * 6 + k * 6 + px];
            let inter: f64 = (0..6).map(|px| pk(px) * g(px)).sum();
            let psum: f64 = (0..6).map(pk).sum();
            dice += 1.0 - 2.0 * inter / (psum + area);
            count += 1.0;
        }
    }
    let (ce, dice) = (ce / 12.0, dice / count);
    assert_eq!(count, 3.0);
    let got = |t: &Tensor| t.to_scalar::<f64>().unwrap();
    assert!((got(&terms.cross_entropy) - ce).abs() < 1e-12, "{ce}");
    assert!((got(&terms.dice) - dice).abs() < 1e-12, "{dice}");
    assert!((got(&terms.total) - ce - dice).abs() < 1e-12);

    let check = check_grad(
        |x| Ok(structure_loss(x, &target).unwrap().total),
        &logits,
        1e-6,
    )
    .unwrap();
    assert!(check.has_grad && check.max_rel_err < 1e-6, "{check:?}");

    // A perfect, confident prediction costs (almost) nothing; no structure: Dice term 0.
    let perfect = (target.to_dtype(DType::F64).unwrap() * 40.0).unwrap();
    assert!(got(&structure_loss(&perfect, &target).unwrap().total) < 1e-9);
    let bg = one_hot(&Tensor::zeros((1, 2, 3), DType::U32, &dev).unwrap()).unwrap();
    let t = structure_loss(&logits.narrow(0, 0, 1).unwrap(), &bg).unwrap();
    assert_eq!(got(&t.dice), 0.0);
    // Bad input: class id 5, mismatched shapes.
    let e = label_classes(&Tensor::new(&[[[80u8]]], &dev).unwrap()).unwrap_err();
    assert!(e.to_string().contains("class id"), "{e}");
    let e = structure_loss(&logits.narrow(0, 0, 1).unwrap(), &target).unwrap_err();
    assert!(e.to_string().contains("structure logits"), "{e}");
}

/// The tiny net with seed 3 in f64.
fn f64_net() -> StructureNet {
    let cfg = tiny();
    let (_, vars) = StructureNet::seeded(cfg.clone(), 3, &Device::Cpu).unwrap();
    let tensors: HashMap<String, Tensor> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().to_dtype(DType::F64).unwrap()))
        .collect();
    StructureNet::new(
        cfg,
        candle_nn::VarBuilder::from_tensors(tensors, DType::F64, &Device::Cpu),
    )
    .unwrap()
}

#[test]
fn the_net_is_differentiable_end_to_end() {
    // Gradient of the loss with respect to the input image, through convs, max-pools and the
    // hand-built nearest upsampling, against finite differences (f64 net).
    let net = f64_net();
    let pairs = toy(1, 4);
    let target = one_hot(&label_classes(pairs.masks.as_ref().unwrap()).unwrap()).unwrap();
    let image = pairs
        .images
        .narrow(2, 0, 8)
        .unwrap()
        .narrow(3, 0, 8)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let target = target.narrow(2, 0, 8).unwrap().narrow(3, 0, 8).unwrap();
    let check = check_grad(
        |x| {
            Ok(structure_loss(&net.forward(x).unwrap(), &target)
                .unwrap()
                .total)
        },
        &image,
        1e-6,
    )
    .unwrap();
    assert!(check.has_grad && check.max_rel_err < 1e-5, "{check:?}");
}

#[test]
fn feature_distance_matches_an_explicit_computation_and_finite_differences() {
    let net = f64_net();
    let x = s2m_core::testing::randn(&[2, 3, 8, 8], 8)
        .to_dtype(DType::F64)
        .unwrap();
    let y = s2m_core::testing::randn(&[2, 3, 8, 8], 9)
        .to_dtype(DType::F64)
        .unwrap();
    let got = structure_feature_distance(&net, &x, &y)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let (fx, fy) = (net.features(&x).unwrap(), net.features(&y).unwrap());
    assert_eq!(fx.len(), 3); // 2 levels + the middle block
    let mut want = 0.0;
    for (a, b) in fx.iter().zip(&fy) {
        let (bn, c, h, w) = a.dims4().unwrap();
        let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
        let mut sum = 0.0;
        for n in 0..bn {
            for p in 0..h * w {
                let at = |k: usize| n * c * h * w + k * h * w + p;
                let norm = |v: &Vec<f64>| {
                    ((0..c).map(|k| v[at(k)].powi(2)).sum::<f64>() + 1e-20).sqrt() + 1e-10
                };
                let (na, nb) = (norm(&a), norm(&b));
                sum += (0..c)
                    .map(|k| (a[at(k)] / na - b[at(k)] / nb).powi(2))
                    .sum::<f64>();
            }
        }
        want += sum / (bn * h * w) as f64;
    }
    want /= 3.0;
    assert!(
        (got - want).abs() < 1e-12 * want.max(1.0),
        "{got} vs {want}"
    );
    assert!(want > 0.01);
    let same = structure_feature_distance(&net, &y, &y)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(same.abs() < 1e-20, "{same}");
    // The per-batch target (as training uses it) gives the same values, image after image.
    let target = FeatureTarget::new(&net, &y).unwrap();
    for image in [&x, &y] {
        let once = target
            .distance(&net, image)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let fresh = structure_feature_distance(&net, image, &y)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(once, fresh);
    }
    let y1 = y.narrow(0, 0, 1).unwrap();
    let check = check_grad(
        |x| Ok(structure_feature_distance(&net, x, &y1).unwrap()),
        &x.narrow(0, 0, 1).unwrap(),
        1e-6,
    )
    .unwrap();
    assert!(check.has_grad && check.max_rel_err < 1e-5, "{check:?}");
    // All-zero features (a net of zeros): a finite (zero) gradient, not 0 * inf = NaN.
    let (_, vars) = StructureNet::seeded(tiny(), 3, &Device::Cpu).unwrap();
    let zeros: HashMap<String, Tensor> = vars
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().zeros_like().unwrap()))
        .collect();
    let dead = StructureNet::from_tensors(tiny(), &zeros, "zeros", &Device::Cpu).unwrap();
    let var =
        candle_core::Var::from_tensor(&x.narrow(0, 0, 1).unwrap().to_dtype(DType::F32).unwrap())
            .unwrap();
    let y32 = y1.to_dtype(DType::F32).unwrap();
    let d = structure_feature_distance(&dead, var.as_tensor(), &y32).unwrap();
    let grads = d.backward().unwrap();
    let g: f32 = grads
        .get(var.as_tensor())
        .unwrap()
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(g.is_finite(), "{g}");
    let e = structure_feature_distance(&net, &x, &y1).unwrap_err();
    assert!(e.to_string().contains("feature distance"), "{e}");
}

fn train_config() -> StructureTrainConfig {
    StructureTrainConfig {
        net: tiny(),
        batch: 4,
        lr: 1e-2,
        // Sample strips and checkpoints only at the end of a run.
        schedule: Schedule {
            seed: 7,
            log_every: 1,
            ..Schedule::default()
        }
        .only_at_end(),
        val_samples: 4,
        ..StructureTrainConfig::default()
    }
}

fn weights(t: &StructureTrainer, dir: &std::path::Path) -> HashMap<String, Tensor> {
    t.export(dir, None).unwrap();
    candle_core::safetensors::load(dir.join(STRUCTURE_WEIGHTS), &Device::Cpu).unwrap()
}

#[test]
fn trains_on_a_toy_task_resumes_exactly_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = toy(8, 1);
    let held_out = toy(4, 2);
    let mut t = StructureTrainer::open(train_config(), dir.path().join("a"), &Device::Cpu).unwrap();
    let before = t.held_out_dice(&held_out, 3).unwrap();
    let stats: Vec<_> = (0..120).map(|_| t.train_step(&data).unwrap()).collect();
    let after = t.held_out_dice(&held_out, 3).unwrap();
    let first = stats[..5].iter().map(|s| s.total).sum::<f64>();
    let last = stats[115..].iter().map(|s| s.total).sum::<f64>();
    assert!(last < 0.5 * first, "{first} -> {last}");
    assert!(
        after.mean > before.mean + 0.3 && after.per_class.iter().all(|&d| d > 0.6),
        "{before:?} -> {after:?}"
    );

    // 6 steps, close, reopen, 4 more == 10 straight (augmentation and order are seeded).
    let run = |name: &str, split: bool| {
        let out = dir.path().join(name);
        let mut t = StructureTrainer::open(train_config(), &out, &Device::Cpu).unwrap();
        if split {
            run_training(&mut t, &data, 6, None, |_| {}).unwrap();
            drop(t);
            t = StructureTrainer::open(train_config(), &out, &Device::Cpu).unwrap();
            assert_eq!(t.step(), 6);
        }
        run_training(&mut t, &data, 10, None, |_| {}).unwrap();
        weights(&t, &out.join("w"))
    };
    let (straight, resumed) = (run("s", false), run("r", true));
    for (k, v) in &straight {
        assert_eq!(max_abs_diff(v, &resumed[k]), 0.0, "{k}");
    }
    // Another net config in the same folder is refused.
    let e = StructureTrainer::open(
        StructureTrainConfig {
            net: StructureNetConfig {
                width: 6,
                levels: 2,
            },
            ..train_config()
        },
        dir.path().join("r"),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("other settings") && e.contains("net."), "{e}");

    // Export / load: same logits; the held-out DICE is recorded.
    let export = dir.path().join("export");
    assert_eq!(after.data, "toy");
    let meta = t.export(&export, Some(after.clone())).unwrap();
    assert_eq!(meta.held_out, Some(after));
    let bundle = StructureBundle::load(&export, &Device::Cpu).unwrap();
    let x = held_out.images.clone();
    let diff = max_abs_diff(
        &bundle.net.forward(&x).unwrap(),
        &t.net().forward(&x).unwrap(),
    );
    assert_eq!(diff, 0.0);

    // Bad folders: missing json, changed weights (sha256), a missing key (named).
    let e = StructureBundle::load(&dir.path().join("nope"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not found"), "{e}");
    let mut w =
        candle_core::safetensors::load(export.join(STRUCTURE_WEIGHTS), &Device::Cpu).unwrap();
    w.remove("head.bias");
    candle_core::safetensors::save(&w, export.join(STRUCTURE_WEIGHTS)).unwrap();
    let e = StructureBundle::load(&export, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sha256"), "{e}");
    let e = StructureNet::from_tensors(tiny(), &w, "test file", &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("head.bias"), "{e}");
    std::fs::remove_file(export.join(STRUCTURE_JSON)).unwrap();
    let e = StructureBundle::load(&export, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains(STRUCTURE_JSON), "{e}");

    // Data without label maps is refused with a clear error.
    let plain = TensorPairs {
        masks: None,
        ..data.clone()
    };
    let e = t.train_step(&plain).unwrap_err().to_string();
    assert!(e.contains("label maps"), "{e}");
}

#[test]
fn shipped_training_config_parses_and_serialises_with_the_same_keys() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../weights/structure_phantom64/structure.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let training = meta["training"].clone();
    let cfg: StructureTrainConfig = serde_json::from_value(training.clone()).unwrap();
    cfg.validate().unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), training);
}

#[test]
fn a_zero_cadence_is_refused_with_its_name() {
    let mut cfg = train_config();
    cfg.schedule.sample_every = 0;
    let e = cfg.validate().unwrap_err();
    assert!(e.to_string().contains("sample_every must be >= 1"), "{e}");
}
