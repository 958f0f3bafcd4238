//! Weight loading from safetensors under torchvision names: round trip, key/shape errors, MoCo
//! prefix stripping and input-channel adaptation. Writes its own files (no fixtures needed).

use std::collections::HashMap;

use backbones::synthetic::synthetic_tensor;
use backbones::weights::{record_params, strip_prefix};
use backbones::{
    AlexNetFeatures, BackboneError, ExtraChannelInit, ResNet, ResNetConfig, Vgg16Config,
    Vgg16Features,
};
use candle_core::{DType, Device, Tensor};

fn synthetic_state_dict(cfg: ResNetConfig) -> HashMap<String, Tensor> {
    let spec = record_params(|vb| ResNet::new(cfg, vb)).unwrap();
    spec.into_iter()
        .map(|(k, s)| {
            let t = synthetic_tensor(&k, &s.into(), DType::F32, &Device::Cpu).unwrap();
            (k, t)
        })
        .collect()
}

fn input(c: usize) -> Tensor {
    let n = 2 * c * 32 * 32;
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.173).sin()).collect();
    Tensor::from_vec(v, (2, c, 32, 32), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn resnet_round_trips_through_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r18.safetensors");
    let sd = synthetic_state_dict(ResNetConfig::resnet18());
    candle_core::safetensors::save(&sd, &path).unwrap();
    let cfg = ResNetConfig::resnet18();
    let a = ResNet::load(
        &path,
        cfg,
        ExtraChannelInit::MeanOfRgb,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let b = ResNet::new(
        cfg,
        backbones::synthetic::synthetic_var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = input(3);
    let d = max_diff(
        &a.forward_pooled(&x).unwrap(),
        &b.forward_pooled(&x).unwrap(),
    );
    assert_eq!(d, 0.0);
}

#[test]
fn missing_and_misshaped_keys_are_named_with_expected_shapes() {
    let mut sd = synthetic_state_dict(ResNetConfig::resnet34());
    sd.remove("layer3.2.bn2.running_var");
    sd.insert(
        "layer4.0.downsample.0.weight".into(),
        Tensor::zeros((512, 256, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = ResNet::from_tensors(
        "r34.safetensors",
        sd,
        ResNetConfig::resnet34(),
        ExtraChannelInit::MeanOfRgb,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err();
    match &e {
        BackboneError::Weights {
            missing,
            mismatched,
            ..
        } => {
            assert_eq!(
                missing,
                &[("layer3.2.bn2.running_var".to_string(), vec![256])]
            );
            assert_eq!(mismatched.len(), 1);
            assert_eq!(mismatched[0].expected, vec![512, 256, 1, 1]);
        }
        other => panic!("unexpected error {other}"),
    }
    let s = e.to_string();
    assert!(
        s.contains("r34.safetensors") && s.contains("layer3.2.bn2.running_var (expected [256])"),
        "{s}"
    );
}

#[test]
fn wrong_architecture_is_reported_before_building() {
    // A ResNet-18 file offered as ResNet-50: bottleneck keys are missing.
    let sd = synthetic_state_dict(ResNetConfig::resnet18());
    let e = ResNet::from_tensors(
        "r18-as-r50",
        sd,
        ResNetConfig::resnet50(),
        ExtraChannelInit::MeanOfRgb,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("missing layer1.0.conv3.weight (expected [256, 64, 1, 1])"),
        "{e}"
    );
}

#[test]
fn moco_checkpoint_keys_load_after_prefix_strip() {
    // What tools/backbones_convert.py --moco produces, done here on the Rust side instead.
    let sd: HashMap<String, Tensor> = synthetic_state_dict(ResNetConfig::resnet50())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("fc."))
        .map(|(k, v)| (format!("module.encoder_q.{k}"), v))
        .chain(std::iter::once((
            "module.encoder_k.conv1.weight".to_string(),
            Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap(),
        )))
        .collect();
    let sd = strip_prefix(sd, "module.encoder_q.");
    let net = ResNet::from_tensors(
        "moco",
        sd,
        ResNetConfig::moco_v2(),
        ExtraChannelInit::MeanOfRgb,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let p = net.forward_pooled(&input(3)).unwrap();
    assert_eq!(p.dims(), &[2, 2048]);
}

#[test]
fn four_channel_resnet_loads_a_three_channel_file() {
    let sd = synthetic_state_dict(ResNetConfig::resnet18());
    let cfg = ResNetConfig::resnet18().with_in_channels(4);
    let net = ResNet::from_tensors(
        "rgb",
        sd.clone(),
        cfg,
        ExtraChannelInit::Zeros,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let rgb = ResNet::from_tensors(
        "rgb",
        sd,
        ResNetConfig::resnet18(),
        ExtraChannelInit::Zeros,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    // With zero-initialised extra filters, channel 3 is ignored.
    let x4 = input(4);
    let x3 = x4.narrow(1, 0, 3).unwrap();
    let d = max_diff(
        &net.forward_pooled(&x4).unwrap(),
        &rgb.forward_pooled(&x3).unwrap(),
    );
    assert!(d < 1e-5, "{d}");
}

#[test]
fn vgg_and_alexnet_load_and_ignore_classifier_keys() {
    let dir = tempfile::tempdir().unwrap();
    for which in ["vgg", "alex"] {
        let spec = if which == "vgg" {
            record_params(|vb| Vgg16Features::new(Vgg16Config::lpips(), vb)).unwrap()
        } else {
            record_params(AlexNetFeatures::new).unwrap()
        };
        let mut sd: HashMap<String, Tensor> = spec
            .into_iter()
            .map(|(k, s)| {
                let t = synthetic_tensor(&k, &s.into(), DType::F32, &Device::Cpu).unwrap();
                (k, t)
            })
            .collect();
        sd.insert(
            "classifier.6.bias".into(),
            Tensor::zeros(1000, DType::F32, &Device::Cpu).unwrap(),
        );
        let path = dir.path().join(format!("{which}.safetensors"));
        candle_core::safetensors::save(&sd, &path).unwrap();
        let taps = if which == "vgg" {
            Vgg16Features::load(&path, Vgg16Config::lpips(), DType::F32, &Device::Cpu)
                .unwrap()
                .forward(&input(3))
                .unwrap()
        } else {
            AlexNetFeatures::load(&path, DType::F32, &Device::Cpu)
                .unwrap()
                .forward(&input(3))
                .unwrap()
        };
        assert_eq!(taps.len(), 5);
    }
}

/// Manual check of a converted MoCo file: `BACKBONES_MOCO=/path/moco.safetensors cargo test -p
/// backbones --test loading -- --ignored`.
#[test]
#[ignore]
fn real_moco_file_loads() {
    let Ok(p) = std::env::var("BACKBONES_MOCO") else {
        return;
    };
    let net = ResNet::load(
        std::path::Path::new(&p),
        ResNetConfig::moco_v2(),
        ExtraChannelInit::MeanOfRgb,
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(net.forward_pooled(&input(3)).unwrap().dims(), &[2, 2048]);
}
