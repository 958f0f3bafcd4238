//! Bad input gives clear errors: mismatched pairs, wrong channel counts, images too small,
//! values outside the required range, NaN, missing and mis-shaped weight files.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use losses::weights::{self, shipped_weights_dir};
use losses::{
    Dists, LossError, Lpips, LpipsNet, MocoLoss, SimilarityLoss, StLpips, l2_loss, r1_penalty,
};

fn img(shape: &[usize], value: f32) -> Tensor {
    Tensor::full(value, shape, &Device::Cpu).unwrap()
}

fn st() -> StLpips {
    StLpips::shipped_alex(&Device::Cpu).unwrap()
}

#[test]
fn mismatched_pairs_and_channels() {
    let m = st();
    let e = m
        .distance(&img(&[1, 3, 32, 32], 0.0), &img(&[1, 3, 32, 40], 0.0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("differ in shape") && e.contains("[1, 3, 32, 40]"),
        "{e}"
    );
    let e = m
        .distance(&img(&[2, 3, 32, 32], 0.0), &img(&[1, 3, 32, 32], 0.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in shape"), "{e}");
    let e = m
        .distance(&img(&[1, 1, 32, 32], 0.0), &img(&[1, 1, 32, 32], 0.0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[B, 3, H, W]") && e.contains("[1, 1, 32, 32]"),
        "{e}"
    );
    let e = m
        .distance(&img(&[1, 3, 20, 20], 0.0), &img(&[1, 3, 20, 20], 0.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains(">= 21"), "{e}");
    assert!(
        m.distance(&img(&[1, 3, 21, 21], 0.0), &img(&[1, 3, 21, 21], 0.1))
            .is_ok()
    );
    let e = l2_loss(&img(&[1, 3, 4, 4], 0.0), &img(&[1, 3, 4, 5], 0.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ in shape"), "{e}");
}

#[test]
fn values_outside_the_range_are_rejected_with_a_tolerance() {
    let m = st();
    let ok = img(&[1, 3, 32, 32], 0.0);
    // Inside the tolerance (1e-3): accepted.
    assert!(m.distance(&img(&[1, 3, 32, 32], 1.0005), &ok).is_ok());
    let e = m.distance(&img(&[1, 3, 32, 32], 1.01), &ok).unwrap_err();
    assert!(matches!(e, LossError::Range { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("[-1, 1]") && e.contains("first image"), "{e}");
    let e = m
        .distance(&ok, &img(&[1, 3, 32, 32], 200.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("second image") && e.contains("[0, 255]"), "{e}");
    let e = m
        .distance(&img(&[1, 3, 32, 32], f32::NAN), &ok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");
    // Training losses check the target only: an unclamped prediction is fine.
    assert!(m.loss(&img(&[1, 3, 32, 32], 1.7), &ok).is_ok());
    assert!(m.loss(&ok, &img(&[1, 3, 32, 32], 1.7)).is_err());
    // DISTS wants [0, 1].
    let d = Dists::new(
        backbones::synthetic::synthetic_var_builder(DType::F32, &Device::Cpu),
        candle_nn::VarBuilder::from_tensors(
            candle_core::safetensors::load(
                shipped_weights_dir().join(weights::DISTS_ALPHA_BETA),
                &Device::Cpu,
            )
            .unwrap(),
            DType::F32,
            &Device::Cpu,
        ),
    )
    .unwrap();
    let e = d
        .distance(&img(&[1, 3, 16, 16], -0.5), &img(&[1, 3, 16, 16], 0.5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[0, 1]") && e.contains("(x + 1) / 2"), "{e}");
}

#[test]
fn missing_weight_files_name_the_file_and_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let e = Lpips::from_dir(LpipsNet::Alex, dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("alexnet.safetensors") && e.contains("tools/backbones_convert.py"),
        "{e}"
    );
    let e = Lpips::from_dir(LpipsNet::Vgg, dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vgg16.safetensors") && e.contains("vgg16-397923af.pth"),
        "{e}"
    );
    let e = StLpips::from_dir(LpipsNet::Vgg, dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("stlpips_vgg.safetensors") && e.contains("--stlpips-vgg"),
        "{e}"
    );
    let e = StLpips::from_dir(LpipsNet::Alex, dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("convert_perceptual_weights.py"), "{e}");
    let e = MocoLoss::from_dir(dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("moco_v2_resnet50.safetensors") && e.contains("--moco"),
        "{e}"
    );
    let e = Dists::from_dir(dir.path(), DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vgg16.safetensors"), "{e}");
    assert!(SimilarityLoss::cpu_default(dir.path()).is_err());
}

#[test]
fn misshaped_and_missing_keys_are_listed_by_name() {
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> =
        candle_core::safetensors::load(shipped_weights_dir().join(weights::STLPIPS_ALEX), &dev)
            .unwrap();
    t.remove("lin4.model.1.weight");
    t.insert(
        "net.slice2.5.weight".into(),
        Tensor::zeros((192, 64, 3, 3), DType::F32, &dev).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(weights::STLPIPS_ALEX);
    candle_core::safetensors::save(&t, &p).unwrap();
    let e = StLpips::load(LpipsNet::Alex, &p, DType::F32, &dev)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing lin4.model.1.weight (expected [1, 256, 1, 1])"),
        "{e}"
    );
    assert!(
        e.contains(
            "mis-shaped net.slice2.5.weight: expected [192, 64, 5, 5], found [192, 64, 3, 3]"
        ),
        "{e}"
    );
}

#[test]
fn cpu_default_falls_back_to_shipped_stlpips_and_says_so() {
    let s = SimilarityLoss::cpu_default(&shipped_weights_dir()).unwrap();
    assert_eq!(s.perceptual().name(), "ST-LPIPS-alex");
    assert!(s.moco().is_none());
    let notes = s.notes().join("\n");
    assert!(
        notes.contains("ST-LPIPS-alex") && notes.contains("alexnet.safetensors"),
        "{notes}"
    );
    assert!(
        notes.contains("MoCo") && notes.contains("left out"),
        "{notes}"
    );
    assert_eq!((s.l2, s.lpips_weight, s.moco_weight), (1.0, 0.8, 0.5));
    assert!(s.clone().with_weights(1.0, -0.1, 0.0).is_err());
    assert!(s.clone().with_weights(1.0, f64::NAN, 0.0).is_err());
    let y = img(&[1, 3, 32, 32], 0.2);
    let e = s
        .forward(&y, &img(&[1, 3, 32, 32], 3.0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("similarity loss target"), "{e}");
    let t = s.forward(&img(&[1, 3, 32, 32], 1.5), &y).unwrap();
    assert!(t.moco.is_none());
}

#[test]
fn r1_needs_a_discriminator_that_reads_its_input() {
    let real = img(&[2, 3, 4, 4], 0.1);
    let e = r1_penalty(
        |x: &Tensor| -> candle_core::Result<Tensor> {
            Tensor::zeros((x.dim(0)?, 1), DType::F32, &Device::Cpu)
        },
        &real,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not depend on its input"), "{e}");
}
