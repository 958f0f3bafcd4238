//! SOLOv2 model tests: output shapes and layouts, errors, init, save/load.
//!
//! Parity of the forward pass (and of the parameter names and shapes) with mmdetection 3.3.0
//! itself is in `tests/solov2_mmdet.rs`.

use backbones::synthetic::synthetic_var_builder;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sketch_synth::solov2::{SoloError, SoloV2, SoloV2Config, dynamic_conv};

fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    let d = d.max(0).unwrap().to_scalar::<f32>().unwrap();
    let m = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    d / m.to_scalar::<f32>().unwrap().max(1e-12)
}

#[test]
fn output_shapes_and_flat_views() {
    // Values are compared with mmdet 3.3.0 in tests/solov2_mmdet.rs; here the shapes of a
    // batch-1 forward and the level-major, row-major flattening.
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::new(cfg.clone(), synthetic_var_builder(DType::F32, &dev)).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let out = model.forward(&x).unwrap();
    for l in 0..5 {
        let s = cfg.num_grids[l];
        assert_eq!(out.cls_logits[l].dims(), &[1, s, s, 4]);
        assert_eq!(out.kernels[l].dims(), &[1, 16, s, s]);
    }
    assert_eq!(out.mask_feats.dims(), &[1, 16, 16, 16]);

    let flat = out.flat_cls_logits().unwrap();
    assert_eq!(flat.dims(), &[1, cfg.num_cells(), 4]);
    // cell (level 1, row 2, col 3) = 144 + 2 * 10 + 3
    let want = out.cls_logits[1]
        .get(0)
        .unwrap()
        .get(2)
        .unwrap()
        .get(3)
        .unwrap();
    let got = flat.get(0).unwrap().get(144 + 23).unwrap();
    assert!(max_rel(&got, &want) < 1e-7);
    let fk = out.flat_kernels().unwrap();
    assert_eq!(fk.dims(), &[1, cfg.num_cells(), 16]);
    let want = out.kernels[1].get(0).unwrap().narrow(1, 2, 1).unwrap();
    let want = want.narrow(2, 3, 1).unwrap().flatten_all().unwrap();
    let got = fk.get(0).unwrap().get(144 + 23).unwrap();
    assert!(max_rel(&got, &want) < 1e-7);
}

#[test]
fn dynamic_conv_is_a_1x1_convolution() {
    let dev = Device::Cpu;
    let f = Tensor::arange(0f32, 24.0, &dev)
        .unwrap()
        .reshape((3, 2, 4))
        .unwrap();
    let k = Tensor::new(&[[1f32, 0.0, 0.0], [0.5, -1.0, 2.0]], &dev).unwrap();
    let m = dynamic_conv(&f, &k).unwrap();
    assert_eq!(m.dims(), &[2, 2, 4]);
    let conv = f
        .unsqueeze(0)
        .unwrap()
        .conv2d(&k.reshape((2, 3, 1, 1)).unwrap(), 0, 1, 1, 1)
        .unwrap()
        .squeeze(0)
        .unwrap();
    assert!(max_rel(&m, &conv) < 1e-7);
    let bad = Tensor::zeros((2, 4), DType::F32, &dev).unwrap();
    assert!(matches!(
        dynamic_conv(&f, &bad),
        Err(SoloError::Shape { .. })
    ));
}

#[test]
fn rejects_bad_inputs_and_configs() {
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let vm = VarMap::new();
    let model = SoloV2::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    for shape in [(1, 3, 60, 64), (1, 1, 64, 64)] {
        let x = Tensor::zeros(shape, DType::F32, &dev).unwrap();
        let e = model.forward(&x).unwrap_err();
        assert!(matches!(e, SoloError::Shape { .. }), "{e}");
        assert!(e.to_string().contains("multiples of 32"), "{e}");
    }
    let mut bad = cfg.clone();
    bad.gn_groups = 5;
    assert!(matches!(bad.validate(), Err(SoloError::Config(_))));
    let mut bad = cfg.clone();
    bad.num_grids.pop();
    assert!(bad.validate().is_err());
    let mut bad = cfg;
    bad.input_size = 100;
    assert!(bad.validate().is_err());
    for c in [
        SoloV2Config::default_r50(),
        SoloV2Config::light_r18(),
        SoloV2Config::tiny_r18(),
    ] {
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: SoloV2Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
    assert_eq!(SoloV2Config::default_r50().num_cells(), 3872);
}

#[test]
fn varmap_init_follows_mmdet() {
    // Category bias prior 0.01 -> -ln(99); GN gamma 1.
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let _ = SoloV2::new(
        SoloV2Config::tiny_r18(),
        VarBuilder::from_varmap(&vm, DType::F32, &dev),
    )
    .unwrap();
    let data = vm.data().lock().unwrap();
    let b = data["mask_head.conv_cls.bias"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(b.iter().all(|v| (v + 99f32.ln()).abs() < 1e-5));
    let g = data["mask_head.cls_convs.0.gn.weight"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    assert!(g.iter().all(|&v| v == 1.0));
    assert!(data.contains_key("mask_head.mask_feature_head.convs_all_levels.3.conv2.conv.weight"));
    assert!(data.contains_key("neck.lateral_convs.0.conv.bias"));
    assert!(data.contains_key("backbone.layer4.1.bn2.running_var"));
}

#[test]
fn load_round_trip_and_wrong_config() {
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let vm = VarMap::new();
    let model = SoloV2::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let path = std::env::temp_dir().join(format!("solov2_tiny_{}.safetensors", std::process::id()));
    vm.save(&path).unwrap();
    let loaded = SoloV2::load(&path, cfg.clone(), DType::F32, &dev).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let (a, b) = (model.forward(&x).unwrap(), loaded.forward(&x).unwrap());
    assert!(max_rel(&a.mask_feats, &b.mask_feats) == 0.0);
    let mut other = cfg;
    other.feat_channels = 64;
    let e = SoloV2::load(&path, other, DType::F32, &dev).unwrap_err();
    let msg = e.to_string();
    let _ = std::fs::remove_file(&path);
    assert!(
        msg.contains("mask_head.kernel_convs.0.conv.weight"),
        "{msg}"
    );
}

/// Timing probe (ignored: slow on a loaded 2-core machine):
/// `cargo test -p sketch-synth --test solov2_model -- --ignored --nocapture`.
#[test]
#[ignore]
fn light_r18_inference_timing() {
    let dev = Device::Cpu;
    let mut cfg = SoloV2Config::light_r18();
    cfg.input_size = 256;
    let model = SoloV2::new(cfg, synthetic_var_builder(DType::F32, &dev)).unwrap();
    let img = image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([x as u8, y as u8, (x ^ y) as u8])
    });
    let x = model.preprocess(std::slice::from_ref(&img), &dev).unwrap();
    let _ = model.forward(&x).unwrap();
    let t = std::time::Instant::now();
    let _ = model.forward(&x).unwrap();
    eprintln!(
        "light_r18 @256 batch 1: forward only {:.3} s",
        t.elapsed().as_secs_f64()
    );
    for batch in [1usize, 8] {
        let imgs = vec![img.clone(); batch];
        let _ = model.predict(&imgs[..1]).unwrap();
        let t = std::time::Instant::now();
        let p = model.predict(&imgs).unwrap();
        eprintln!(
            "light_r18 @256 batch {batch}: {:.3} s (predict incl. post-processing; {:?} in image 0)",
            t.elapsed().as_secs_f64(),
            p[0].stats
        );
    }
}

#[test]
fn batch_items_are_independent() {
    // Regression: for B > 1 the coordinate channels were a strided view, which the
    // index_select-based resize rejected. Frozen BN + GroupNorm: image 1 of a batch equals
    // image 1 alone.
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::new(cfg, synthetic_var_builder(DType::F32, &dev)).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev).unwrap();
    let both = model.forward(&x).unwrap();
    let one = model.forward(&x.narrow(0, 1, 1).unwrap()).unwrap();
    for l in 0..5 {
        let a = both.cls_logits[l].narrow(0, 1, 1).unwrap();
        assert!(max_rel(&a, &one.cls_logits[l]) < 1e-5);
        let a = both.kernels[l].narrow(0, 1, 1).unwrap();
        assert!(max_rel(&a, &one.kernels[l]) < 1e-5);
    }
    let a = both.mask_feats.narrow(0, 1, 1).unwrap();
    assert!(max_rel(&a, &one.mask_feats) < 1e-5);
}
