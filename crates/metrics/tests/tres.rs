//! TReS against pyiqa's `TReS` (eval) with synthetic weights: the ResNet-18 variant (d_model
//! 960, same code path as ResNet-50's 3840) and 4 uniform crops, on an image larger than 224
//! and one that is upscaled first (fixture from `tools/metrics_tres_fixture.py`).

use std::path::PathBuf;

use backbones::ResNetConfig;
use backbones::synthetic::synthetic_var_builder;
use candle_core::{DType, Device};
use metrics::MetricsError;
use metrics::tres::{Tres, TresConfig, crop_positions};

#[test]
fn tres_matches_pyiqa() {
    let dev = Device::Cpu;
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tres.safetensors");
    let f = candle_core::safetensors::load(&p, &dev).unwrap();
    let cfg = TresConfig {
        backbone: ResNetConfig::resnet18(),
        crops: 4,
        ..TresConfig::default()
    };
    assert_eq!(cfg.d_model(), 960);
    let m = Tres::new(cfg, synthetic_var_builder(DType::F32, &dev)).unwrap();
    for name in ["large", "small"] {
        let x = (f[&format!("image_{name}")].to_dtype(DType::F32).unwrap() / 255.0).unwrap();
        let s = m.score(&x).unwrap()[0];
        let want = f[&format!("score_{name}")].to_vec1::<f32>().unwrap()[0];
        println!("{name}: rust {s} pyiqa {want}");
        assert!(
            (s - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{s} vs {want}"
        );
    }
}

#[test]
fn crop_grid_follows_pyiqa_uniform_crop() {
    // 50 crops: 8x8 grid, step (side - 224) // 7, first 50 in row-major order.
    let p = crop_positions(512, 384, 50, 224);
    assert_eq!(p.len(), 50);
    assert_eq!(p[0], (0, 0));
    assert_eq!(p[1], (0, 22));
    assert_eq!(p[8], (41, 0));
    assert_eq!(p[49], (6 * 41, 22));
}

#[test]
fn missing_weights_say_not_available() {
    let e = Tres::load(
        std::path::Path::new("weights/none_tres.safetensors"),
        &Device::Cpu,
    )
    .err()
    .unwrap();
    assert!(matches!(e, MetricsError::WeightsMissing(_)));
}
