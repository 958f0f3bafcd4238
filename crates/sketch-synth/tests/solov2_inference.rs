//! SOLOv2 Matrix NMS and inference tests: hand-computed Matrix NMS cases, crop and resize,
//! prediction and sketches, empty predictions.
//!
//! Parity of Matrix NMS and of the whole inference with mmdetection 3.3.0 itself
//! (`mask_matrix_nms`, `SOLOV2Head.predict_by_feat`) is in `tests/solov2_mmdet.rs`.

use backbones::synthetic::synthetic_var_builder;
use candle_core::{DType, Device, Tensor};
use image::{GrayImage, Luma, RgbImage};
use sketch_synth::SketchConfig;
use sketch_synth::is_blank;
use sketch_synth::solov2::{
    EmptySketchCounter, InferenceStats, MatrixNmsParams, NmsKernel, Prediction, SoloError, SoloV2,
    SoloV2Config, matrix_nms, postprocess, sketch_from_image, sketch_from_prediction,
};

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
