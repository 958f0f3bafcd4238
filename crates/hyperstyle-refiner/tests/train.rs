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
    let h = s2m_train::run::trainable_vars(t.hypernet_vars());
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

/// Trains 10 steps of `cfg` in `out` on `data` and checks the optional loss term `column`
/// (read from the stats by `term`): finite and >= 0 at every step, lower over the last 3 steps
/// than over the first 3, and a column of log.csv.
fn trains_with_term(
    cfg: RefinerTrainConfig,
    encoder: &Path,
    out: &Path,
    data: &dyn PairDataset,
    column: &str,
    term: fn(&RefinerStepStats) -> Option<f64>,
) -> RefinerTrainer {
    let mut t = open(cfg, encoder, out);
    let stats: Vec<_> = (0..10).map(|_| t.train_step(data).unwrap()).collect();
    let v: Vec<f64> = stats.iter().map(|s| term(s).unwrap()).collect();
    assert!(
        v.iter().all(|x| x.is_finite() && *x >= 0.0),
        "{column}: {v:?}"
    );
    let first = v[..3].iter().sum::<f64>();
    let last = v[7..].iter().sum::<f64>();
    assert!(last < first, "{column}: {first} -> {last}");
    let log = std::fs::read_to_string(out.join("log.csv")).unwrap();
    assert!(log.lines().next().unwrap().contains(column), "{log}");
    t
}

#[test]
fn sketch_weighted_term_trains_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let cfg = RefinerTrainConfig {
        sketch_l2_lambda: 2.0,
        ..config()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(cfg, &enc, &run, &data(2), "sketch_l2_last", |s| {
        s.sketch_l2_last
    });
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
    json["refiner_sha256"] = s2m_train::bundle::sha256_file(&weights).unwrap().into();
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

/// A seeded discriminator for the tiny generator, written as a StyleGAN2 training checkpoint
/// (its `d.*` tensors among others) and as a file of its tensors alone.
fn discriminator_files(dir: &Path) -> (stylegan2::Discriminator, PathBuf, PathBuf) {
    use std::collections::HashMap;
    let mut rng = s2m_core::rng::rng_from_seed(5);
    let (d, vars) = stylegan2::init::init_discriminator(
        &tiny_generator_config(),
        &mut rng,
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let bare = s2m_train::optim::varmap_tensors(&vars);
    let mut ckpt: HashMap<String, candle_core::Tensor> = bare
        .iter()
        .map(|(k, v)| (format!("d.{k}"), v.clone()))
        .collect();
    // Other parts of a training checkpoint are ignored (`d_opt.*` does not start with `d.`).
    for (k, v) in &bare {
        ckpt.insert(format!("d_opt.adam.m.{k}"), (v * 0.0).unwrap());
    }
    ckpt.insert(
        "g.noises.noise_0".into(),
        s2m_core::testing::randn(&[1, 1, 4, 4], 1),
    );
    let (ck_path, bare_path) = (dir.join("ckpt.safetensors"), dir.join("d.safetensors"));
    candle_core::safetensors::save(&ckpt, &ck_path).unwrap();
    candle_core::safetensors::save(&bare, &bare_path).unwrap();
    (d, ck_path, bare_path)
}

#[test]
fn discriminator_loads_from_a_checkpoint_or_a_bare_file_and_the_realism_loss_is_explicit() {
    use hyperstyle_refiner::{load_discriminator, realism_loss};
    let dir = tempfile::tempdir().unwrap();
    let (d, ck, bare) = discriminator_files(dir.path());
    let images = s2m_core::testing::randn(&[4, 3, 32, 32], 7);
    let want: Vec<f32> = d
        .forward(&images)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    for path in [&ck, &bare] {
        let (loaded, r) = load_discriminator(path, &tiny_generator_config(), &Device::Cpu).unwrap();
        let got: Vec<f32> = loaded
            .forward(&images)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{}", path.display());
        assert_eq!(r.file, path.display().to_string());
        assert_eq!(r.sha256.len(), 64);
        // mean softplus(-logit), in f64 by hand.
        let explicit = want
            .iter()
            .map(|&l| (1.0 + (-(l as f64)).exp()).ln())
            .sum::<f64>()
            / want.len() as f64;
        let v: f32 = realism_loss(&loaded, &images).unwrap().to_scalar().unwrap();
        assert!((v as f64 - explicit).abs() < 1e-5, "{v} vs {explicit}");
    }
    // Missing file, missing tensor, another generator's discriminator: named errors.
    let err = |p: &Path, cfg: &stylegan2::StyleGan2Config| {
        load_discriminator(p, cfg, &Device::Cpu)
            .unwrap_err()
            .to_string()
    };
    let missing = dir.path().join("nope.safetensors");
    let e = err(&missing, &tiny_generator_config());
    assert!(
        e.contains("nope.safetensors") && e.contains("does not exist"),
        "{e}"
    );
    let mut partial = candle_core::safetensors::load(&bare, &Device::Cpu).unwrap();
    partial.remove("final_linear.1.weight").unwrap();
    let cut = dir.path().join("cut.safetensors");
    candle_core::safetensors::save(&partial, &cut).unwrap();
    let e = err(&cut, &tiny_generator_config());
    assert!(
        e.contains("cut.safetensors") && e.contains("final_linear.1.weight"),
        "{e}"
    );
    let wider = stylegan2::StyleGan2Config {
        size: 64,
        ..tiny_generator_config()
    };
    let e = err(&bare, &wider);
    assert!(
        e.contains("d.safetensors") && e.contains("not a discriminator"),
        "{e}"
    );
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not safetensors").unwrap();
    let e = err(&junk, &tiny_generator_config());
    assert!(
        e.contains("junk.safetensors") && e.contains("unreadable"),
        "{e}"
    );
}

#[test]
fn realism_term_trains_is_logged_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let (_, ck, _) = discriminator_files(dir.path());
    let data = data(2);
    let cfg = RefinerTrainConfig {
        adv_lambda: 1.0,
        discriminator: Some(ck.clone()),
        ..config()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(cfg, &enc, &run, &data, "adv_last", |s| s.adv_last);
    let meta = t.export(&dir.path().join("run/export")).unwrap();
    assert_eq!(meta.losses.adv, 1.0);
    let r = meta.discriminator.unwrap();
    assert_eq!(r.file, ck.display().to_string());
    // Without the term nothing is logged or recorded.
    let mut plain = open(config(), &enc, &dir.path().join("plain"));
    assert_eq!(plain.train_step(&data).unwrap().adv_last, None);
    let meta = plain.export(&dir.path().join("plain/export")).unwrap();
    assert_eq!((meta.losses.adv, meta.discriminator), (0.0, None));
}

#[test]
fn realism_term_needs_a_discriminator_and_a_batch_it_can_group() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let (_, ck, _) = discriminator_files(dir.path());
    let with = |adv_lambda: f64, batch: usize, discriminator: Option<PathBuf>| RefinerTrainConfig {
        adv_lambda,
        batch,
        discriminator,
        ..config()
    };
    let missing = dir.path().join("missing.safetensors");
    for (i, (cfg, want)) in [
        (with(0.1, 2, None), "needs a discriminator"),
        (with(0.1, 6, Some(ck.clone())), "batch 6"),
        (with(0.1, 2, Some(missing)), "missing.safetensors"),
        (with(f64::NAN, 2, Some(ck.clone())), "adv_lambda"),
    ]
    .into_iter()
    .enumerate()
    {
        let e = open_err(cfg, &enc, &dir.path().join(format!("run{i}")));
        assert!(e.contains(want), "{want}: {e}");
    }
}

/// Label maps `[n, 32, 32]` u8: a left band of class 1, a centre square of class 3 (instance
/// 1), background elsewhere.
fn label_maps(n: usize) -> candle_core::Tensor {
    let mut v = vec![0u8; n * 32 * 32];
    for b in 0..n {
        for y in 0..32 {
            for x in 0..32 {
                let l = if x < 8 {
                    16
                } else if (12..20).contains(&x) && (12..20).contains(&y) {
                    49
                } else {
                    0
                };
                v[b * 1024 + y * 32 + x] = l;
            }
        }
    }
    candle_core::Tensor::from_vec(v, (n, 32, 32), &Device::Cpu).unwrap()
}

#[test]
fn region_colour_loss_matches_an_explicit_computation() {
    use candle_core::Tensor;
    use hyperstyle_refiner::region_colour_loss;
    let dev = Device::Cpu;
    // Two 3 x 2 x 3 images; sample 0: class 1 at two pixels (instances 0 and 1), class 4 at one;
    // sample 1: class 1 at one pixel, the rest background.
    let labels = Tensor::from_vec(
        vec![16u8, 17, 0, 64, 0, 0, 0, 0, 16, 0, 0, 0],
        (2, 2, 3),
        &dev,
    )
    .unwrap();
    let image = s2m_core::testing::randn(&[2, 3, 2, 3], 1);
    let target = s2m_core::testing::randn(&[2, 3, 2, 3], 2);
    let got: f32 = region_colour_loss(&image, &target, &labels)
        .unwrap()
        .to_scalar()
        .unwrap();
    let a: Vec<f32> = image.flatten_all().unwrap().to_vec1().unwrap();
    let t: Vec<f32> = target.flatten_all().unwrap().to_vec1().unwrap();
    let l: Vec<u8> = labels.flatten_all().unwrap().to_vec1().unwrap();
    let (mut sum, mut count) = (0f64, 0f64);
    for b in 0..2 {
        for class in 1..=4u8 {
            let pix: Vec<usize> = (0..6).filter(|&p| l[b * 6 + p] / 16 == class).collect();
            if pix.is_empty() {
                continue;
            }
            let mut sq = 0f64;
            for c in 0..3 {
                let at = |v: &Vec<f32>, p: usize| v[b * 18 + c * 6 + p] as f64;
                let d: f64 =
                    pix.iter().map(|&p| at(&a, p) - at(&t, p)).sum::<f64>() / pix.len() as f64;
                sq += d * d;
            }
            sum += sq / 3.0;
            count += 1.0;
        }
    }
    let want = sum / count;
    assert_eq!(count, 3.0);
    assert!(
        ((got as f64) - want).abs() < 1e-5 * want.max(1e-3),
        "{got} vs {want}"
    );

    // Moving colour around inside a region costs nothing; fading the region does.
    let labels = label_maps(1);
    let target = s2m_core::testing::randn(&[1, 3, 32, 32], 3);
    let zero = |img: &Tensor| -> f32 {
        region_colour_loss(img, &target, &labels)
            .unwrap()
            .to_scalar()
            .unwrap()
    };
    assert!(zero(&target) < 1e-12);
    let flipped = target.flip(&[2]).unwrap(); // the band x < 8 is symmetric in y
    let band_only = Tensor::from_vec(
        (0..1024)
            .map(|p| if p % 32 < 8 { 1u8 } else { 0 })
            .collect::<Vec<_>>(),
        (1, 32, 32),
        &dev,
    )
    .unwrap();
    let v: f32 = region_colour_loss(&flipped, &target, &(band_only * 16.0).unwrap())
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(v < 1e-10, "{v}");
    let faded = (&target * 0.5).unwrap();
    assert!(zero(&faded) > 1e-3);
    // No structure labelled: zero; label maps of another size: refused.
    let bg = Tensor::zeros((1, 32, 32), candle_core::DType::U8, &dev).unwrap();
    let v: f32 = region_colour_loss(&faded, &target, &bg)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(v, 0.0);
    let e = region_colour_loss(&faded, &target, &label_maps(2)).unwrap_err();
    assert!(e.to_string().contains("label maps"), "{e}");
}

#[test]
fn region_term_trains_is_logged_and_needs_label_maps() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let plain = data(2);
    let labelled = TensorPairs {
        masks: Some(label_maps(2)),
        ..plain.clone()
    };
    let cfg = RefinerTrainConfig {
        region_lambda: 5.0,
        ..config()
    };
    let run = dir.path().join("run");
    let mut t = trains_with_term(cfg, &enc, &run, &labelled, "region_last", |s| s.region_last);
    assert_eq!(
        t.export(&dir.path().join("run/export")).unwrap().region,
        5.0
    );

    // Data without label maps, or with label maps of another size: clear errors.
    let e = t.train_step(&plain).unwrap_err().to_string();
    assert!(e.contains("label maps"), "{e}");
    let wrong = TensorPairs {
        masks: Some(label_maps(2).narrow(1, 0, 16).unwrap()),
        ..plain.clone()
    };
    let e = t.train_step(&wrong).unwrap_err().to_string();
    assert!(e.contains("masks have shape"), "{e}");
    // Without the term, label maps are ignored and nothing is logged.
    let mut off = open(config(), &enc, &dir.path().join("off"));
    assert_eq!(off.train_step(&labelled).unwrap().region_last, None);
}

/// An untrained tiny structure net (width 4, 2 levels, init seed `seed`) exported to
/// `<dir>/structure`.
fn structure_export(dir: &Path, seed: u64) -> PathBuf {
    use hyperstyle_refiner::structure::{
        StructureNetConfig, StructureTrainConfig, StructureTrainer,
    };
    let net_dir = dir.join("structure");
    StructureTrainer::open(
        StructureTrainConfig {
            net: StructureNetConfig {
                width: 4,
                levels: 2,
            },
            seed,
            ..StructureTrainConfig::default()
        },
        dir.join("structure_run"),
        &Device::Cpu,
    )
    .unwrap()
    .export(&net_dir, None)
    .unwrap();
    net_dir
}

#[test]
fn structure_term_trains_is_logged_recorded_and_needs_its_net() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let net_dir = structure_export(dir.path(), 5);
    let plain = data(2);
    let labelled = TensorPairs {
        masks: Some(label_maps(2)),
        ..plain.clone()
    };
    let cfg = RefinerTrainConfig {
        structure_lambda: 5.0,
        structure_net: Some(net_dir.clone()),
        ..config()
    };
    let run = dir.path().join("run");
    let mut t = trains_with_term(cfg.clone(), &enc, &run, &labelled, "structure_last", |s| {
        s.structure_last
    });
    let meta = t.export(&dir.path().join("run/export")).unwrap();
    let r = meta.structure.unwrap();
    assert_eq!((r.lambda, r.dir), (5.0, net_dir.display().to_string()));
    assert_eq!(r.sha256.len(), 64);
    let e = t.train_step(&plain).unwrap_err().to_string();
    assert!(e.contains("label maps"), "{e}");

    // Without a net, or with a folder that is not one: refused, naming what is missing.
    let e = open_err(
        RefinerTrainConfig {
            structure_net: None,
            ..cfg.clone()
        },
        &enc,
        &dir.path().join("r1"),
    );
    assert!(e.contains("structure-net"), "{e}");
    let e = open_err(
        RefinerTrainConfig {
            structure_net: Some(dir.path().join("nope")),
            ..cfg
        },
        &enc,
        &dir.path().join("r2"),
    );
    assert!(e.contains("nope"), "{e}");
    let mut off = open(config(), &enc, &dir.path().join("off"));
    assert_eq!(off.train_step(&labelled).unwrap().structure_last, None);
}

#[test]
fn structure_feature_term_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let net_dir = structure_export(dir.path(), 0);
    // No label maps needed: the distance compares with the target image.
    let cfg = RefinerTrainConfig {
        structure_features_lambda: 5.0,
        structure_net: Some(net_dir),
        ..config()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(cfg, &enc, &run, &data(2), "structure_features_last", |s| {
        s.structure_features_last
    });
    let r = t
        .export(&dir.path().join("run/export"))
        .unwrap()
        .structure
        .unwrap();
    assert_eq!((r.lambda, r.features_lambda), (0.0, 5.0));
}
