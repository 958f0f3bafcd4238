//! The training aids as extra terms of phase 2: each term against an explicit computation,
//! training with it (finite, decreasing, logged, recorded in the export) and the errors of a
//! term without what it needs. Tiny models (`e4e_encoder::testing`), CPU.

use std::path::{Path, PathBuf};

use candle_core::Device;
use e4e_encoder::testing::{tiny_generator, tiny_generator_config};
use e4e_encoder::{PairDataset, TensorPairs};
use hyperstyle_refiner::testing::{test_loss, tiny_pairs, tiny_train_config};
use hyperstyle_refiner::{RefinerStepStats, RefinerTrainConfig, RefinerTrainer};
use refiner_aids::{AidsConfig, AidsRecord};

fn config() -> RefinerTrainConfig {
    tiny_train_config()
}

fn encoder_export(dir: &Path, g_seed: u64) -> PathBuf {
    hyperstyle_refiner::testing::encoder_export(dir, g_seed).unwrap()
}

fn data(n: usize) -> TensorPairs {
    tiny_pairs(n).unwrap()
}

fn try_open_with(
    cfg: RefinerTrainConfig,
    aids: AidsConfig,
    encoder: &Path,
    out: &Path,
) -> hyperstyle_refiner::Result<RefinerTrainer> {
    refiner_aids::open_trainer(
        cfg,
        &aids,
        tiny_generator(1).unwrap(),
        encoder,
        test_loss().unwrap(),
        out,
        &Device::Cpu,
    )
}

/// A run of the tiny config with the aids `aids`.
fn open_with(aids: AidsConfig, encoder: &Path, out: &Path) -> RefinerTrainer {
    try_open_with(config(), aids, encoder, out).unwrap()
}

/// A run of the paper's loss alone.
fn open(cfg: RefinerTrainConfig, encoder: &Path, out: &Path) -> RefinerTrainer {
    RefinerTrainer::open(
        cfg,
        tiny_generator(1).unwrap(),
        encoder,
        test_loss().unwrap(),
        out,
        &Device::Cpu,
    )
    .unwrap()
}

/// The error of opening a run that must be refused.
fn open_err(cfg: RefinerTrainConfig, aids: AidsConfig, encoder: &Path, out: &Path) -> String {
    match try_open_with(cfg, aids, encoder, out) {
        Ok(_) => panic!("opening {} must fail", out.display()),
        Err(e) => e.to_string(),
    }
}

fn record(t: &RefinerTrainer, dir: &Path) -> (hyperstyle_refiner::RefinerMeta, AidsRecord) {
    let meta = t.export(dir).unwrap();
    let r = AidsRecord::of(&meta).unwrap();
    (meta, r)
}

#[test]
fn sketch_weighted_mse_matches_an_explicit_computation() {
    use candle_core::Tensor;
    use refiner_aids::{sketch_stroke_mask, sketch_weighted_mse};
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
    aids: AidsConfig,
    encoder: &Path,
    out: &Path,
    data: &dyn PairDataset,
    column: &str,
    term: fn(&RefinerStepStats) -> Option<f64>,
) -> RefinerTrainer {
    let mut t = open_with(aids, encoder, out);
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
    let aids = AidsConfig {
        sketch_l2_lambda: 2.0,
        ..AidsConfig::default()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(aids, &enc, &run, &data(2), "sketch_l2_last", |s| {
        s.extra("sketch_l2")
    });
    let (_, r) = record(&t, &dir.path().join("run/export"));
    assert_eq!(r.sketch_l2, 2.0);
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
    use refiner_aids::{load_discriminator, realism_loss};
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
    let aids = AidsConfig {
        adv_lambda: 1.0,
        discriminator: Some(ck.clone()),
        ..AidsConfig::default()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(aids, &enc, &run, &data, "adv_last", |s| s.extra("adv"));
    let (meta, r) = record(&t, &dir.path().join("run/export"));
    assert_eq!(meta.losses.adv, 1.0);
    let r = r.discriminator.unwrap();
    assert_eq!(r.file, ck.display().to_string());
    // Without the term nothing is logged or recorded.
    let mut plain = open(config(), &enc, &dir.path().join("plain"));
    assert_eq!(plain.train_step(&data).unwrap().extra("adv"), None);
    let (meta, r) = record(&plain, &dir.path().join("plain/export"));
    assert_eq!((meta.losses.adv, r.discriminator), (0.0, None));
}

#[test]
fn realism_term_needs_a_discriminator_and_a_batch_it_can_group() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let (_, ck, _) = discriminator_files(dir.path());
    let with = |adv_lambda: f64, batch: usize, discriminator: Option<PathBuf>| {
        (
            RefinerTrainConfig { batch, ..config() },
            AidsConfig {
                adv_lambda,
                discriminator,
                ..AidsConfig::default()
            },
        )
    };
    let missing = dir.path().join("missing.safetensors");
    for (i, ((cfg, aids), want)) in [
        (with(0.1, 2, None), "needs a discriminator"),
        (with(0.1, 6, Some(ck.clone())), "batch 6"),
        (with(0.1, 2, Some(missing)), "missing.safetensors"),
        (with(f64::NAN, 2, Some(ck.clone())), "adv_lambda"),
    ]
    .into_iter()
    .enumerate()
    {
        let e = open_err(cfg, aids, &enc, &dir.path().join(format!("run{i}")));
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
    use refiner_aids::region_colour_loss;
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
    let aids = AidsConfig {
        region_lambda: 5.0,
        ..AidsConfig::default()
    };
    let run = dir.path().join("run");
    let mut t = trains_with_term(aids, &enc, &run, &labelled, "region_last", |s| {
        s.extra("region")
    });
    assert_eq!(record(&t, &dir.path().join("run/export")).1.region, 5.0);

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
    assert_eq!(off.train_step(&labelled).unwrap().extra("region"), None);
}

/// An untrained tiny structure net (width 4, 2 levels, init seed `seed`) exported to
/// `<dir>/structure`.
fn structure_export(dir: &Path, seed: u64) -> PathBuf {
    use refiner_aids::{StructureNetConfig, StructureTrainConfig, StructureTrainer};
    let net_dir = dir.join("structure");
    StructureTrainer::open(
        StructureTrainConfig {
            net: StructureNetConfig {
                width: 4,
                levels: 2,
            },
            schedule: s2m_train::Schedule {
                seed,
                ..s2m_train::Schedule::default()
            },
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
    let aids = AidsConfig {
        structure_lambda: 5.0,
        structure_net: Some(net_dir.clone()),
        ..AidsConfig::default()
    };
    let run = dir.path().join("run");
    let mut t = trains_with_term(aids.clone(), &enc, &run, &labelled, "structure_last", |s| {
        s.extra("structure")
    });
    let r = record(&t, &dir.path().join("run/export"))
        .1
        .structure
        .unwrap();
    assert_eq!((r.lambda, r.dir), (5.0, net_dir.display().to_string()));
    assert_eq!(r.sha256.len(), 64);
    let e = t.train_step(&plain).unwrap_err().to_string();
    assert!(e.contains("label maps"), "{e}");

    // Without a net, or with a folder that is not one: refused, naming what is missing.
    let e = open_err(
        config(),
        AidsConfig {
            structure_net: None,
            ..aids.clone()
        },
        &enc,
        &dir.path().join("r1"),
    );
    assert!(e.contains("structure-net"), "{e}");
    let e = open_err(
        config(),
        AidsConfig {
            structure_net: Some(dir.path().join("nope")),
            ..aids
        },
        &enc,
        &dir.path().join("r2"),
    );
    assert!(e.contains("nope"), "{e}");
    let mut off = open(config(), &enc, &dir.path().join("off"));
    assert_eq!(off.train_step(&labelled).unwrap().extra("structure"), None);
}

#[test]
fn structure_feature_term_trains_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let enc = encoder_export(dir.path(), 1);
    let net_dir = structure_export(dir.path(), 0);
    // No label maps needed: the distance compares with the target image.
    let aids = AidsConfig {
        structure_features_lambda: 5.0,
        structure_net: Some(net_dir),
        ..AidsConfig::default()
    };
    let run = dir.path().join("run");
    let t = trains_with_term(aids, &enc, &run, &data(2), "structure_features_last", |s| {
        s.extra("structure_features")
    });
    let r = record(&t, &dir.path().join("run/export"))
        .1
        .structure
        .unwrap();
    assert_eq!((r.lambda, r.features_lambda), (0.0, 5.0));
}
