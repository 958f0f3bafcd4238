//! SOLOv2 target assignment and losses on hand-made masks (mmdetection
//! `SOLOV2Head._get_targets_single` / `loss_by_feat` semantics, values computed by hand in the
//! comments), and a backward pass through the tiny model.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sketch_synth::solov2::{
    GtInstance, SoloV2, SoloV2Config, build_targets, dice_loss_rows, rescale_mask,
    sigmoid_focal_loss_sum, solo_loss,
};

fn square(size: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> Vec<u8> {
    let mut m = vec![0u8; size * size];
    for y in y0..y1 {
        for x in x0..x1 {
            m[y * size + x] = 1;
        }
    }
    m
}

#[test]
fn targets_of_a_square() {
    // tiny preset: 64 px, grids [12, 10, 8, 6, 4], ranges (light x 64/448):
    // (0.14, 8), (4, 16), (8, 32), (16, 64), (32, 128). A 16 x 16 square at 8..24: scale 16 ->
    // levels 1, 2, 3. Centre of mass 15.5; half region 0.5 * 16 * 0.2 = 1.6.
    let cfg = SoloV2Config::tiny_r18();
    let gt = GtInstance {
        label: 2,
        mask: square(64, 8, 24, 8, 24),
    };
    let t = build_targets(std::slice::from_ref(&gt), (64, 64), &cfg).unwrap();
    assert_eq!(t.feat_hw, (16, 16));
    let pos: Vec<Vec<usize>> = t.levels.iter().map(|l| l.pos_index.clone()).collect();
    // S=10: trunc(15.5/64*10) = 2; 13.9 -> 2, 17.1 -> 2: cell (2, 2) only.
    // S=8: centre 1; region 13.9 -> 1, 17.1 -> 2: rows/cols 1..=2.
    // S=6: centre 1; 13.9 -> 1, 17.1 -> 1: cell (1, 1).
    assert_eq!(
        pos,
        vec![vec![], vec![22], vec![9, 10, 17, 18], vec![7], vec![]]
    );
    assert_eq!(t.num_pos(), 6);
    assert_eq!(t.levels[2].labels[17], Some(2));
    assert_eq!(t.levels[2].labels[0], None);
    // Mask target: 1/4 rescale, 2x2 vote of pixels (4d+1, 4d+2): d = 2..=5 inside.
    let m = &t.levels[1].mask_targets[0];
    assert_eq!(*m, square(16, 2, 6, 2, 6));
    // Flattened indices: level 1 starts after 144 cells, level 2 after 244, level 3 after 308.
    assert_eq!(t.flat_pos_index(), vec![166, 253, 254, 261, 262, 315]);
    let dev = Device::Cpu;
    let oh = t.cls_onehot(4, &dev).unwrap();
    assert_eq!(oh.dims(), &[cfg.num_cells(), 4]);
    assert_eq!(oh.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
    assert_eq!(t.mask_targets(&dev).unwrap().dims(), &[6, 256]);
}

#[test]
fn overlapping_instances_and_bad_input() {
    let cfg = SoloV2Config::tiny_r18();
    // Two instances with the same centre: the label is the later one's, the cell appears twice
    // in the mask targets but counts once in num_pos. An empty mask is skipped.
    let a = GtInstance {
        label: 0,
        mask: square(64, 8, 24, 8, 24),
    };
    let b = GtInstance {
        label: 3,
        mask: square(64, 9, 23, 9, 23),
    };
    let empty = GtInstance {
        label: 1,
        mask: vec![0; 64 * 64],
    };
    let t = build_targets(&[a.clone(), b, empty], (64, 64), &cfg).unwrap();
    assert_eq!(t.levels[1].pos_index, vec![22, 22]);
    assert_eq!(t.levels[1].labels[22], Some(3));
    assert_eq!(t.levels[1].num_pos(), 1);
    assert!(build_targets(std::slice::from_ref(&a), (60, 64), &cfg).is_err());
    let bad = GtInstance {
        label: 4,
        mask: a.mask.clone(),
    };
    assert!(build_targets(&[bad], (64, 64), &cfg).is_err());
    let short = GtInstance {
        label: 0,
        mask: vec![1; 10],
    };
    assert!(build_targets(&[short], (64, 64), &cfg).is_err());
}

#[test]
fn rescale_rounds_ties_inside() {
    // 8x8 -> 2x2; output (0,0) reads pixels rows/cols {1, 2}. One of the two rows inside = 0.5
    // -> inside (cv2 rounds half up).
    let m = square(8, 2, 8, 0, 8);
    assert_eq!(rescale_mask(&m, 8, 8), vec![1, 1, 1, 1]);
    let m = square(8, 3, 8, 0, 8);
    assert_eq!(rescale_mask(&m, 8, 8), vec![0, 0, 1, 1]);
}

#[test]
fn focal_and_dice_by_hand() {
    let dev = Device::Cpu;
    let x = Tensor::new(&[0f32, 0.0], &dev).unwrap();
    let t = Tensor::new(&[1f32, 0.0], &dev).unwrap();
    let l = sigmoid_focal_loss_sum(&x, &t, 0.25, 2.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    // p = 0.5: 0.25 * 0.25 * ln 2 + 0.75 * 0.25 * ln 2 = 0.25 ln 2.
    assert!((l - 0.25 * 2f32.ln()).abs() < 1e-6, "{l}");
    // Large confident logits: no NaN/inf.
    let x = Tensor::new(&[60f32, -60.0], &dev).unwrap();
    let l = sigmoid_focal_loss_sum(&x, &t, 0.25, 2.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(l.is_finite() && l < 1e-12);

    let p = Tensor::new(&[[1f32, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], &dev).unwrap();
    let q = Tensor::new(&[[1f32, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], &dev).unwrap();
    let d: Vec<f32> = dice_loss_rows(&p, &q).unwrap().to_vec1().unwrap();
    assert!((d[0] - (1.0 - 4.0 / 4.002)).abs() < 1e-6, "{d:?}");
    assert!((d[1] - 1.0).abs() < 1e-6, "{d:?}");
    assert!(dice_loss_rows(&p, &q.narrow(1, 0, 2).unwrap()).is_err());
}

#[test]
fn loss_backward_reaches_every_branch() {
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let vm = VarMap::new();
    let model = SoloV2::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let out = model.forward(&x).unwrap();
    let gts = [
        GtInstance {
            label: 1,
            mask: square(64, 8, 24, 8, 24),
        },
        GtInstance {
            label: 3,
            mask: square(64, 30, 60, 10, 50),
        },
    ];
    let t = build_targets(&gts, (64, 64), &cfg).unwrap();
    let losses = solo_loss(&out, std::slice::from_ref(&t), &cfg).unwrap();
    assert_eq!(losses.num_pos, t.num_pos());
    let total = losses.total.to_scalar::<f32>().unwrap();
    let mask = losses.mask.to_scalar::<f32>().unwrap();
    assert!(
        total.is_finite() && mask > 0.0 && mask <= 3.0,
        "{total} {mask}"
    );
    let grads = losses.total.backward().unwrap();
    let data = vm.data().lock().unwrap();
    for name in [
        "mask_head.conv_cls.weight",
        "mask_head.conv_kernel.weight",
        "mask_head.kernel_convs.0.conv.weight",
        "mask_head.cls_convs.0.gn.weight",
        "mask_head.mask_feature_head.convs_all_levels.3.conv0.conv.weight",
        "mask_head.mask_feature_head.conv_pred.conv.weight",
        "neck.lateral_convs.3.conv.weight",
        "neck.fpn_convs.0.conv.weight",
        "backbone.layer4.1.conv2.weight",
    ] {
        let g = grads
            .get(data[name].as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let n = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n.is_finite() && n > 0.0, "{name}: |grad|^2 = {n}");
    }
    // No positives: mask loss 0, focal divided by 1.
    let none = build_targets(&[], (64, 64), &cfg).unwrap();
    let l0 = solo_loss(&out, &[none], &cfg).unwrap();
    assert_eq!(l0.num_pos, 0);
    assert_eq!(l0.mask.to_scalar::<f32>().unwrap(), 0.0);
}

#[test]
fn nearest_resize_gradient_accumulates() {
    // candle's upsample_nearest2d backward overwrites instead of adding; ours must give
    // d/dx [sum(up(x)) + sum(x)] = 4 + 1 for a 2x upsample.
    let dev = Device::Cpu;
    let x = candle_core::Var::new(&[[[[1f32, 2.0], [3.0, 4.0]]]], &dev).unwrap();
    let up = sketch_synth::solov2::model::resize_nearest(x.as_tensor(), 4, 4).unwrap();
    let y = (up.sum_all().unwrap() + x.as_tensor().sum_all().unwrap()).unwrap();
    let g = y.backward().unwrap();
    let gx: Vec<f32> = g.get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(gx, vec![5.0; 4]);
}

#[test]
fn loss_gradient_matches_finite_differences() {
    // f64 tiny model; d(total loss)/d(parameter element) vs central differences, for
    // parameters whose gradient flows through the FPN nearest top-down path, the bilinear
    // resizes, GroupNorm, the dynamic conv, focal and Dice.
    let dev = Device::Cpu;
    let cfg = SoloV2Config::tiny_r18();
    let vm = VarMap::new();
    let model = SoloV2::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
    let x = Tensor::randn(0f64, 1.0, (1, 3, 64, 64), &dev).unwrap();
    let gts = [
        GtInstance {
            label: 0,
            mask: square(64, 8, 24, 8, 24),
        },
        GtInstance {
            label: 2,
            mask: square(64, 28, 60, 4, 60),
        },
    ];
    let t = build_targets(&gts, (64, 64), &cfg).unwrap();
    let loss = |m: &SoloV2| -> (f64, Tensor) {
        let out = m.forward(&x).unwrap();
        let l = solo_loss(&out, std::slice::from_ref(&t), &cfg)
            .unwrap()
            .total;
        (l.to_scalar::<f64>().unwrap(), l)
    };
    let (_, l) = loss(&model);
    let grads = l.backward().unwrap();
    let names = [
        ("neck.lateral_convs.3.conv.bias", 1),
        ("mask_head.conv_kernel.bias", 3),
        ("mask_head.cls_convs.1.gn.bias", 5),
        (
            "mask_head.mask_feature_head.convs_all_levels.2.conv1.gn.bias",
            2,
        ),
        ("mask_head.mask_feature_head.conv_pred.gn.weight", 7),
    ];
    let mut worst = 0f64;
    for (name, k) in names {
        let var = vm.data().lock().unwrap()[name].clone();
        let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().to_vec1().unwrap();
        let eps = 1e-5;
        let at = |d: f64| {
            let mut v = base.clone();
            v[k] += d;
            var.set(&Tensor::new(v, &dev).unwrap()).unwrap();
            loss(&model).0
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        var.set(&Tensor::new(base.clone(), &dev).unwrap()).unwrap();
        let rel = (g[k] - fd).abs() / fd.abs().max(1e-6);
        eprintln!(
            "{name}[{k}]: autograd {:.6e} fd {fd:.6e} rel {rel:.1e}",
            g[k]
        );
        worst = worst.max(rel);
    }
    assert!(worst < 1e-4, "worst relative gradient error {worst}");
}
