//! Phase 2 (H with E and G frozen): overfitting a fixed batch, exact resume, export / load
//! round trip, no gradient into G, bad inputs. Tiny models (`e4e_encoder::testing`), CPU.

use std::path::{Path, PathBuf};

use candle_core::Device;
use e4e_encoder::testing::{
    max_abs_diff, reachable_pairs, tiny_encoder_config, tiny_generator, tiny_generator_config,
    tiny_generator_from_vars,
};
use e4e_encoder::{EncoderTrainConfig, EncoderTrainer, PairDataset, TensorPairs};
use hyperstyle_refiner::train::{RefinerStepStats, run_training};
use hyperstyle_refiner::{
    HyperConfig, HyperNetwork, RefinerBundle, RefinerError, RefinerTrainConfig, RefinerTrainer,
};
use losses::SimilarityLoss;

fn loss() -> SimilarityLoss {
    SimilarityLoss::cpu_default(&losses::weights::shipped_weights_dir()).unwrap()
}

fn config() -> RefinerTrainConfig {
    RefinerTrainConfig {
        hyper: HyperConfig::tiny_test(),
        batch: 2,
        lr: 1e-3,
        seed: 3,
        sample_every: 0,
        checkpoint_every: 0,
        log_every: 1,
        val_samples: 2,
        ..RefinerTrainConfig::default()
    }
}

/// A fresh (untrained) encoder exported for the tiny generator `g_seed`.
fn encoder_export(dir: &Path, g_seed: u64) -> PathBuf {
    let cfg = EncoderTrainConfig {
        encoder: tiny_encoder_config(),
        latent_avg_samples: 256,
        ..EncoderTrainConfig::default()
    };
    let t = EncoderTrainer::open(
        cfg,
        tiny_generator(g_seed).unwrap(),
        loss(),
        dir.join("enc_run"),
        &Device::Cpu,
    )
    .unwrap();
    let export = dir.join("enc_export");
    t.export(&export).unwrap();
    export
}

fn try_open(
    cfg: RefinerTrainConfig,
    encoder: &Path,
    out: &Path,
) -> hyperstyle_refiner::Result<RefinerTrainer> {
    RefinerTrainer::open(
        cfg,
        tiny_generator(1).unwrap(),
        encoder,
        loss(),
        out,
        &Device::Cpu,
    )
}

fn open(cfg: RefinerTrainConfig, encoder: &Path, out: &Path) -> RefinerTrainer {
    try_open(cfg, encoder, out).unwrap()
}

/// The error of opening a run that must be refused.
fn open_err(cfg: RefinerTrainConfig, encoder: &Path, out: &Path) -> String {
    match try_open(cfg, encoder, out) {
        Ok(_) => panic!("opening {} must fail", out.display()),
        Err(e) => e.to_string(),
    }
}

fn data(n: usize) -> TensorPairs {
    reachable_pairs(&tiny_generator(1).unwrap(), n, 32, 11).unwrap()
}

fn without_time(s: &RefinerStepStats) -> RefinerStepStats {
    RefinerStepStats {
        seconds: 0.0,
        ..s.clone()
    }
}

#[test]
fn loss_decreases_on_a_fixed_batch_and_every_iteration_has_a_loss() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("run"));
    let stats: Vec<_> = (0..12).map(|_| t.train_step(&data).unwrap()).collect();
    assert!(stats.iter().all(|s| s.sim_t.len() == 3));
    let last_iter = |s: &RefinerStepStats| s.sim_t[2];
    let first = stats[..3].iter().map(last_iter).sum::<f64>() / 3.0;
    let last = stats[9..].iter().map(last_iter).sum::<f64>() / 3.0;
    assert!(last < 0.8 * first, "L_sim(ŷ_3) {first} -> {last}");
    // E is frozen: its loss on the fixed batch does not move (up to the batch order).
    assert!((stats[0].sim_e - stats[11].sim_e).abs() < 1e-5 * stats[0].sim_e);
    // H helps the frozen E on the batch it was fitted to.
    assert!(
        last < stats[11].sim_e,
        "{last} vs E alone {}",
        stats[11].sim_e
    );
}

#[test]
fn resumed_training_equals_uninterrupted_training() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(4);
    let mut straight = open(config(), &enc, &dir.path().join("a"));
    let a: Vec<_> = (0..3)
        .map(|_| straight.train_step(&data).unwrap())
        .collect();

    let mut first = open(config(), &enc, &dir.path().join("b"));
    let mut b = vec![first.train_step(&data).unwrap()];
    first.save_checkpoint().unwrap();
    drop(first);
    let mut resumed = open(config(), &enc, &dir.path().join("b"));
    assert_eq!(resumed.step(), 1);
    b.extend((0..2).map(|_| resumed.train_step(&data).unwrap()));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(without_time(x), without_time(y));
    }
}

#[test]
fn run_exports_and_the_bundle_loads() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("run"));
    run_training(&mut t, &data, 1, None, |_| {}).unwrap();
    for f in ["loss.png", "samples/final.png", "log.csv", "checkpoints"] {
        assert!(dir.path().join("run").join(f).exists(), "{f}");
    }
    let export = dir.path().join("run/export");
    let meta = t.export(&export).unwrap();
    assert_eq!(meta.steps, 1);
    assert_eq!(meta.iterations, 3);
    assert_eq!(meta.generator.sha256, t.generator().sha256());
    assert_eq!(meta.encoder.sha256, t.encoder().meta.encoder_sha256);

    let bundle = RefinerBundle::load(&export, &tiny_generator_config(), &Device::Cpu).unwrap();
    assert_eq!(bundle.meta, meta);
    let sketch = data.sketches.clone();
    let w = t.encoder().embed(&sketch).unwrap();
    let w_plus = e4e_encoder::Encoder::to_w_plus(&w, tiny_generator_config().n_latent()).unwrap();
    let out = hyperstyle_refiner::refine(
        &bundle.hypernet,
        t.generator().generator(),
        &sketch,
        &w_plus,
        3,
        stylegan2::NoiseMode::Const,
    )
    .unwrap();
    let want = t.refine_images(&sketch).unwrap();
    assert_eq!(out.images.len(), 4);
    // The loaded bundle holds plain tensors and takes the CPU inference kernels (one-pass
    // BatchNorm and resize, block-GEMM convolutions), which round differently from the trainer's
    // tracked ops: equal within f32 rounding (images in [-1, 1]).
    for (a, b) in out.images.iter().zip(&want) {
        let d = max_abs_diff(a, b);
        assert!(d < 1e-4, "bundle vs trainer refinement: {d}");
    }

    // Another generator config is refused; missing files are named.
    let other = stylegan2::StyleGan2Config {
        style_dim: 16,
        ..tiny_generator_config()
    };
    let e = RefinerBundle::load(&export, &other, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refiner.json") && e.contains("generator config"),
        "{e}"
    );
    for f in ["refiner.json", "refiner.safetensors"] {
        let d = dir.path().join(format!("no_{f}"));
        std::fs::create_dir_all(&d).unwrap();
        for g in ["refiner.json", "refiner.safetensors"] {
            if g != f {
                std::fs::copy(export.join(g), d.join(g)).unwrap();
            }
        }
        let e = RefinerBundle::load(&d, &tiny_generator_config(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains(f), "missing {f}: {e}");
    }
}

#[test]
fn no_gradient_reaches_the_generator_or_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let cfg = tiny_generator_config();
    let (g, vars) = tiny_generator_from_vars(1).unwrap();
    // Same weights as tiny_generator(1), so the encoder's recorded hash matches.
    let t = RefinerTrainer::open(
        config(),
        g,
        &enc,
        loss(),
        dir.path().join("r"),
        &Device::Cpu,
    )
    .unwrap();
    let pairs = data(2).load(&[0, 1], &Device::Cpu).unwrap();
    let (grads, losses) = t.accumulated_gradients(&pairs).unwrap();
    assert_eq!(losses.sim_t.len(), 3);
    for (name, v) in &vars {
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "gradient reached G's {name}"
        );
    }
    let h = e4e_encoder::run::trainable_vars(t.hypernet_vars());
    for (name, v) in &h {
        assert!(
            grads.get(v.as_tensor()).is_some(),
            "no gradient for H's {name}"
        );
    }
    // E's weights are plain tensors loaded from the export: none is a Var.
    let n_params = HyperNetwork::parameter_shapes(&HyperConfig::tiny_test(), &cfg)
        .unwrap()
        .len();
    assert!(h.len() < n_params, "BatchNorm statistics are not trained");
}

#[test]
fn mismatched_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An encoder trained with another generator.
    let enc_other = encoder_export(&dir.path().join("other"), 2);
    let err = open_err(config(), &enc_other, &dir.path().join("r1"));
    assert!(err.contains("generator sha256"), "{err}");
    // A missing encoder bundle is named.
    let err = open_err(
        config(),
        &dir.path().join("no_encoder"),
        &dir.path().join("r2"),
    );
    assert!(err.contains("no_encoder"), "{err}");
    // Sketches with 3 channels.
    let enc = encoder_export(dir.path(), 1);
    let mut t = open(config(), &enc, &dir.path().join("r3"));
    let good = data(2);
    let bad = TensorPairs {
        sketches: candle_core::Tensor::cat(&[&good.sketches, &good.sketches, &good.sketches], 1)
            .unwrap(),
        ..good
    };
    let e = t.train_step(&bad).unwrap_err();
    assert!(
        matches!(&e, RefinerError::Training(b) if matches!(**b, e4e_encoder::TrainError::Data(_))),
        "{e}"
    );
}

#[test]
fn sketch_weighted_mse_matches_an_explicit_computation() {
    use candle_core::Tensor;
    use hyperstyle_refiner::{sketch_stroke_mask, sketch_weighted_mse};
    let dev = Device::Cpu;
    // A 1 x 1 x 5 x 5 sketch (white = 1) with one ink pixel at (2, 1).
    let mut page = vec![1f32; 25];
    page[2 * 5 + 1] = -1.0;
    let sketch = Tensor::from_vec(page, (1, 1, 5, 5), &dev).unwrap();
    let mask = sketch_stroke_mask(&sketch, 5).unwrap();
    let m: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
    for y in 0..5 {
        for x in 0..5usize {
            let want = if (1..=3).contains(&y) && x <= 2 {
                1.0
            } else {
                0.0
            };
            assert_eq!(m[y * 5 + x], want, "mask at ({y}, {x})");
        }
    }
    // Upsampled to a 10 x 10 image: nearest neighbour.
    assert_eq!(
        sketch_stroke_mask(&sketch, 10).unwrap().dims(),
        &[1, 1, 10, 10]
    );

    let image = s2m_core::testing::randn(&[1, 3, 5, 5], 1);
    let target = s2m_core::testing::randn(&[1, 3, 5, 5], 2);
    let got: f32 = sketch_weighted_mse(&image, &target, &mask)
        .unwrap()
        .to_scalar()
        .unwrap();
    let a: Vec<f32> = image.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = target.flatten_all().unwrap().to_vec1().unwrap();
    let (mut num, mut den) = (0f64, 0f64);
    for c in 0..3 {
        for p in 0..25 {
            let d = (a[c * 25 + p] - b[c * 25 + p]) as f64;
            num += m[p] as f64 * d * d;
            den += m[p] as f64;
        }
    }
    assert!(
        ((got as f64) - num / den).abs() < 1e-5 * (num / den),
        "{got} vs {}",
        num / den
    );
    // A blank sketch weighs nothing (no NaN).
    let blank = Tensor::ones((1, 1, 5, 5), candle_core::DType::F32, &dev).unwrap();
    let zero_mask = sketch_stroke_mask(&blank, 5).unwrap();
    let v: f32 = sketch_weighted_mse(&image, &target, &zero_mask)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(v, 0.0);
}

#[test]
fn sketch_weighted_term_trains_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let cfg = RefinerTrainConfig {
        sketch_l2_lambda: 2.0,
        ..config()
    };
    let mut t = open(cfg, &enc, &dir.path().join("run"));
    let stats: Vec<_> = (0..10).map(|_| t.train_step(&data).unwrap()).collect();
    let v: Vec<f64> = stats.iter().map(|s| s.sketch_l2_last.unwrap()).collect();
    assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
    let first = v[..3].iter().sum::<f64>();
    let last = v[7..].iter().sum::<f64>();
    assert!(last < first, "sketch-weighted MSE {first} -> {last}");
    let log = std::fs::read_to_string(dir.path().join("run/log.csv")).unwrap();
    assert!(
        log.lines().next().unwrap().contains("sketch_l2_last"),
        "{log}"
    );
    let meta = t.export(&dir.path().join("run/export")).unwrap();
    assert_eq!(meta.sketch_l2, 2.0);
}

#[test]
fn init_from_an_export_copies_its_weights_and_survives_resume() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let data = data(2);
    let mut t = open(config(), &enc, &dir.path().join("base"));
    t.train_step(&data).unwrap();
    let export = dir.path().join("base/export");
    let meta = t.export(&export).unwrap();

    // A fresh run with another seed, initialised from the export: the same H.
    let cfg = RefinerTrainConfig {
        seed: 99,
        init_from: Some(export.clone()),
        ..config()
    };
    let mut ft = open(cfg.clone(), &enc, &dir.path().join("ft"));
    assert_eq!(ft.step(), 0);
    let init = ft.init().unwrap().clone();
    assert_eq!(
        (init.sha256.as_str(), init.steps),
        (meta.refiner_sha256.as_str(), 1)
    );
    let sketch = data.sketches.clone();
    let (a, b) = (
        t.refine_images(&sketch).unwrap(),
        ft.refine_images(&sketch).unwrap(),
    );
    assert_eq!(max_abs_diff(&a[3], &b[3]), 0.0);
    // Without init_from, seed 99 gives another H.
    let other = open(
        RefinerTrainConfig {
            seed: 99,
            ..config()
        },
        &enc,
        &dir.path().join("fresh"),
    );
    assert!(max_abs_diff(&a[3], &other.refine_images(&sketch).unwrap()[3]) > 0.0);

    // The warm start is recorded in checkpoints and exports, across a resume.
    ft.train_step(&data).unwrap();
    ft.save_checkpoint().unwrap();
    drop(ft);
    let resumed = open(
        RefinerTrainConfig {
            init_from: None,
            ..cfg
        },
        &enc,
        &dir.path().join("ft"),
    );
    assert_eq!(resumed.step(), 1);
    let m = resumed.export(&dir.path().join("ft/export")).unwrap();
    assert_eq!(m.init, Some(init));

    // Another H config is refused, naming the file.
    let bad = RefinerTrainConfig {
        init_from: Some(export.clone()),
        hyper: HyperConfig {
            refine_inner: HyperConfig::tiny_test().refine_inner + 1,
            ..HyperConfig::tiny_test()
        },
        ..config()
    };
    let e = open_err(bad, &enc, &dir.path().join("bad"));
    assert!(e.contains("refiner.json") && e.contains("init_from"), "{e}");

    // A weights file without one of H's tensors (metadata and sha256 consistent) is refused,
    // naming the key and the file.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let mut tensors =
        candle_core::safetensors::load(export.join("refiner.safetensors"), &Device::Cpu).unwrap();
    let mut keys: Vec<String> = tensors.keys().cloned().collect();
    keys.sort();
    let dropped = keys[0].clone();
    tensors.remove(&dropped);
    let weights = broken.join("refiner.safetensors");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("refiner.json")).unwrap())
            .unwrap();
    json["refiner_sha256"] = e4e_encoder::run::sha256_file(&weights).unwrap().into();
    std::fs::write(broken.join("refiner.json"), json.to_string()).unwrap();
    let cfg = RefinerTrainConfig {
        init_from: Some(broken),
        ..config()
    };
    let e = open_err(cfg, &enc, &dir.path().join("broken_run"));
    assert!(
        e.contains(&dropped) && e.contains("refiner.safetensors"),
        "{e}"
    );
}
