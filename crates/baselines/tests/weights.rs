//! Loading official checkpoints and refusing bad input.
//!
//! `tests/fixtures/pix2pix_tiny_net_{G,D}.safetensors` are official-format checkpoints
//! (`torch.save(net.state_dict(), 'latest_net_G.pth')` on the junyanz objects, written by
//! `tools/baselines_pix2pix_fixtures.py --checkpoint-dir`) converted by
//! `tools/baselines_convert.py --norm batch`; their weights are those of `pix2pix_tiny`.

use std::collections::HashMap;
use std::path::PathBuf;

use baselines::BaselinesError;
use baselines::layers::{BatchNorm2d, Dropout, DropoutMode, ForwardMode, NormMode};
use baselines::pix2pix::{Pix2Pix, Pix2PixConfig, load_discriminator, load_generator};
use candle_core::{DType, Device, Tensor};
use s2m_core::testing::{load_fixture, rel_err};

mod common;
use common::fixture;

fn net_g() -> PathBuf {
    fixture("pix2pix_tiny_net_G.safetensors")
}

#[test]
fn converted_official_checkpoints_load_and_match() {
    let dev = Device::Cpu;
    let cfg = Pix2PixConfig::tiny_64();
    let fx = load_fixture(fixture("pix2pix_tiny.safetensors"));
    let (g, _) = load_generator(&cfg.generator, &net_g(), &dev).unwrap();
    let (d, _) = load_discriminator(
        &cfg.discriminator,
        &fixture("pix2pix_tiny_net_D.safetensors"),
        &dev,
    )
    .unwrap();
    let a = &fx["input.a"];
    let fake = g.forward(a, &mut ForwardMode::eval()).unwrap();
    let e = rel_err(&fake, &fx["eval.fake"]);
    assert!(e <= 1e-4, "G from the converted checkpoint: rel err {e:e}");
    let pair = Tensor::cat(&[a, &fx["input.b"]], 1).unwrap();
    let real = d.forward(&pair, NormMode::Eval).unwrap();
    let e = rel_err(&real, &fx["eval.d_real"]);
    assert!(e <= 1e-4, "D from the converted checkpoint: rel err {e:e}");
    // num_batches_tracked came through as i64 (three warm-up forwards of G).
    assert_eq!(g.batch_norms()[0].num_batches_tracked().unwrap(), 3);
    assert_eq!(d.batch_norms()[0].num_batches_tracked().unwrap(), 6);
}

/// Writes `tensors` to a temp file and tries to load it as the tiny G.
fn load_g_from(tensors: &HashMap<String, Tensor>) -> BaselinesError {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.safetensors");
    candle_core::safetensors::save(tensors, &p).unwrap();
    match load_generator(&Pix2PixConfig::tiny_64().generator, &p, &Device::Cpu) {
        Ok(_) => panic!("loaded a bad state dict"),
        Err(e) => e,
    }
}

fn tiny_g_tensors() -> HashMap<String, Tensor> {
    load_fixture(net_g())
}

#[test]
fn a_missing_key_is_named() {
    let mut t = tiny_g_tensors();
    t.remove("model.model.1.model.2.running_var").unwrap();
    let e = load_g_from(&t).to_string();
    assert!(
        e.contains("model.model.1.model.2.running_var") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn an_unexpected_key_is_named() {
    let mut t = tiny_g_tensors();
    t.insert(
        "model.model.9.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_g_from(&t).to_string();
    assert!(e.contains("model.model.9.weight"), "{e}");
}

#[test]
fn a_wrong_shape_is_named() {
    let mut t = tiny_g_tensors();
    t.insert(
        "model.model.0.weight".into(),
        Tensor::zeros((2, 1, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = load_g_from(&t).to_string();
    assert!(
        e.contains("model.model.0.weight") && e.contains("[2, 1, 3, 3]"),
        "{e}"
    );
}

#[test]
fn weights_of_another_config_are_refused() {
    let e = match load_generator(
        &Pix2PixConfig::narrow_64().generator,
        &net_g(),
        &Device::Cpu,
    ) {
        Ok(_) => panic!("tiny weights loaded into the narrow config"),
        Err(e) => e,
    };
    assert!(matches!(e, BaselinesError::Weights { .. }), "{e}");
}

#[test]
fn corrupt_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corrupt.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let cfg = Pix2PixConfig::tiny_64().generator;
    let e = load_generator(&cfg, &bad, &Device::Cpu).err().unwrap();
    assert!(
        e.to_string().contains("corrupt.safetensors") && e.to_string().contains("valid"),
        "{e}"
    );
    // Truncated: the first half of a real file.
    let bytes = std::fs::read(net_g()).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_generator(&cfg, &cut, &Device::Cpu).is_err());
    let e = load_generator(&cfg, &dir.path().join("absent.safetensors"), &Device::Cpu)
        .err()
        .unwrap();
    assert!(e.to_string().contains("absent.safetensors"), "{e}");
}

#[test]
fn wrong_input_shapes_are_errors_not_panics() {
    let dev = Device::Cpu;
    let m = Pix2Pix::seeded(&Pix2PixConfig::tiny_64(), 3, &dev).unwrap();
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &dev).unwrap();
    let shape_err = |r: baselines::Result<Tensor>| match r {
        Err(BaselinesError::Shape { .. }) => {}
        other => panic!(
            "expected a shape error, got {:?}",
            other.map(|t| t.dims().to_vec())
        ),
    };
    // Wrong channels, wrong size, not 4-D, a size that is not a multiple of 2^num_downs.
    shape_err(m.generate(&z(&[1, 3, 64, 64]), &mut ForwardMode::eval()));
    shape_err(m.generate(&z(&[1, 1, 32, 32]), &mut ForwardMode::eval()));
    shape_err(m.generate(&z(&[1, 64, 64]), &mut ForwardMode::eval()));
    shape_err(
        m.generator
            .forward(&z(&[1, 1, 96, 96]), &mut ForwardMode::eval()),
    );
    shape_err(m.discriminate(&z(&[1, 1, 64, 64]), &z(&[1, 1, 64, 64]), NormMode::Eval));
    shape_err(m.discriminate(&z(&[2, 1, 64, 64]), &z(&[1, 3, 64, 64]), NormMode::Eval));
    shape_err(m.discriminator.forward(&z(&[1, 4, 8, 8]), NormMode::Eval));
    // A multiple of 64 is fine for the fully convolutional G.
    let y = m
        .generator
        .forward(&z(&[1, 1, 128, 128]), &mut ForwardMode::eval())
        .unwrap();
    assert_eq!(y.dims(), &[1, 3, 128, 128]);
}

#[test]
fn train_mode_batch_norm_over_one_value_is_refused() {
    let (bn, _) =
        s2m_core::init::seeded_var_map(0, DType::F32, &Device::Cpu, |vb| BatchNorm2d::new(4, vb))
            .unwrap();
    let x = Tensor::ones((1, 4, 1, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        bn.forward(&x, NormMode::Train),
        Err(BaselinesError::Shape { .. })
    ));
    assert!(bn.forward(&x, NormMode::Eval).is_ok());
    let wrong = Tensor::ones((2, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(bn.forward(&wrong, NormMode::Eval).is_err());
}

#[test]
fn dropout_masks_must_be_given_by_name() {
    let d = Dropout::new(0.5, "model.model.1.model.7").unwrap();
    let x = Tensor::ones((1, 2, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let none = HashMap::new();
    assert!(matches!(
        d.forward(&x, &mut DropoutMode::Given(&none)),
        Err(BaselinesError::MissingMask { key }) if key == "model.model.1.model.7"
    ));
    let mut wrong = HashMap::new();
    wrong.insert(
        "model.model.1.model.7".to_string(),
        Tensor::ones(3, DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(d.forward(&x, &mut DropoutMode::Given(&wrong)).is_err());
    assert!(Dropout::new(1.0, "x").is_err());
}

#[test]
fn configs_are_validated() {
    let mut c = Pix2PixConfig::narrow_64();
    c.generator.num_downs = 4;
    assert!(c.validate().is_err());
    let mut c = Pix2PixConfig::narrow_64();
    c.image_size = 96;
    assert!(c.validate().is_err());
    let mut c = Pix2PixConfig::narrow_64();
    c.discriminator.input_nc = 3;
    assert!(c.validate().is_err());
    let mut c = Pix2PixConfig::narrow_64();
    c.lambda_l1 = f64::NAN;
    assert!(c.validate().is_err());
    for c in [
        Pix2PixConfig::official_256(),
        Pix2PixConfig::official_64(),
        Pix2PixConfig::narrow_64(),
        Pix2PixConfig::tiny_64(),
        Pix2PixConfig::narrow_64().with_channels(3, 3),
    ] {
        c.validate().unwrap();
    }
    // Parameter counts of the official UnetGenerator(1, 3, 6, ngf) / NLayerDiscriminator(4, ndf).
    let count = |cfg: &Pix2PixConfig| {
        let n = |v: Vec<(String, Vec<usize>)>| -> usize {
            v.iter()
                .filter(|(k, _)| !baselines::weights::is_buffer(k))
                .map(|(_, s)| s.iter().product::<usize>())
                .sum()
        };
        let g = baselines::pix2pix::parameter_shapes(|vb| {
            baselines::pix2pix::UnetGenerator::new(&cfg.generator, vb)
        })
        .unwrap();
        let d = baselines::pix2pix::parameter_shapes(|vb| {
            baselines::pix2pix::PatchGan::new(&cfg.discriminator, vb)
        })
        .unwrap();
        (n(g), n(d))
    };
    assert_eq!(count(&Pix2PixConfig::narrow_64()), (7_313_731, 695_201));
    assert_eq!(count(&Pix2PixConfig::tiny_64()), (28_951, 3_131));
    // The serde form round-trips.
    let c = Pix2PixConfig::narrow_64();
    let back: Pix2PixConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}
