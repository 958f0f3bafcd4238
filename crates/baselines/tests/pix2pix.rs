//! pix2pix against the official junyanz code: state-dict keys, G and D forwards in eval and
//! train mode (the dropout masks PyTorch drew), one training step's losses and gradients, and the
//! BatchNorm buffers after it.
//!
//! Fixtures from `tools/baselines_pix2pix_fixtures.py` (header of that script for the command):
//! the committed `tests/fixtures/pix2pix_tiny.safetensors` (ngf = ndf = 2, 64 px, batch 1), and
//! the narrow (ngf = ndf = 32) and official (`unet_256`, ngf = ndf = 64, 256 px) ones written to
//! a folder, checked by the ignored test when `S2M_PIX2PIX_BIG_FIXTURES` names it.
//! Tolerances: forwards 1e-4 of the largest reference magnitude, gradients 1e-3. The big
//! fixtures also hold float64 gradients. The same step run in float64 here matches them to
//! ~1e-14 (the port is the same function); in f32 at 256 px PyTorch's own gradients are up to
//! 2.5e-2 off them (reductions over large maps through train-mode BatchNorm), so there a
//! gradient passes when it is within 1e-3 of PyTorch's f32 one, or when its error against the
//! float64 one is at most 1.25 x PyTorch's own worst f32 error in that step.

use std::path::Path;

use baselines::layers::{ForwardMode, NormMode};
use baselines::pix2pix::{
    PatchGan, Pix2PixConfig, UnetGenerator, loss, parameter_shapes, seeded_discriminator,
    seeded_discriminator_dtype, seeded_generator, seeded_generator_dtype,
};
use baselines::weights::load_into;
use candle_core::{Device, Tensor, Var};
use s2m_core::testing::{fixture_metadata, load_fixture, rel_err, torch_keys};

mod common;
use common::{assert_provenance, group, within};

const TINY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/pix2pix_tiny.safetensors"
);

const FWD_TOL: f32 = 1e-4;
const GRAD_TOL: f32 = 1e-3;
/// Big fixtures: a gradient beyond `GRAD_TOL` of PyTorch's f32 one passes when its error
/// against the float64 truth is at most this many times PyTorch's own worst f32 error in the
/// same step.
const F32_MARGIN: f32 = 1.25;

/// The largest relative errors of one fixture, by quantity.
#[derive(Debug, Default)]
struct Report {
    worst_forward: f32,
    worst_grad: f32,
    /// Our gradients against PyTorch's float64 ones (big fixtures).
    worst_grad_f64: f32,
    /// PyTorch's f32 gradients against its float64 ones (big fixtures).
    worst_torch_f64: f32,
    /// Gradients beyond 1e-3 of PyTorch's f32 ones that have an f64 truth: (what, err vs
    /// torch f32, err vs f64).
    beyond_tol: Vec<(String, f32, f32)>,
    lines: Vec<String>,
    failures: Vec<String>,
}

impl Report {
    fn forward(&mut self, what: &str, ours: &Tensor, theirs: &Tensor) {
        assert_eq!(ours.dims(), theirs.dims(), "{what}: shape");
        let e = rel_err(ours, theirs);
        self.lines.push(format!("{what}: rel err {e:.2e}"));
        self.worst_forward = self.worst_forward.max(e);
        if !within(e, FWD_TOL) {
            self.failures
                .push(format!("{what}: rel err {e:e} > {FWD_TOL:e}"));
        }
    }

    /// Compares a gradient with PyTorch's f32 one (`theirs`): at most 1e-3. Where the fixture
    /// also holds the float64 gradient (`truth`, big fixtures), PyTorch's own f32 error against
    /// it is measured too, and a gradient beyond 1e-3 of PyTorch's f32 one still passes when
    /// its own error against the f64 truth is at most `F32_MARGIN` times the largest error of
    /// PyTorch's f32 gradients in the same step (see [`Report::print_and_assert`]).
    fn grad(&mut self, what: &str, ours: Option<&Tensor>, theirs: &Tensor, truth: Option<&Tensor>) {
        let ours = ours.unwrap_or_else(|| panic!("{what}: candle computed no gradient"));
        assert_eq!(ours.dims(), theirs.dims(), "{what}: shape");
        let e = rel_err(ours, theirs);
        self.worst_grad = self.worst_grad.max(e);
        let Some(truth) = truth else {
            self.lines.push(format!("{what}: rel err {e:.2e}"));
            if !within(e, GRAD_TOL) {
                self.failures
                    .push(format!("{what}: rel err {e:e} > {GRAD_TOL:e}"));
            }
            return;
        };
        let truth = truth.to_dtype(candle_core::DType::F32).unwrap();
        let e_ours = rel_err(ours, &truth);
        let e_torch = rel_err(theirs, &truth);
        self.lines.push(format!(
            "{what}: rel err {e:.2e} vs torch f32; vs torch f64: ours {e_ours:.2e}, torch f32 {e_torch:.2e}"
        ));
        self.worst_grad_f64 = self.worst_grad_f64.max(e_ours);
        self.worst_torch_f64 = self.worst_torch_f64.max(e_torch);
        if !within(e, GRAD_TOL) {
            self.beyond_tol.push((what.to_string(), e, e_ours));
        }
    }
}

fn check_fixture(path: &Path, cfg: &Pix2PixConfig) -> Report {
    let dev = Device::Cpu;
    let fx = load_fixture(path);
    let meta = fixture_metadata(path);
    let mut r = Report::default();

    // State-dict keys and shapes equal the official ones.
    let g_keys = parameter_shapes(|vb| UnetGenerator::new(&cfg.generator, vb)).unwrap();
    assert_eq!(g_keys, torch_keys(&meta, "g"), "G keys");
    let d_keys = parameter_shapes(|vb| PatchGan::new(&cfg.discriminator, vb)).unwrap();
    assert_eq!(d_keys, torch_keys(&meta, "d"), "D keys");

    // Load the official state dicts (num_batches_tracked included).
    let (g, g_vars) = seeded_generator(&cfg.generator, 1, &dev).unwrap();
    load_into(&group(&fx, "g"), &g_vars, path, "G").unwrap();
    let (d, d_vars) = seeded_discriminator(&cfg.discriminator, 2, &dev).unwrap();
    load_into(&group(&fx, "d"), &d_vars, path, "D").unwrap();
    let a = &fx["input.a"];
    let b = &fx["input.b"];
    let pair = |x: &Tensor, y: &Tensor| Tensor::cat(&[x, y], 1).unwrap();

    // Eval mode: running statistics, no dropout.
    let fake_eval = g.forward(a, &mut ForwardMode::eval()).unwrap();
    r.forward("eval G(a)", &fake_eval, &fx["eval.fake"]);
    let d_fake = d.forward(&pair(a, &fake_eval), NormMode::Eval).unwrap();
    r.forward("eval D(a, G(a))", &d_fake, &fx["eval.d_fake"]);
    let d_real = d.forward(&pair(a, b), NormMode::Eval).unwrap();
    r.forward("eval D(a, b)", &d_real, &fx["eval.d_real"]);

    // Train mode with PyTorch's dropout masks; one pix2pix step.
    let masks = group(&fx, "mask");
    assert_eq!(
        masks.len(),
        g.dropouts().len(),
        "one recorded mask per dropout layer"
    );
    let a_var = Var::from_tensor(a).unwrap();
    let a_t = a_var.as_tensor();
    let fake = g
        .forward(a_t, &mut ForwardMode::train_with_masks(&masks))
        .unwrap();
    r.forward("train G(a)", &fake, &fx["train.fake"]);
    let d_fake_det = d
        .forward(&pair(a_t, &fake.detach()), NormMode::Train)
        .unwrap();
    r.forward(
        "train D(a, G(a).detach())",
        &d_fake_det,
        &fx["train.d_fake_detached"],
    );
    let d_real = d.forward(&pair(a_t, b), NormMode::Train).unwrap();
    r.forward("train D(a, b)", &d_real, &fx["train.d_real"]);
    let loss_d = loss::d_loss(&d_real, &d_fake_det).unwrap();
    r.forward("loss_D", &loss_d.reshape(1).unwrap(), &fx["train.loss_d"]);
    let gd = loss_d.backward().unwrap();
    for (name, var) in s2m_train::optim::varmap_named_vars(&d_vars) {
        if let Some(t) = fx.get(&format!("grad_d.{name}")) {
            let truth = fx.get(&format!("grad64_d.{name}"));
            r.grad(
                &format!("dloss_D/d {name}"),
                gd.get(var.as_tensor()),
                t,
                truth,
            );
        }
    }
    r.grad(
        "dloss_D/d a",
        gd.get(a_t),
        &fx["grad_d.input"],
        fx.get("grad64_d.input"),
    );

    let d_fake = d.forward(&pair(a_t, &fake), NormMode::Train).unwrap();
    r.forward("train D(a, G(a))", &d_fake, &fx["train.d_fake"]);
    let lg = loss::g_loss(&d_fake, &fake, b, cfg.lambda_l1).unwrap();
    r.forward("loss_G", &lg.total.reshape(1).unwrap(), &fx["train.loss_g"]);
    r.forward(
        "loss_G_GAN",
        &lg.gan.reshape(1).unwrap(),
        &fx["train.loss_g_gan"],
    );
    r.forward(
        "loss_G_L1",
        &lg.l1.reshape(1).unwrap(),
        &fx["train.loss_g_l1"],
    );
    let gg = lg.total.backward().unwrap();
    let mut n_g = 0;
    for (name, var) in s2m_train::optim::varmap_named_vars(&g_vars) {
        if let Some(t) = fx.get(&format!("grad_g.{name}")) {
            let truth = fx.get(&format!("grad64_g.{name}"));
            r.grad(
                &format!("dloss_G/d {name}"),
                gg.get(var.as_tensor()),
                t,
                truth,
            );
            n_g += 1;
        }
    }
    assert!(n_g >= 7, "the fixture holds G gradients ({n_g})");
    r.grad(
        "dloss_G/d a",
        gg.get(a_t),
        &fx["grad_g.input"],
        fx.get("grad64_g.input"),
    );

    // BatchNorm buffers after the step (G: one forward, D: three).
    for (prefix, vars) in [("g", &g_vars), ("d", &d_vars)] {
        let after = group(&fx, &format!("after.{prefix}"));
        assert!(!after.is_empty());
        for (name, var) in s2m_train::optim::varmap_named_vars(vars) {
            let Some(t) = after.get(&name) else { continue };
            if name.ends_with("num_batches_tracked") {
                assert_eq!(
                    var.as_tensor().to_scalar::<i64>().unwrap(),
                    t.to_scalar::<i64>().unwrap(),
                    "{prefix}.{name}"
                );
            } else {
                r.forward(&format!("after step {prefix}.{name}"), var.as_tensor(), t);
            }
        }
    }
    r
}

/// The same training step in float64 (weights, inputs and masks of the fixture converted):
/// the largest relative error of our gradients against PyTorch's float64 ones. A port that is
/// the same function gives rounding noise (~1e-12); a wrong op gives far more.
fn float64_step_error(path: &Path, cfg: &Pix2PixConfig) -> f64 {
    use candle_core::DType::F64;
    let dev = Device::Cpu;
    let fx = load_fixture(path);
    let (g, g_vars) = seeded_generator_dtype(&cfg.generator, 1, F64, &dev).unwrap();
    load_into(&group(&fx, "g"), &g_vars, path, "G").unwrap();
    let (d, d_vars) = seeded_discriminator_dtype(&cfg.discriminator, 2, F64, &dev).unwrap();
    load_into(&group(&fx, "d"), &d_vars, path, "D").unwrap();
    let a = Var::from_tensor(&fx["input.a"].to_dtype(F64).unwrap()).unwrap();
    let a_t = a.as_tensor();
    let b = fx["input.b"].to_dtype(F64).unwrap();
    let masks = group(&fx, "mask");
    let pair = |x: &Tensor, y: &Tensor| Tensor::cat(&[x, y], 1).unwrap();
    let fake = g
        .forward(a_t, &mut ForwardMode::train_with_masks(&masks))
        .unwrap();
    let d_fake_det = d
        .forward(&pair(a_t, &fake.detach()), NormMode::Train)
        .unwrap();
    let d_real = d.forward(&pair(a_t, &b), NormMode::Train).unwrap();
    let gd = loss::d_loss(&d_real, &d_fake_det)
        .unwrap()
        .backward()
        .unwrap();
    let d_fake = d.forward(&pair(a_t, &fake), NormMode::Train).unwrap();
    let gg = loss::g_loss(&d_fake, &fake, &b, cfg.lambda_l1)
        .unwrap()
        .total
        .backward()
        .unwrap();
    let rel = |ours: &Tensor, theirs: &Tensor| -> f64 {
        let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        let scale = theirs.abs().unwrap().max_all().unwrap();
        diff.to_scalar::<f64>().unwrap() / scale.to_scalar::<f64>().unwrap().max(1e-300)
    };
    let mut worst = 0f64;
    let mut n = 0;
    for (prefix, grads, vars) in [("d", &gd, &d_vars), ("g", &gg, &g_vars)] {
        for (name, var) in s2m_train::optim::varmap_named_vars(vars) {
            if let Some(t) = fx.get(&format!("grad64_{prefix}.{name}")) {
                let ours = grads.get(var.as_tensor()).expect("a gradient");
                worst = worst.max(rel(ours, t));
                n += 1;
            }
        }
        let t = &fx[&format!("grad64_{prefix}.input")];
        worst = worst.max(rel(grads.get(a_t).expect("input gradient"), t));
    }
    assert!(n > 10, "float64 gradients in the fixture ({n})");
    worst
}

impl Report {
    fn print_and_assert(&self, name: &str) {
        println!("{}", self.lines.join("\n"));
        println!(
            "{name}: worst forward {:.2e}, worst gradient {:.2e} (vs torch f32); vs torch f64: ours {:.2e}, torch f32 {:.2e}",
            self.worst_forward, self.worst_grad, self.worst_grad_f64, self.worst_torch_f64
        );
        let mut failures = self.failures.clone();
        for (what, e, e_ours) in &self.beyond_tol {
            println!(
                "{name}: {what} is {e:.2e} from torch f32 but {e_ours:.2e} from the f64 truth \
                 (torch f32's worst in this step: {:.2e})",
                self.worst_torch_f64
            );
            let tol = GRAD_TOL.max(F32_MARGIN * self.worst_torch_f64);
            if !within(*e_ours, tol) {
                failures.push(format!(
                    "{what}: rel err {e:e} vs torch f32 and {e_ours:e} vs f64 (> {tol:e})"
                ));
            }
        }
        assert!(failures.is_empty(), "{name}: {}", failures.join("; "));
    }
}

#[test]
fn tiny_fixture_matches_the_official_code() {
    check_fixture(Path::new(TINY), &Pix2PixConfig::tiny_64()).print_and_assert("tiny_64");
}

#[test]
fn fixture_provenance_is_recorded() {
    let meta = fixture_metadata(TINY);
    assert_provenance(&meta, &[]);
    assert_eq!(
        meta["reference_repository"],
        "junyanz/pytorch-CycleGAN-and-pix2pix"
    );
}

/// `S2M_PIX2PIX_BIG_FIXTURES=DIR cargo test -p baselines --test pix2pix -- --ignored --nocapture`
/// after `tools/baselines_pix2pix_fixtures.py ... --big-dir DIR`.
#[test]
#[ignore = "needs the big fixtures (S2M_PIX2PIX_BIG_FIXTURES), about 300 MB and a minute"]
fn narrow_and_official_fixtures_match_the_official_code() {
    let dir = std::env::var("S2M_PIX2PIX_BIG_FIXTURES")
        .expect("set S2M_PIX2PIX_BIG_FIXTURES to the --big-dir of the fixture script");
    let reports: Vec<(&str, Report)> = [
        ("narrow_64", Pix2PixConfig::narrow_64()),
        ("official_256", Pix2PixConfig::official_256()),
    ]
    .into_iter()
    .map(|(name, cfg)| {
        let path = Path::new(&dir).join(format!("pix2pix_{name}.safetensors"));
        let e64 = float64_step_error(&path, &cfg);
        println!("{name}: the step in float64, gradients against torch float64: rel err {e64:.2e}");
        assert!(e64 < 1e-9, "{name}: float64 gradients differ by {e64:e}");
        (name, check_fixture(&path, &cfg))
    })
    .collect();
    for (name, r) in &reports {
        r.print_and_assert(name);
    }
}
