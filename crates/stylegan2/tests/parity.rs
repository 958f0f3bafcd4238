//! Parity with the PyTorch reference (rosinality StyleGAN2 as vendored by HyperStyle), using
//! the fixture `tests/fixtures/sg2_tiny.safetensors` (see its README in shared/fixtures).
//! Tolerances: forward |err| <= 1e-4·max|ref|, gradients 1e-3·max|ref|.

use candle_core::{DType, Device, Tensor, Var};
use stylegan2::weights::Checkpoint;
use stylegan2::{GeneratorInput, NoiseMode, StyleGan2Config, WeightOffsets, r1_penalty};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sg2_tiny.safetensors"
);
const FWD_TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 1e-3;

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn ckpt() -> R<Checkpoint> {
    Ok(Checkpoint::open(FIXTURE)?)
}

fn t(c: &Checkpoint, name: &str) -> R<Tensor> {
    Ok(c.tensor(name, DType::F32, &Device::Cpu)?)
}

/// Asserts `got` matches `want` within `tol`·max|want| and returns (max abs err, max|ref|).
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) -> R<(f64, f64)> {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g = got.to_dtype(DType::F64)?.flatten_all()?;
    let w = want.to_dtype(DType::F64)?.flatten_all()?;
    let err: f64 = (&g - &w)?.abs()?.max(0)?.to_scalar()?;
    let scale: f64 = w.abs()?.max(0)?.to_scalar()?;
    let rel = err / scale.max(1e-30);
    println!("PARITY {what:<36} max|err| = {err:.3e}  max|ref| = {scale:.3e}  rel = {rel:.3e}");
    assert!(
        err <= tol * scale,
        "{what}: max abs err {err:e} > {tol:e} x max|ref| {scale:e}"
    );
    Ok((err, scale))
}

#[test]
fn fixture_config_matches_preset() -> R<()> {
    assert_eq!(ckpt()?.config(), &StyleGan2Config::tiny_fixture());
    Ok(())
}

#[test]
fn generator_forward_parity() -> R<()> {
    let c = ckpt()?;
    let dev = Device::Cpu;
    let g = c.generator("g", DType::F32, &dev)?;
    let z = t(&c, "in.z")?;
    let w = g.mapping(&z)?;
    assert_close("out.w", &w, &t(&c, "out.w")?, FWD_TOL)?;

    let img = g.forward(&GeneratorInput::z(vec![z.clone()]))?.image;
    assert_close("out.img_z", &img, &t(&c, "out.img_z")?, FWD_TOL)?;

    let img = g
        .forward(&GeneratorInput::w_plus(t(&c, "in.w_plus")?))?
        .image;
    assert_close("out.img_wplus", &img, &t(&c, "out.img_wplus")?, FWD_TOL)?;

    let input = GeneratorInput::z(vec![z.clone()]).with_truncation(0.7, t(&c, "in.trunc_latent")?);
    let img = g.forward(&input)?.image;
    assert_close(
        "out.img_trunc0p7",
        &img,
        &t(&c, "out.img_trunc0p7")?,
        FWD_TOL,
    )?;

    let input = GeneratorInput::z(vec![z, t(&c, "in.z2")?]).with_inject_index(3);
    let img = g.forward(&input)?.image;
    assert_close(
        "out.img_mix_inject3",
        &img,
        &t(&c, "out.img_mix_inject3")?,
        FWD_TOL,
    )?;
    Ok(())
}

fn fixture_offsets(c: &Checkpoint) -> R<WeightOffsets> {
    let mut o = WeightOffsets::new();
    for slot in 0..14 {
        let name = format!("in.delta.{slot}");
        if c.contains(&name) {
            o.insert(slot, t(c, &name)?);
        }
    }
    assert_eq!(o.slots().count(), 9);
    Ok(o)
}

#[test]
fn weight_offsets_parity_and_gradient() -> R<()> {
    let c = ckpt()?;
    let g = c.generator("g", DType::F32, &Device::Cpu)?;
    let mut offsets = fixture_offsets(&c)?;
    let d0 = Var::from_tensor(&t(&c, "in.delta.0")?)?;
    offsets.insert(0, d0.as_tensor().clone());
    let input = GeneratorInput::w(vec![t(&c, "out.w")?]).with_offsets(&offsets);
    let img = g.forward(&input)?.image;
    assert_close("out.img_delta", &img, &t(&c, "out.img_delta")?, FWD_TOL)?;
    let grads = (img * t(&c, "in.img_probe")?)?.sum_all()?.backward()?;
    let gd = grads.get(d0.as_tensor()).ok_or("no grad for delta 0")?;
    assert_close("grad.delta.0", gd, &t(&c, "grad.delta.0")?, GRAD_TOL)?;
    Ok(())
}

#[test]
fn w_plus_gradient_parity() -> R<()> {
    let c = ckpt()?;
    let g = c.generator("g", DType::F32, &Device::Cpu)?;
    let wp = Var::from_tensor(&t(&c, "in.w_plus")?)?;
    let img = g
        .forward(&GeneratorInput::w_plus(wp.as_tensor().clone()))?
        .image;
    let grads = (img * t(&c, "in.img_probe")?)?.sum_all()?.backward()?;
    let gw = grads.get(wp.as_tensor()).ok_or("no grad for w_plus")?;
    assert_close("grad.w_plus", gw, &t(&c, "grad.w_plus")?, GRAD_TOL)?;
    Ok(())
}

#[test]
fn discriminator_and_r1_parity() -> R<()> {
    let c = ckpt()?;
    let dev = Device::Cpu;
    let (d, varmap) = c.trainable_discriminator("d", DType::F32, &dev)?;
    let x0 = t(&c, "out.img_z")?;
    assert_close("out.d", &d.forward(&x0)?, &t(&c, "out.d")?, FWD_TOL)?;

    let x = Var::from_tensor(&x0)?;
    let grads = d.forward(x.as_tensor())?.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).ok_or("no grad for D input")?;
    assert_close("grad.d_input", gx, &t(&c, "grad.d_input")?, GRAD_TOL)?;

    let r1 = r1_penalty(&d, &x0)?;
    // The reference stores R1 as [1]; ours is a scalar.
    assert_close(
        "out.r1",
        &r1.penalty.reshape(1)?,
        &t(&c, "out.r1")?,
        FWD_TOL,
    )?;
    let grads = r1.penalty.backward()?;
    let w = varmap
        .data()
        .lock()
        .map_err(|_| "lock")?
        .get("convs.0.0.weight")
        .ok_or("no var convs.0.0.weight")?
        .clone();
    let gw = grads.get(w.as_tensor()).ok_or("no second-order grad")?;
    assert_close(
        "grad.r1_wrt_d.convs.0.0.weight",
        gw,
        &t(&c, "grad.r1_wrt_d.convs.0.0.weight")?,
        GRAD_TOL,
    )?;
    Ok(())
}

#[test]
fn zero_offsets_equal_shared_path() -> R<()> {
    let c = ckpt()?;
    let g = c.generator("g", DType::F32, &Device::Cpu)?;
    let w = t(&c, "out.w")?;
    let b = w.dim(0)?;
    // Zero offsets on every slot (ToRGB included), alternating 1×1 and k×k shapes.
    let mut offsets = WeightOffsets::new();
    for l in g.modulated_layer_shapes() {
        let k = if l.slot % 2 == 0 { 1 } else { l.kernel };
        offsets.insert(
            l.slot,
            Tensor::zeros((b, l.out_ch, l.in_ch, k, k), DType::F32, &Device::Cpu)?,
        );
    }
    let shared = g.forward(&GeneratorInput::w(vec![w.clone()]))?.image;
    let per = g
        .forward(&GeneratorInput::w(vec![w]).with_offsets(&offsets))?
        .image;
    assert_close("zero offsets vs shared", &per, &shared, 1e-5)?;
    Ok(())
}

#[test]
fn noise_modes_behave() -> R<()> {
    let c = ckpt()?;
    let g = c.generator("g", DType::F32, &Device::Cpu)?;
    let z = t(&c, "in.z")?;
    let run = |m: NoiseMode| -> R<Tensor> {
        Ok(
            g.forward(&GeneratorInput::z(vec![z.clone()]).with_noise(m))?
                .image,
        )
    };
    let a = run(NoiseMode::Random { seed: 1 })?;
    let b = run(NoiseMode::Random { seed: 1 })?;
    let c2 = run(NoiseMode::Random { seed: 2 })?;
    let zero = run(NoiseMode::Zero)?;
    let diff = |x: &Tensor, y: &Tensor| -> R<f64> {
        Ok((x - y)?
            .abs()?
            .max_all()?
            .to_dtype(DType::F64)?
            .to_scalar()?)
    };
    assert_eq!(diff(&a, &b)?, 0.0, "same seed, same noise");
    assert!(diff(&a, &c2)? > 1e-4, "different seeds differ");
    assert!(diff(&a, &zero)? > 1e-4, "noise matters");
    // Explicit noise equal to the buffers reproduces Const.
    let explicit = run(NoiseMode::Explicit(g.noise_buffers().to_vec()))?;
    let konst = run(NoiseMode::Const)?;
    assert_eq!(diff(&explicit, &konst)?, 0.0);
    Ok(())
}
