//! Loader errors, input validation, second-order gradients against finite differences (f64),
//! path-length penalty and seeded initialisation, on tiny configs.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use s2m_core::rng::rng_from_seed;
use stylegan2::init::{init_discriminator, init_generator, parameter_count};
use stylegan2::regularizers::path_length_penalty;
use stylegan2::weights::{Checkpoint, Part, generator_keys};
use stylegan2::{
    ChannelTable, GeneratorInput, StyleGan2Config, StyleGan2Error, WeightOffsets, r1_penalty,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sg2_tiny.safetensors"
);

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn micro() -> StyleGan2Config {
    StyleGan2Config {
        size: 8,
        style_dim: 8,
        n_mlp: 2,
        lr_mlp: 0.01,
        channels: ChannelTable::Explicit(BTreeMap::from([(4, 6), (8, 4)])),
        blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
    }
}

/// The fixture's generator tensors (prefix stripped), for building modified files.
fn fixture_g() -> R<HashMap<String, Tensor>> {
    let all = candle_core::safetensors::load(FIXTURE, &Device::Cpu)?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("g.").map(|k| (k.to_string(), v)))
        .collect())
}

fn write_with_config(
    dir: &std::path::Path,
    map: &HashMap<String, Tensor>,
) -> R<std::path::PathBuf> {
    let p = dir.join("model.safetensors");
    candle_core::safetensors::save(map, &p)?;
    std::fs::write(
        dir.join("model.json"),
        serde_json::to_string(&StyleGan2Config::tiny_fixture())?,
    )?;
    Ok(p)
}

#[test]
fn broken_checkpoint_reports_every_key() -> R<()> {
    let dir = tempfile::tempdir()?;
    let mut map = fixture_g()?;
    map.remove("convs.3.noise.weight");
    map.insert(
        "to_rgbs.1.bias".into(),
        Tensor::zeros((3,), DType::F32, &Device::Cpu)?,
    );
    map.insert(
        "convs.99.conv.weight".into(),
        Tensor::zeros((1,), DType::F32, &Device::Cpu)?,
    );
    let p = write_with_config(dir.path(), &map)?;
    let c = Checkpoint::open(&p)?;
    let err = c.generator("", DType::F32, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, StyleGan2Error::Keys { .. }));
    assert!(
        msg.contains("missing: convs.3.noise.weight (expected shape [1])"),
        "{msg}"
    );
    assert!(msg.contains("unexpected: convs.99.conv.weight"), "{msg}");
    assert!(
        msg.contains("mis-shaped: to_rgbs.1.bias (expected [1, 3, 1, 1], got [3])"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn wrong_prefix_and_wrong_kernel_are_reported() -> R<()> {
    let c = Checkpoint::open(FIXTURE)?;
    let msg = c.verify(Part::Generator, "g_ema").unwrap_err().to_string();
    assert!(msg.contains("missing: g_ema.style.1.weight"), "{msg}");
    // The fixture's D keys are not a generator.
    assert!(c.verify(Part::Discriminator, "g").is_err());
    c.verify(Part::Discriminator, "d.")?;

    let dir = tempfile::tempdir()?;
    let mut map = fixture_g()?;
    map.insert(
        "convs.2.conv.blur.kernel".into(),
        Tensor::ones((4, 4), DType::F32, &Device::Cpu)?,
    );
    let p = write_with_config(dir.path(), &map)?;
    let err = Checkpoint::open(&p)?
        .generator("", DType::F32, &Device::Cpu)
        .unwrap_err();
    assert!(
        err.to_string().contains("convs.2.conv.blur.kernel"),
        "{err}"
    );
    // The unmodified tensors under a JSON config load fine.
    let p = write_with_config(dir.path(), &fixture_g()?)?;
    Checkpoint::open(&p)?.generator("", DType::F32, &Device::Cpu)?;
    Ok(())
}

#[test]
fn expected_keys_match_fixture_exactly() -> R<()> {
    let c = Checkpoint::open(FIXTURE)?;
    let g: Vec<String> = c
        .shapes()
        .keys()
        .filter(|k| k.starts_with("g."))
        .cloned()
        .collect();
    let want = generator_keys(c.config())?;
    assert_eq!(g.len(), want.len());
    Ok(())
}

#[test]
fn inputs_are_validated_with_names() -> R<()> {
    let dev = Device::Cpu;
    let (g, _) = init_generator(&micro(), &mut rng_from_seed(0), DType::F32, &dev)?;
    let err = g
        .mapping(&Tensor::zeros((2, 5), DType::F32, &dev)?)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("z: expected shape [_, 8], got [2, 5]"),
        "{err}"
    );

    let nan = Tensor::new(&[[f32::NAN; 8]], &dev)?;
    let err = g.forward(&GeneratorInput::z(vec![nan])).unwrap_err();
    assert!(matches!(err, StyleGan2Error::NonFinite { .. }), "{err}");

    let z = Tensor::zeros((2, 8), DType::F32, &dev)?;
    let err = g
        .forward(&GeneratorInput::z(vec![z.clone(), z.clone()]))
        .unwrap_err();
    assert!(err.to_string().contains("inject_index"), "{err}");

    let err = g
        .forward(&GeneratorInput::w_plus(Tensor::zeros(
            (2, 5, 8),
            DType::F32,
            &dev,
        )?))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("W+ latents: expected shape [_, 4, 8]"),
        "{err}"
    );

    let mut o = WeightOffsets::new();
    o.insert(3, Tensor::zeros((2, 4, 6, 3, 3), DType::F32, &dev)?);
    let err = g
        .forward(&GeneratorInput::w(vec![z]).with_offsets(&o))
        .unwrap_err();
    assert!(err.to_string().contains("slot 3 (convs.1.conv)"), "{err}");
    Ok(())
}

#[test]
fn modulated_layer_shapes_follow_slot_order() -> R<()> {
    let shapes = stylegan2::modulated_layer_shapes(&StyleGan2Config::tiny_fixture())?;
    let names: Vec<&str> = shapes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        &names[..5],
        &[
            "conv1.conv",
            "to_rgb1.conv",
            "convs.0.conv",
            "convs.1.conv",
            "to_rgbs.0.conv"
        ]
    );
    assert_eq!(shapes.len(), 14);
    let s11 = &shapes[11];
    assert_eq!(
        (s11.name.as_str(), s11.out_ch, s11.in_ch, s11.kernel),
        ("convs.6.conv", 16, 32, 3)
    );
    assert!(shapes.iter().enumerate().all(|(i, s)| s.slot == i));
    Ok(())
}

/// R1 as a plain function of one D weight, for finite differences.
fn r1_at(
    cfg: &StyleGan2Config,
    seed: u64,
    x: &Tensor,
    w_name: &str,
    idx: usize,
    delta: f64,
) -> R<f64> {
    let (d, vm) = init_discriminator(cfg, &mut rng_from_seed(seed), DType::F64, &Device::Cpu)?;
    if delta != 0.0 {
        let data = vm.data().lock().map_err(|_| "lock")?;
        let v = data.get(w_name).ok_or("no var")?;
        let mut vals: Vec<f64> = v.as_tensor().flatten_all()?.to_vec1()?;
        vals[idx] += delta;
        v.set(&Tensor::from_vec(
            vals,
            v.as_tensor().shape(),
            &Device::Cpu,
        )?)?;
    }
    Ok(r1_penalty(&d, x)?.penalty.to_scalar::<f64>()?)
}

#[test]
fn r1_second_order_gradient_matches_finite_differences() -> R<()> {
    let cfg = micro();
    let dev = Device::Cpu;
    let x = Tensor::from_vec(
        s2m_core::rng::randn_vec(&mut rng_from_seed(5), 4 * 3 * 64)
            .into_iter()
            .map(|v| v as f64)
            .collect::<Vec<_>>(),
        (4, 3, 8, 8),
        &dev,
    )?;
    let (d, vm) = init_discriminator(&cfg, &mut rng_from_seed(9), DType::F64, &dev)?;
    let r1 = r1_penalty(&d, &x)?;
    let grads = r1.penalty.backward()?;
    for name in [
        "convs.0.0.weight",
        "convs.1.conv1.0.weight",
        "convs.1.skip.1.weight",
        "final_linear.0.weight",
    ] {
        let var = vm
            .data()
            .lock()
            .map_err(|_| "lock")?
            .get(name)
            .ok_or("no var")?
            .clone();
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .ok_or("no grad")?
            .flatten_all()?
            .to_vec1()?;
        for idx in [0, g.len() / 2, g.len() - 1] {
            let eps = 1e-5;
            let fd = (r1_at(&cfg, 9, &x, name, idx, eps)? - r1_at(&cfg, 9, &x, name, idx, -eps)?)
                / (2.0 * eps);
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                (fd - g[idx]).abs() <= 1e-6 * scale.max(1e-12) + 1e-10,
                "{name}[{idx}]: fd {fd:e} vs analytic {:e}",
                g[idx]
            );
        }
    }
    Ok(())
}

#[test]
fn path_length_penalty_reaches_mapping() -> R<()> {
    let cfg = micro();
    let dev = Device::Cpu;
    let mut rng = rng_from_seed(3);
    let (g, vm) = init_generator(&cfg, &mut rng, DType::F32, &dev)?;
    let z = Tensor::from_vec(s2m_core::rng::randn_vec(&mut rng, 2 * 8), (2, 8), &dev)?;
    let input = GeneratorInput::z(vec![z]).with_noise(stylegan2::NoiseMode::Random { seed: 4 });
    let pl = path_length_penalty(&g, &input, 0.0, 0.01, &mut rng)?;
    let a = pl.mean_path_length;
    assert!(a.is_finite() && a > 0.0);
    let grads = pl.penalty.backward()?;
    for name in ["style.1.weight", "convs.0.conv.weight"] {
        let v = vm
            .data()
            .lock()
            .map_err(|_| "lock")?
            .get(name)
            .ok_or("no var")?
            .clone();
        let gn: f32 = grads
            .get(v.as_tensor())
            .ok_or("no grad")?
            .abs()?
            .sum_all()?
            .to_scalar()?;
        assert!(gn > 0.0 && gn.is_finite(), "{name}: {gn}");
    }
    Ok(())
}

#[test]
fn seeded_init_is_reproducible_and_sized() -> R<()> {
    let dev = Device::Cpu;
    let cfg = StyleGan2Config::phantom_64();
    let (g1, vm) = init_generator(&cfg, &mut rng_from_seed(1), DType::F32, &dev)?;
    let (_, dvm) = init_discriminator(&cfg, &mut rng_from_seed(1), DType::F32, &dev)?;
    println!(
        "phantom_64: G {} params, D {} params",
        parameter_count(&vm),
        parameter_count(&dvm)
    );
    assert!((1_000_000..3_000_000).contains(&parameter_count(&vm)));
    let m = g1.mean_latent(64, &mut rng_from_seed(2))?;
    assert_eq!(m.dims(), &[1, 128]);
    let (g2, _) = init_generator(&cfg, &mut rng_from_seed(1), DType::F32, &dev)?;
    let z = Tensor::ones((1, 128), DType::F32, &dev)?;
    let a = g1.forward(&GeneratorInput::z(vec![z.clone()]))?.image;
    let b = g2.forward(&GeneratorInput::z(vec![z]))?.image;
    assert_eq!(a.dims(), &[1, 3, 64, 64]);
    let diff: f32 = (a - b)?.abs()?.max_all()?.to_scalar()?;
    assert_eq!(diff, 0.0);
    Ok(())
}
