//! SOLOv2 Matrix NMS and inference tests.
//!
//! Fixtures from `tools/solov2_fixtures.py` (a torch re-implementation of mmdetection's
//! `mask_matrix_nms` and `SOLOV2Head._predict_by_feat_single`; mmdet itself not installed),
//! plus hand-computed Matrix NMS cases.

use backbones::synthetic::synthetic_var_builder;
use candle_core::{DType, Device, Tensor};
use image::{GrayImage, Luma, RgbImage};
use sketch_synth::SketchConfig;
use sketch_synth::is_blank;
use sketch_synth::solov2::{
    EmptySketchCounter, InferenceStats, MatrixNmsParams, NmsKernel, Prediction, SoloError, SoloV2,
    SoloV2Config, matrix_nms, postprocess, sketch_from_image, sketch_from_prediction,
};

fn fixture(name: &str) -> std::collections::HashMap<String, Tensor> {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    candle_core::safetensors::load(p, &Device::Cpu).expect("fixture")
}

fn params(kernel: NmsKernel) -> MatrixNmsParams {
    MatrixNmsParams {
        kernel,
        ..Default::default()
    }
}

#[test]
fn matrix_nms_hand_computed() {
    let dev = Device::Cpu;
    // A = [1,1,0,0] (0.9, class 0), B = [1,1,1,1] (0.8, class 0; IoU(A,B) = 0.5),
    // C = [1,1,0,0] (0.7, class 1; same pixels as A, other class), D = [0,0,1,1] (0.6, class 0;
    // IoU(B,D) = 0.5, IoU(A,D) = 0, so B's compensation 0.5 cancels the decay).
    let m = Tensor::new(
        &[
            [[1f32, 1., 0., 0.]],
            [[1., 1., 1., 1.]],
            [[1., 1., 0., 0.]],
            [[0., 0., 1., 1.]],
        ],
        &dev,
    )
    .unwrap();
    // Input deliberately unsorted: indices refer to this order.
    let order = [2usize, 0, 3, 1];
    let m = m
        .index_select(&Tensor::new(&[2u32, 0, 3, 1], &dev).unwrap(), 0)
        .unwrap();
    let all_labels = [0usize, 0, 1, 0];
    let all_scores = [0.9f32, 0.8, 0.7, 0.6];
    let labels: Vec<usize> = order.iter().map(|&i| all_labels[i]).collect();
    let scores: Vec<f32> = order.iter().map(|&i| all_scores[i]).collect();

    let g = matrix_nms(&m, &labels, &scores, None, &params(NmsKernel::Gaussian)).unwrap();
    let b = 0.8 * (-0.5f32).exp();
    assert_eq!(g.keep, vec![1, 0, 2, 3]); // A, C, D, B in input indices
    let want = [0.9, 0.7, 0.6, b];
    for (s, w) in g.scores.iter().zip(want) {
        assert!((s - w).abs() < 1e-6, "{:?}", g.scores);
    }
    let l = matrix_nms(&m, &labels, &scores, None, &params(NmsKernel::Linear)).unwrap();
    let want = [0.9, 0.7, 0.6, 0.4];
    for (s, w) in l.scores.iter().zip(want) {
        assert!((s - w).abs() < 1e-6, "{:?}", l.scores);
    }
    // filter_thr and max_num.
    let p = MatrixNmsParams {
        filter_thr: 0.65,
        max_num: 1,
        ..params(NmsKernel::Gaussian)
    };
    let f = matrix_nms(&m, &labels, &scores, None, &p).unwrap();
    assert_eq!(f.keep, vec![1]);
    // Empty input and bad shapes.
    let empty = Tensor::zeros((0, 1, 4), DType::F32, &dev).unwrap();
    let e = matrix_nms(&empty, &[], &[], None, &params(NmsKernel::Gaussian)).unwrap();
    assert!(e.keep.is_empty());
    assert!(matches!(
        matrix_nms(
            &m,
            &labels[..3],
            &scores,
            None,
            &params(NmsKernel::Gaussian)
        ),
        Err(SoloError::Shape { .. })
    ));
}

#[test]
fn matrix_nms_matches_mmdet_reference() {
    let f = fixture("solov2_matrix_nms.safetensors");
    let labels: Vec<usize> = f["labels"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&l| l as usize)
        .collect();
    let scores: Vec<f32> = f["scores"].to_vec1().unwrap();
    for (name, kernel) in [
        ("gaussian", NmsKernel::Gaussian),
        ("linear", NmsKernel::Linear),
    ] {
        for (suffix, filter_thr, max_num) in [("", -1.0, 0), (".filtered", 0.3, 6)] {
            let p = MatrixNmsParams {
                kernel,
                sigma: 2.0,
                nms_pre: 0,
                filter_thr,
                max_num,
            };
            let out = matrix_nms(&f["masks"], &labels, &scores, None, &p).unwrap();
            let want_s: Vec<f32> = f[&format!("{name}{suffix}.scores")].to_vec1().unwrap();
            let want_k: Vec<i64> = f[&format!("{name}{suffix}.keep_inds")].to_vec1().unwrap();
            let got_k: Vec<i64> = out.keep.iter().map(|&k| k as i64).collect();
            assert_eq!(got_k, want_k, "{name}{suffix}");
            for (a, b) in out.scores.iter().zip(&want_s) {
                assert!((a - b).abs() <= 1e-6, "{name}{suffix}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn inference_matches_mmdet_reference() {
    let dev = Device::Cpu;
    let f = fixture("solov2_tiny.safetensors");
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::new(cfg.clone(), synthetic_var_builder(DType::F32, &dev)).unwrap();
    let out = model.forward(&f["input"]).unwrap();
    let (dets, stats) = postprocess(&out, 0, &cfg, (64, 64), (48, 48)).unwrap();
    let counts: Vec<i64> = f["pred.counts"].to_vec1().unwrap();
    let want_s: Vec<f32> = f["pred.scores"].to_vec1().unwrap();
    let want_l: Vec<i64> = f["pred.labels"].to_vec1().unwrap();
    let want_m: Vec<Vec<Vec<u8>>> = f["pred.masks"].to_vec3().unwrap();
    assert_eq!(
        stats,
        InferenceStats {
            above_score_thr: counts[0] as usize,
            after_area_filter: counts[1] as usize,
            kept: want_s.len(),
        }
    );
    assert_eq!(dets.len(), want_s.len());
    let (mut worst, mut flipped) = (0f32, 0usize);
    for (k, d) in dets.iter().enumerate() {
        assert_eq!(d.label as i64, want_l[k], "label of instance {k}");
        worst = worst.max((d.score - want_s[k]).abs() / want_s[k]);
        assert_eq!(d.mask.dimensions(), (48, 48));
        for (y, row) in want_m[k].iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                if (d.mask.get_pixel(x as u32, y as u32)[0] != 0) != (v != 0) {
                    flipped += 1;
                }
            }
        }
    }
    eprintln!(
        "SOLOv2 inference: {} instances, worst score rel. error {worst:.2e}, {flipped} mask pixels differ",
        dets.len()
    );
    assert!(worst < 1e-4, "score error {worst}");
    // Pixels exactly at the 0.5 threshold may flip with float rounding; allow 0.01 %.
    assert!(
        flipped * 10_000 <= dets.len() * 48 * 48,
        "{flipped} pixels differ"
    );
}

#[test]
fn crop_and_resize_to_the_original_size() {
    // Regression: the crop to the image size is a strided view; the resize needs it contiguous.
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::new(cfg.clone(), synthetic_var_builder(DType::F32, &dev)).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let out = model.forward(&x).unwrap();
    let (dets, stats) = postprocess(&out, 0, &cfg, (50, 60), (30, 20)).unwrap();
    assert_eq!(dets.len(), stats.kept);
    for d in &dets {
        assert_eq!(d.mask.dimensions(), (20, 30));
    }
    assert!(postprocess(&out, 0, &cfg, (70, 60), (30, 20)).is_err() || stats.kept == 0);
}

#[test]
fn predict_and_sketch_at_image_size() {
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::new(cfg, synthetic_var_builder(DType::F32, &dev)).unwrap();
    let img = RgbImage::from_fn(50, 40, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 6) as u8, ((x + y) * 3) as u8])
    });
    let preds = model.predict(std::slice::from_ref(&img)).unwrap();
    assert_eq!(preds.len(), 1);
    for inst in &preds[0].instances {
        assert_eq!(inst.mask.dimensions(), (50, 40));
        assert!(inst.score > 0.0 && inst.score <= 1.0);
    }
    let s = sketch_from_image(&model, &img).unwrap();
    assert_eq!(s.sketch.dimensions(), (50, 40));
    let counter = EmptySketchCounter::default();
    counter.record(&s);
    // An empty prediction is a valid, blank sketch, and is counted.
    let empty = Prediction {
        instances: vec![],
        stats: InferenceStats::default(),
    };
    let blank = sketch_from_prediction(empty, (50, 40), &SketchConfig::default()).unwrap();
    assert!(blank.is_empty());
    assert!(is_blank(&blank.sketch));
    assert_eq!(blank.sketch.dimensions(), (50, 40));
    counter.record(&blank);
    let (total, n_empty) = counter.counts();
    assert_eq!(total, 2);
    assert_eq!(n_empty, 1 + usize::from(s.is_empty()));
    // Bad images.
    let e = model.predict(&[RgbImage::new(0, 5)]).unwrap_err();
    assert!(matches!(e, SoloError::Shape { .. }), "{e}");
    assert!(model.predict(&[]).is_err());
}

#[test]
fn low_scores_are_not_drawn() {
    let mut mask = GrayImage::new(32, 32);
    for y in 8..24 {
        for x in 8..24 {
            mask.put_pixel(x, y, Luma([255]));
        }
    }
    let inst = |score| s2m_core::anatomy::InstanceMask {
        class: s2m_core::anatomy::Class::Tongue,
        mask: mask.clone(),
        score,
    };
    let pred = |score| Prediction {
        instances: vec![inst(score)],
        stats: InferenceStats::default(),
    };
    let low = sketch_from_prediction(pred(0.3), (32, 32), &SketchConfig::default()).unwrap();
    assert_eq!(low.drawn, 0);
    assert!(is_blank(&low.sketch));
    let high = sketch_from_prediction(pred(0.4), (32, 32), &SketchConfig::default()).unwrap();
    assert_eq!(high.drawn, 1);
    assert!(!is_blank(&high.sketch));
}
