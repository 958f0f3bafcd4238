//! CycleGAN against the official junyanz code: state-dict keys of G_A, G_B, D_A, D_B, the
//! translations and patch maps, one training step's G loss (GAN A + GAN B + cycle A + cycle B +
//! identity A + identity B) and D losses, and their gradients with respect to named parameters
//! of all four networks and both inputs.
//!
//! Fixtures from `tools/baselines_cyclegan_fixtures.py` (its header has the command): the
//! committed `tests/fixtures/cyclegan_tiny.safetensors` (ngf = ndf = 4, 6 blocks, 64 px,
//! batch 1), and the narrow (ngf = ndf = 16, batch 2) and official (`resnet_9blocks`, ngf = ndf
//! = 64, 256 px) ones written to a folder, checked by the ignored test when
//! `S2M_CYCLEGAN_BIG_FIXTURES` names it. Tolerances: forwards and losses 1e-4 of the largest
//! reference magnitude, gradients 1e-3. The big fixtures also hold float64 gradients: the same
//! step run here in float64 must match them to 1e-9, and an f32 gradient beyond 1e-3 of
//! PyTorch's f32 one passes when its error against the float64 one is at most 1.25 x PyTorch's
//! own worst f32 error in that step (f32 rounding, not a port difference).

use std::collections::HashMap;
use std::path::Path;

use baselines::cyclegan::{CycleGan, CycleGanConfig, ResnetGenerator};
use baselines::layers::{ForwardMode, NormMode};
use baselines::pix2pix::{PatchGan, parameter_shapes};
use baselines::weights::load_into;
use candle_core::{DType, Device, Tensor, Var};
use s2m_core::testing::{fixture_metadata, load_fixture, torch_keys};

mod common;
use common::{assert_provenance, fixture, group, within};

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cyclegan_tiny.safetensors"
);
const FWD_TOL: f32 = 1e-4;
const GRAD_TOL: f32 = 1e-3;
const F32_MARGIN: f32 = 1.25;
const NETS: [&str; 4] = ["g_a", "g_b", "d_a", "d_b"];

/// A model of `cfg` holding the fixture's four state dicts, vars of `dtype`.
fn load_model(path: &Path, cfg: &CycleGanConfig, dtype: DType) -> CycleGan {
    let fx = load_fixture(path);
    let m = CycleGan::seeded_dtype(cfg, 1, dtype, &Device::Cpu).unwrap();
    let maps = [&m.g_a_vars, &m.g_b_vars, &m.d_a_vars, &m.d_b_vars];
    for (net, vars) in NETS.iter().zip(maps) {
        load_into(&group(&fx, net), vars, path, net).unwrap();
    }
    m
}

/// Our version of every fixture quantity of one step, under the fixture's names
/// (`fwd.*`, `loss.*`, `grad_g.*`, `grad_d.*`), with vars and inputs of `dtype`.
fn our_step(
    path: &Path,
    cfg: &CycleGanConfig,
    dtype: DType,
    split: bool,
) -> HashMap<String, Tensor> {
    let fx = load_fixture(path);
    let m = load_model(path, cfg, dtype);
    let a = Var::from_tensor(&fx["input.a"].to_dtype(dtype).unwrap()).unwrap();
    let b = Var::from_tensor(&fx["input.b"].to_dtype(dtype).unwrap()).unwrap();
    let (a, b) = (a.as_tensor(), b.as_tensor());
    let mut out = HashMap::new();
    let maps = [&m.g_a_vars, &m.g_b_vars, &m.d_a_vars, &m.d_b_vars];
    // Stores the gradients of `grads` for the vars of `nets` and for both inputs under `prefix`.
    let take = |out: &mut HashMap<String, Tensor>,
                prefix: &str,
                grads: &candle_core::backprop::GradStore,
                nets: &[usize]| {
        for &i in nets {
            for (name, var) in s2m_train::optim::varmap_named_vars(maps[i]) {
                if let Some(g) = grads.get(var.as_tensor()) {
                    out.insert(format!("{prefix}.{}.{name}", NETS[i]), g.detach());
                }
            }
        }
        for (k, x) in [("a", a), ("b", b)] {
            let g = grads
                .get(x)
                .unwrap_or_else(|| panic!("{prefix}: no gradient for input {k}"));
            out.insert(format!("{prefix}.input.{k}"), g.detach());
        }
    };
    let ev = NormMode::Eval;
    // The G step; its graph (and the GradStore, which holds a gradient for every node) is
    // dropped before the D step, so the 256 px step fits in memory.
    let (fake_a, fake_b) = if split {
        split_generator_step(&m, a, b, &mut out)
    } else {
        // CycleGAN trains in train mode; InstanceNorm without running stats is the same in both.
        let step = m.generator_step(a, b, &mut ForwardMode::eval()).unwrap();
        let im = &step.images;
        for (k, t) in [
            ("fake_b", &im.fake_b),
            ("rec_a", &im.rec_a),
            ("fake_a", &im.fake_a),
            ("rec_b", &im.rec_b),
            ("idt_a", im.idt_a.as_ref().unwrap()),
            ("idt_b", im.idt_b.as_ref().unwrap()),
        ] {
            out.insert(format!("fwd.{k}"), t.detach());
        }
        let l = &step.loss;
        for (k, t) in [
            ("g", &l.total),
            ("g_a", &l.gan_a),
            ("g_b", &l.gan_b),
            ("cycle_a", &l.cycle_a),
            ("cycle_b", &l.cycle_b),
            ("idt_a", l.idt_a.as_ref().unwrap()),
            ("idt_b", l.idt_b.as_ref().unwrap()),
        ] {
            out.insert(format!("loss.{k}"), t.reshape(1).unwrap().detach());
        }
        let gg = l.total.backward().unwrap();
        take(&mut out, "grad_g", &gg, &[0, 1]);
        (im.fake_a.detach(), im.fake_b.detach())
    };
    out.insert(
        "fwd.d_a_fake".into(),
        m.d_a.forward(&fake_b, ev).unwrap().detach(),
    );
    out.insert(
        "fwd.d_b_fake".into(),
        m.d_b.forward(&fake_a, ev).unwrap().detach(),
    );
    out.insert(
        "fwd.d_a_real".into(),
        m.d_a.forward(b, ev).unwrap().detach(),
    );
    out.insert(
        "fwd.d_b_real".into(),
        m.d_b.forward(a, ev).unwrap().detach(),
    );
    let (ld_a, ld_b) = m.discriminator_losses(a, b, &fake_a, &fake_b, ev).unwrap();
    out.insert("loss.d_a".into(), ld_a.reshape(1).unwrap().detach());
    out.insert("loss.d_b".into(), ld_b.reshape(1).unwrap().detach());
    let gd = (ld_a + ld_b).unwrap().backward().unwrap();
    take(&mut out, "grad_d", &gd, &[2, 3]);
    out
}

fn max_abs(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// `max |ours - theirs| / scale`. The scale is `max |theirs|`, except for the bias of a conv
/// that InstanceNorm follows: IN removes per-channel constants, so that gradient is zero in
/// exact arithmetic and both sides hold rounding noise (~1e-9); it is measured against the
/// scale of the same conv's weight gradient instead (the fixture holds it for every such bias).
fn grad_aware_err(fx: &HashMap<String, Tensor>, key: &str, ours: &Tensor, theirs: &Tensor) -> f32 {
    let theirs32 = theirs.to_dtype(DType::F32).unwrap();
    let ours32 = ours.to_dtype(DType::F32).unwrap();
    let mut scale = max_abs(&theirs32);
    if let Some(w) = key
        .strip_suffix(".bias")
        .and_then(|s| fx.get(&format!("{s}.weight")))
    {
        scale = scale.max(max_abs(w));
    }
    max_abs(&(ours32 - theirs32).unwrap()) / scale.max(1e-12)
}

#[derive(Default)]
struct Report {
    worst_forward: f32,
    worst_grad: f32,
    worst_grad_f64: f32,
    worst_torch_f64: f32,
    beyond: Vec<(String, f32, f32)>,
    failures: Vec<String>,
    lines: Vec<String>,
    n_grads: usize,
}

fn check_fixture(path: &Path, cfg: &CycleGanConfig) -> Report {
    let fx = load_fixture(path);
    let meta = fixture_metadata(path);
    // State-dict keys and shapes equal the official ones.
    let keys = [
        parameter_shapes(|vb| ResnetGenerator::new(&cfg.generator, vb)).unwrap(),
        parameter_shapes(|vb| ResnetGenerator::new(&cfg.generator_b(), vb)).unwrap(),
        parameter_shapes(|vb| PatchGan::new(&cfg.discriminator_a(), vb)).unwrap(),
        parameter_shapes(|vb| PatchGan::new(&cfg.discriminator_b(), vb)).unwrap(),
    ];
    for (net, k) in NETS.iter().zip(keys) {
        assert_eq!(k, torch_keys(&meta, net), "{net} keys");
    }
    let ours = our_step(path, cfg, DType::F32, split_g_step(cfg));
    let mut r = Report::default();
    let mut names: Vec<&String> = fx.keys().collect();
    names.sort();
    for name in names {
        let theirs = &fx[name];
        let is_grad = name.starts_with("grad_");
        if !(is_grad || name.starts_with("fwd.") || name.starts_with("loss.")) {
            continue;
        }
        let mine = ours
            .get(name)
            .unwrap_or_else(|| panic!("{name}: not computed (no gradient?)"));
        assert_eq!(mine.dims(), theirs.dims(), "{name}: shape");
        let e = grad_aware_err(&fx, name, mine, theirs);
        if !is_grad {
            r.worst_forward = r.worst_forward.max(e);
            r.lines.push(format!("{name}: rel err {e:.2e}"));
            if !within(e, FWD_TOL) {
                r.failures.push(format!("{name}: {e:e} > {FWD_TOL:e}"));
            }
            continue;
        }
        r.n_grads += 1;
        r.worst_grad = r.worst_grad.max(e);
        let truth_key = name.replacen("grad_", "grad64_", 1);
        match fx.get(&truth_key) {
            None => {
                r.lines.push(format!("{name}: rel err {e:.2e}"));
                if !within(e, GRAD_TOL) {
                    r.failures.push(format!("{name}: {e:e} > {GRAD_TOL:e}"));
                }
            }
            Some(truth) => {
                let e_ours = grad_aware_err(&fx, &truth_key, mine, truth);
                let e_torch = grad_aware_err(&fx, &truth_key, theirs, truth);
                r.lines.push(format!(
                    "{name}: rel err {e:.2e} vs torch f32; vs torch f64: ours {e_ours:.2e}, torch f32 {e_torch:.2e}"
                ));
                r.worst_grad_f64 = r.worst_grad_f64.max(e_ours);
                r.worst_torch_f64 = r.worst_torch_f64.max(e_torch);
                if !within(e, GRAD_TOL) {
                    r.beyond.push((name.clone(), e, e_ours));
                }
            }
        }
    }
    r
}

impl Report {
    fn print_and_assert(&self, name: &str) {
        println!("{}", self.lines.join("\n"));
        println!(
            "{name}: {} gradients; worst forward/loss {:.2e}, worst gradient {:.2e} (vs torch f32); vs torch f64: ours {:.2e}, torch f32 {:.2e}",
            self.n_grads,
            self.worst_forward,
            self.worst_grad,
            self.worst_grad_f64,
            self.worst_torch_f64
        );
        let mut failures = self.failures.clone();
        let tol = GRAD_TOL.max(F32_MARGIN * self.worst_torch_f64);
        for (what, e, e_ours) in &self.beyond {
            println!("{name}: {what} is {e:.2e} from torch f32, {e_ours:.2e} from f64");
            if !within(*e_ours, tol) {
                failures.push(format!(
                    "{what}: {e:e} vs torch f32, {e_ours:e} vs f64 (> {tol:e})"
                ));
            }
        }
        assert!(
            self.n_grads >= 20,
            "{name}: only {} gradients",
            self.n_grads
        );
        assert!(failures.is_empty(), "{name}: {}", failures.join("; "));
    }
}

/// The step in float64 against PyTorch's float64 gradients: the worst relative error (scaled
/// as [`grad_aware_err`], in f64).
fn float64_step_error(path: &Path, cfg: &CycleGanConfig) -> f64 {
    let fx = load_fixture(path);
    let ours = our_step(path, cfg, DType::F64, split_g_step(cfg));
    let max64 = |t: &Tensor| -> f64 {
        t.to_dtype(DType::F64)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let mut worst = 0f64;
    let mut n = 0;
    for (k, t) in &fx {
        let Some(ours_key) = k.strip_prefix("grad64_") else {
            continue;
        };
        let mine = &ours[&format!("grad_{ours_key}")];
        let t = t.to_dtype(DType::F64).unwrap();
        let mut scale = max64(&t);
        if let Some(w) = k
            .strip_suffix(".bias")
            .and_then(|s| fx.get(&format!("{s}.weight")))
        {
            scale = scale.max(max64(w));
        }
        let d = max64(&(mine - &t).unwrap());
        worst = worst.max(d / scale.max(1e-300));
        n += 1;
    }
    assert!(n > 20, "float64 gradients in the fixture ({n})");
    worst
}

#[test]
fn tiny_fixture_matches_the_official_code() {
    check_fixture(Path::new(TINY), &CycleGanConfig::tiny_64()).print_and_assert("tiny_64");
}

/// The term-by-term G step of the 256 px check equals the whole step (tiny fixture, f64).
#[test]
fn split_generator_step_equals_the_whole_step() {
    let cfg = CycleGanConfig::tiny_64();
    let whole = our_step(Path::new(TINY), &cfg, DType::F64, false);
    let split = our_step(Path::new(TINY), &cfg, DType::F64, true);
    assert_eq!(whole.len(), split.len());
    for (k, w) in &whole {
        let s = &split[k];
        let d = (w - s).unwrap().abs().unwrap().max_all().unwrap();
        let scale = w
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let e = d.to_scalar::<f64>().unwrap() / scale.max(1e-12);
        assert!(e < 1e-12, "{k}: {e:e}");
    }
}

#[test]
fn fixture_provenance_is_recorded() {
    let meta = fixture_metadata(TINY);
    assert_provenance(&meta, &["norm_layer"]);
    assert_eq!(meta["script"], "tools/baselines_cyclegan_fixtures.py");
}

/// `S2M_CYCLEGAN_BIG_FIXTURES=DIR cargo test -p baselines --test cyclegan -- --ignored --nocapture`
/// after `tools/baselines_cyclegan_fixtures.py ... --big-dir DIR`.
#[test]
#[ignore = "needs the big fixtures (S2M_CYCLEGAN_BIG_FIXTURES) and a few minutes"]
fn narrow_and_official_fixtures_match_the_official_code() {
    let dir = std::env::var("S2M_CYCLEGAN_BIG_FIXTURES")
        .expect("set S2M_CYCLEGAN_BIG_FIXTURES to the --big-dir of the fixture script");
    for (name, cfg) in [
        ("narrow_64", CycleGanConfig::narrow_64()),
        ("official_256", CycleGanConfig::official_256()),
    ] {
        let path = Path::new(&dir).join(format!("cyclegan_{name}.safetensors"));
        // NOTE: the float64 step at 256 px (six ResNet passes with their graph) needs more than
        // this machine's 23 GB; it runs there only with S2M_CYCLEGAN_F64_OFFICIAL=1.
        if name == "narrow_64" || std::env::var_os("S2M_CYCLEGAN_F64_OFFICIAL").is_some() {
            let e64 = float64_step_error(&path, &cfg);
            println!(
                "{name}: the step in float64, gradients against torch float64: rel err {e64:.2e}"
            );
            assert!(e64 < 1e-9, "{name}: float64 gradients differ by {e64:e}");
        }
        check_fixture(&path, &cfg).print_and_assert(name);
    }
}

// ---- converted official checkpoints, bad input, the image pool ----

/// `tests/fixtures/cyclegan_tiny_net_{G_A,D_A}.safetensors`: the tiny fixture's G_A and D_A
/// saved by `torch.save(net.state_dict(), 'latest_net_G_A.pth')` on official objects built with
/// the 2018 `get_norm_layer('instance')` (InstanceNorm with running stats, so the files carry
/// the legacy `running_*` / `num_batches_tracked` keys), converted by
/// `tools/baselines_convert.py --norm instance /tmp/cg-ckpt/legacy OUT` (which drops them).
#[test]
fn converted_official_checkpoints_load_and_match() {
    let dev = Device::Cpu;
    let cfg = CycleGanConfig::tiny_64();
    let fx = load_fixture(TINY);
    let (g_a, _) = baselines::cyclegan::load_generator(
        &cfg.generator,
        &fixture("cyclegan_tiny_net_G_A.safetensors"),
        &dev,
    )
    .unwrap();
    let (d_a, _) = baselines::cyclegan::load_discriminator(
        &cfg.discriminator_a(),
        &fixture("cyclegan_tiny_net_D_A.safetensors"),
        &dev,
    )
    .unwrap();
    let fake_b = g_a
        .forward(&fx["input.a"], &mut ForwardMode::eval())
        .unwrap();
    let e = s2m_core::testing::rel_err(&fake_b, &fx["fwd.fake_b"]);
    assert!(e <= FWD_TOL, "G_A from the converted checkpoint: {e:e}");
    let pred = d_a.forward(&fx["fwd.fake_b"], NormMode::Eval).unwrap();
    let e = s2m_core::testing::rel_err(&pred, &fx["fwd.d_a_fake"]);
    assert!(e <= FWD_TOL, "D_A from the converted checkpoint: {e:e}");
    let meta = fixture_metadata(fixture("cyclegan_tiny_net_G_A.safetensors"));
    assert!(meta["dropped_keys"].contains("model.2.running_mean"));
}

#[test]
fn bad_checkpoints_are_named_errors() {
    let dev = Device::Cpu;
    let cfg = CycleGanConfig::tiny_64();
    let path = fixture("cyclegan_tiny_net_G_A.safetensors");
    let mut tensors = load_fixture(&path);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    let err = |t: &HashMap<String, Tensor>, cfg: &baselines::cyclegan::ResnetConfig| {
        candle_core::safetensors::save(t, &p).unwrap();
        match baselines::cyclegan::load_generator(cfg, &p, &dev) {
            Ok(_) => panic!("loaded a bad state dict"),
            Err(e) => e.to_string(),
        }
    };
    // The narrow config's shapes differ.
    let e = err(&tensors, &CycleGanConfig::narrow_64().generator);
    assert!(e.contains("model.1.") && e.contains("shape"), "{e}");
    // An unexpected legacy key (an unconverted file) is named.
    tensors.insert(
        "model.2.running_mean".into(),
        Tensor::zeros(4, DType::F32, &dev).unwrap(),
    );
    let e = err(&tensors, &cfg.generator);
    assert!(e.contains("model.2.running_mean"), "{e}");
    tensors.remove("model.2.running_mean");
    tensors.remove("model.12.conv_block.5.weight");
    let e = err(&tensors, &cfg.generator);
    assert!(e.contains("model.12.conv_block.5.weight"), "{e}");
    // Missing and corrupt files.
    assert!(
        baselines::cyclegan::load_generator(&cfg.generator, &dir.path().join("no"), &dev).is_err()
    );
    std::fs::write(&p, b"not safetensors").unwrap();
    let e = baselines::cyclegan::load_generator(&cfg.generator, &p, &dev)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("g.safetensors"), "{e}");
}

#[test]
fn wrong_inputs_and_configs_are_errors() {
    let dev = Device::Cpu;
    let m = CycleGan::seeded(&CycleGanConfig::tiny_64().with_channels(1, 3), 3, &dev).unwrap();
    assert_eq!(
        m.config.loss.lambda_identity, 0.0,
        "1 -> 3 channels has no identity loss"
    );
    let sketch = Tensor::zeros((1, 1, 64, 64), DType::F32, &dev).unwrap();
    let image = Tensor::zeros((2, 3, 64, 64), DType::F32, &dev).unwrap();
    let step = m
        .generator_step(&sketch, &image, &mut ForwardMode::eval())
        .unwrap();
    assert!(step.loss.idt_a.is_none() && step.images.idt_b.is_none());
    assert_eq!(step.images.fake_a.dims(), &[2, 1, 64, 64]);
    // Swapped domains, wrong sizes, sizes not a multiple of 4.
    assert!(
        m.generator_step(&image, &sketch, &mut ForwardMode::eval())
            .is_err()
    );
    let small = Tensor::zeros((1, 1, 32, 32), DType::F32, &dev).unwrap();
    assert!(
        m.generator_step(&small, &image, &mut ForwardMode::eval())
            .is_err()
    );
    let odd = Tensor::zeros((1, 1, 30, 30), DType::F32, &dev).unwrap();
    assert!(m.g_a.forward(&odd, &mut ForwardMode::eval()).is_err());
    let flat = Tensor::zeros((64, 64), DType::F32, &dev).unwrap();
    assert!(m.g_a.forward(&flat, &mut ForwardMode::eval()).is_err());
    // Configs: identity with different channel counts, bad sizes and lambdas.
    let mut c = CycleGanConfig::tiny_64().with_channels(1, 3);
    c.loss.lambda_identity = 0.5;
    assert!(c.validate().is_err());
    let mut c = CycleGanConfig::tiny_64();
    c.image_size = 62;
    assert!(c.validate().is_err());
    let mut c = CycleGanConfig::tiny_64();
    c.loss.lambda_a = f64::NAN;
    assert!(c.validate().is_err());
    let mut c = CycleGanConfig::tiny_64();
    c.discriminator.input_nc = 1;
    assert!(c.validate().is_err());
    for c in [
        CycleGanConfig::official_256(),
        CycleGanConfig::official_64(),
        CycleGanConfig::narrow_64(),
    ] {
        c.validate().unwrap();
    }
}

#[test]
fn official_parameter_counts() {
    let count = |cfg: &CycleGanConfig| -> (usize, usize) {
        let g = parameter_shapes(|vb| ResnetGenerator::new(&cfg.generator, vb)).unwrap();
        let d = parameter_shapes(|vb| PatchGan::new(&cfg.discriminator_a(), vb)).unwrap();
        let n =
            |v: &[(String, Vec<usize>)]| v.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        assert_eq!(g.len(), 12 + 4 * cfg.generator.n_blocks);
        (n(&g), n(&d))
    };
    // resnet_9blocks: 48 tensors, 11.378 M; the basic D on 3 channels: 2.765 M.
    let (g, d) = count(&CycleGanConfig::official_256());
    assert_eq!((g, d), (11_378_179, 2_764_737));
    let (g, d) = count(&CycleGanConfig::narrow_64());
    println!("narrow_64: G {g}, D {d}");
}

#[test]
fn image_pool_follows_the_official_rule() {
    use baselines::cyclegan::ImagePool;
    let dev = Device::Cpu;
    let img = |v: f32| Tensor::full(v, (1, 1, 2, 2), &dev).unwrap();
    let value = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0];
    let mut rng = s2m_core::rng::rng_from_seed(5);
    let mut pool = ImagePool::new(3);
    // Filling: every image is stored and returned.
    let batch = Tensor::cat(&[img(0.), img(1.)], 0).unwrap();
    let out = pool.query(&batch, &mut rng).unwrap();
    assert_eq!(out.dims(), &[2, 1, 2, 2]);
    assert_eq!(pool.images().len(), 2);
    // Full: each later image is returned (new) or swapped for a stored one, about half each.
    let (mut new, mut old) = (0, 0);
    for i in 2..400 {
        let v = i as f32;
        let out = pool.query(&img(v), &mut rng).unwrap();
        assert_eq!(pool.images().len(), 3);
        let got = value(&out);
        if got == v {
            new += 1;
        } else {
            assert!(got < v, "an older image");
            assert!(
                pool.images().iter().any(|t| value(t) == v),
                "the new one is stored"
            );
            old += 1;
        }
    }
    assert!(
        (150..250).contains(&new) && new + old == 398,
        "new {new}, old {old}"
    );
    // The same seed gives the same sequence; size 0 passes through.
    let run = |seed| {
        let mut rng = s2m_core::rng::rng_from_seed(seed);
        let mut p = ImagePool::new(2);
        (0..20)
            .map(|i| value(&p.query(&img(i as f32), &mut rng).unwrap()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
    let mut p0 = ImagePool::new(0);
    assert_eq!(value(&p0.query(&img(7.), &mut rng).unwrap()), 7.);
    assert!(p0.images().is_empty());
    // Bad input.
    assert!(
        pool.query(&Tensor::zeros((2, 2), DType::F32, &dev).unwrap(), &mut rng)
            .is_err()
    );
    assert!(
        pool.query(
            &Tensor::zeros((1, 3, 2, 2), DType::F32, &dev).unwrap(),
            &mut rng
        )
        .is_err()
    );
    assert!(ImagePool::from_images(1, vec![img(0.), img(1.)]).is_err());
}

/// Whether the G step's gradients are computed term by term (the 256 px step holds six ResNet
/// passes with their graph at once, more than this machine's 23 GB).
fn split_g_step(cfg: &CycleGanConfig) -> bool {
    cfg.image_size >= 256
}

/// The G step as four separately differentiated parts whose gradients are summed (the loss is
/// a sum, so its gradient is too): GAN A + cycle A (G_A(A), D_A, G_B(G_A(A))), GAN B + cycle B,
/// identity A, identity B. The same `loss` functions as `CycleGan::generator_step`, which the
/// tiny and narrow fixtures check as a whole. Returns the detached (fake_A, fake_B).
fn split_generator_step(
    m: &CycleGan,
    a: &Tensor,
    b: &Tensor,
    out: &mut HashMap<String, Tensor>,
) -> (Tensor, Tensor) {
    use baselines::cyclegan::loss::lsgan;
    use baselines::pix2pix::loss::l1;
    let l = &m.config.loss;
    let mode = &mut ForwardMode::eval();
    let maps = [&m.g_a_vars, &m.g_b_vars];
    let mut sums: HashMap<String, Tensor> = HashMap::new();
    let mut total = 0f64;
    let mut add = |loss: Tensor, sums: &mut HashMap<String, Tensor>| {
        total += loss
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut keyed: Vec<(String, Tensor)> = Vec::new();
        for (i, vars) in maps.iter().enumerate() {
            for (name, var) in s2m_train::optim::varmap_named_vars(vars) {
                if let Some(g) = grads.get(var.as_tensor()) {
                    keyed.push((format!("grad_g.{}.{name}", NETS[i]), g.detach()));
                }
            }
        }
        for (k, x) in [("a", a), ("b", b)] {
            if let Some(g) = grads.get(x) {
                keyed.push((format!("grad_g.input.{k}"), g.detach()));
            }
        }
        for (k, g) in keyed {
            let v = match sums.remove(&k) {
                Some(prev) => (prev + g).unwrap(),
                None => g,
            };
            sums.insert(k, v);
        }
    };
    let put = |out: &mut HashMap<String, Tensor>, k: &str, t: &Tensor| {
        out.insert(k.to_string(), t.reshape(1).unwrap().detach());
    };
    // GAN A + cycle A.
    let fake_b = m.g_a.forward(a, mode).unwrap();
    let rec_a = m.g_b.forward(&fake_b, mode).unwrap();
    let gan_a = lsgan(&m.d_a.forward(&fake_b, NormMode::Eval).unwrap(), true).unwrap();
    let cycle_a = (l1(&rec_a, a).unwrap() * l.lambda_a).unwrap();
    put(out, "loss.g_a", &gan_a);
    put(out, "loss.cycle_a", &cycle_a);
    out.insert("fwd.fake_b".into(), fake_b.detach());
    out.insert("fwd.rec_a".into(), rec_a.detach());
    let fake_b = fake_b.detach();
    add((gan_a + cycle_a).unwrap(), &mut sums);
    drop(rec_a);
    // GAN B + cycle B.
    let fake_a = m.g_b.forward(b, mode).unwrap();
    let rec_b = m.g_a.forward(&fake_a, mode).unwrap();
    let gan_b = lsgan(&m.d_b.forward(&fake_a, NormMode::Eval).unwrap(), true).unwrap();
    let cycle_b = (l1(&rec_b, b).unwrap() * l.lambda_b).unwrap();
    put(out, "loss.g_b", &gan_b);
    put(out, "loss.cycle_b", &cycle_b);
    out.insert("fwd.fake_a".into(), fake_a.detach());
    out.insert("fwd.rec_b".into(), rec_b.detach());
    let fake_a = fake_a.detach();
    add((gan_b + cycle_b).unwrap(), &mut sums);
    drop(rec_b);
    // Identity A and B.
    let idt_a = m.g_a.forward(b, mode).unwrap();
    let loss_idt_a = (l1(&idt_a, b).unwrap() * (l.lambda_b * l.lambda_identity)).unwrap();
    put(out, "loss.idt_a", &loss_idt_a);
    out.insert("fwd.idt_a".into(), idt_a.detach());
    add(loss_idt_a, &mut sums);
    drop(idt_a);
    let idt_b = m.g_b.forward(a, mode).unwrap();
    let loss_idt_b = (l1(&idt_b, a).unwrap() * (l.lambda_a * l.lambda_identity)).unwrap();
    put(out, "loss.idt_b", &loss_idt_b);
    out.insert("fwd.idt_b".into(), idt_b.detach());
    add(loss_idt_b, &mut sums);
    drop(idt_b);
    out.insert(
        "loss.g".into(),
        Tensor::new(&[total], &Device::Cpu)
            .unwrap()
            .to_dtype(a.dtype())
            .unwrap(),
    );
    out.extend(sums);
    (fake_a, fake_b)
}
