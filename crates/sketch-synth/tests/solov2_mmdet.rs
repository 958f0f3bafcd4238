//! SOLOv2 parity with the real mmdetection 3.3.0 implementation and loading of converted
//! mmdetection checkpoints.
//!
//! Fixtures from `tools/solov2_mmdet_parity.py`, which builds mmdet's own `SOLOv2` (ResNet-18,
//! `FPN`, `SOLOV2Head` + `MaskFeatModule`) through mmdet's registry with the numbers of
//! `SoloV2Config::tiny_r18()`, runs it and `SOLOV2Head.predict_by_feat` on two 64 x 64 images,
//! and runs mmdet's `mask_matrix_nms` on several cases (CPU; mmdet 3.3.0, mmengine 0.10.7,
//! mmcv-lite 2.1.0 whose missing compiled `mmcv._ext` is a stand-in that raises if called):
//!
//! - `solov2_mmdet_tiny_weights.safetensors`: mmdet's state_dict under its own names, without the
//!   backbone's float tensors (the name-seeded formula of `backbones::synthetic`, 45 MB
//!   otherwise); the metadata lists every key of the state_dict with its shape.
//! - `solov2_mmdet_tiny.safetensors`: the input, neck outputs, per-level category logits and
//!   kernels, mask features, and per image the `predict_by_feat` labels, scores, masks and
//!   counts (pairs above `score_thr`, masks after the area filter, kept) under the default
//!   `test_cfg` (`pred.*`) and under `test_cfg_tight` (`tight.*`: score_thr 0.05, nms_pre 10,
//!   max_per_img 6, where the area filter and both cuts remove masks).
//! - `solov2_mmdet_matrix_nms.safetensors`: `mask_matrix_nms` inputs and outputs.
//! - `solov2_mmdet_loss.safetensors`: ground truth for the same batch (10 instances of every
//!   size, an empty mask, an overlap), mmdet's targets (`_get_targets_single`), its
//!   `loss_by_feat` losses and torch's gradients of their sum for every trainable parameter of
//!   the neck and head and the small ones of the backbone, with mmdet's `requires_grad` list.
//! - `solov2_mmdet_converted/`: `tools/convert_solov2_mmdet.py`'s `solov2.json` for a
//!   `torch.save`d checkpoint of the same model, and its `solov2.safetensors` without the
//!   backbone's tensors (checked by the script to equal the formula bit for bit).
//!
//! Every file's `__metadata__` names the script, the reference (`mmdet==3.3.0`) and the other
//! packages, the mmdet config, the calls and what was stubbed (`fixtures_name_the_reference_package`).
//! Regenerate with `/work/venv-mmdet/bin/python tools/solov2_mmdet_parity.py` (venv: tools/README.md).
//!
//! Tolerances (f32 on both sides; the script stores the decision margins, i.e. how far the
//! values behind each threshold decision lie from the threshold, in the fixture metadata):
//! - forward outputs: max |ours - mmdet| / max |mmdet| <= 1e-5 per FPN level, <= 1e-4 per
//!   head output;
//! - inference: the same counts, the same labels in the same order, scores within 1e-5
//!   absolute, binary masks identical (smallest final soft-mask margin 9.5e-6);
//! - Matrix NMS: identical kept indices and labels, scores within 1e-6 (NaN where mmdet's are);
//! - training: identical targets, num_pos and trainable set; losses <= 1e-4 and gradients
//!   <= 1e-3 of max |mmdet| per tensor.

use std::collections::{BTreeSet, HashMap};

use backbones::synthetic::synthetic_tensor;
use backbones::{ResNet, ResNetConfig, ResNetDepth};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sketch_synth::solov2::model::Fpn;
use sketch_synth::solov2::{
    GtInstance, InferenceStats, MatrixNmsParams, NmsKernel, SoloV2, SoloV2Config, SoloV2Output,
    TestConfig, build_targets, is_trainable, load_exported, matrix_nms, postprocess, solo_loss,
};

fn fixture_path(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path(name), &Device::Cpu).expect("fixture")
}

/// The `__metadata__` of a safetensors file (its JSON header).
fn metadata(name: &str) -> HashMap<String, String> {
    let bytes = std::fs::read(fixture_path(name)).expect("fixture");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    serde_json::from_value(header["__metadata__"].clone()).unwrap()
}

/// `{name: shape}` from a JSON metadata entry.
fn key_shapes(meta: &HashMap<String, String>, entry: &str) -> HashMap<String, Vec<usize>> {
    serde_json::from_str(&meta[entry]).unwrap()
}

/// The fixture tensors plus every listed key they lack, rebuilt with the synthetic formula.
fn complete(
    mut tensors: HashMap<String, Tensor>,
    keys: &HashMap<String, Vec<usize>>,
) -> HashMap<String, Tensor> {
    for (k, shape) in keys {
        if !tensors.contains_key(k) {
            assert!(k.starts_with("backbone."), "{k} missing from the fixture");
            let t = synthetic_tensor(k, &Shape::from(shape.clone()), DType::F32, &Device::Cpu);
            tensors.insert(k.clone(), t.unwrap());
        }
    }
    tensors
}

/// max |a - b| / max |b|, and max |a - b|.
fn errors(a: &Tensor, b: &Tensor) -> (f32, f32) {
    assert_eq!(a.dims(), b.dims());
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    let d = d.max(0).unwrap().to_scalar::<f32>().unwrap();
    let m = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    (d / m.to_scalar::<f32>().unwrap().max(1e-12), d)
}

/// The full mmdet state_dict of the fixture model (backbone rebuilt by formula).
fn mmdet_state_dict() -> HashMap<String, Tensor> {
    let name = "solov2_mmdet_tiny_weights.safetensors";
    let keys = key_shapes(&metadata(name), "state_dict_keys");
    let sd = complete(fixture(name), &keys);
    assert_eq!(sd.len(), keys.len());
    sd
}

/// Compares the network outputs with mmdet's; returns the worst relative error.
fn check_forward(out: &SoloV2Output, f: &HashMap<String, Tensor>, what: &str) -> f32 {
    let mut worst = 0f32;
    let mut worst_abs = 0f32;
    let mut check = |ours: &Tensor, key: &str| {
        let (rel, abs) = errors(ours, &f[key]);
        assert!(rel <= 1e-4, "{what}: {key} relative error {rel:.2e}");
        worst = worst.max(rel);
        worst_abs = worst_abs.max(abs);
    };
    for l in 0..5 {
        // Ours [B, S, S, C]; mmdet [B, C, S, S].
        let cls = out.cls_logits[l].permute((0, 3, 1, 2)).unwrap();
        check(&cls, &format!("cls_preds.{l}"));
        check(&out.kernels[l], &format!("kernel_preds.{l}"));
    }
    check(&out.mask_feats, "mask_feats");
    eprintln!(
        "{what}: forward vs mmdet 3.3.0, worst max-abs/max-abs {worst:.2e}, max abs {worst_abs:.2e}"
    );
    worst
}

/// Post-processes both images under `cfg.test` and compares with mmdet's `predict_by_feat`
/// results stored under `prefix` (`pred`: the default `test_cfg`; `tight`: `test_cfg_tight`).
/// Returns the worst absolute score error.
fn check_inference_as(
    out: &SoloV2Output,
    cfg: &SoloV2Config,
    f: &HashMap<String, Tensor>,
    prefix: &str,
) -> f32 {
    let mut worst = 0f32;
    for b in 0..2 {
        let meta: Vec<i64> = f[&format!("img_meta.{b}")].to_vec1().unwrap();
        let img_hw = (meta[0] as usize, meta[1] as usize);
        let ori_hw = (meta[2] as usize, meta[3] as usize);
        let (dets, stats) = postprocess(out, b, cfg, img_hw, ori_hw).unwrap();
        let want_s: Vec<f32> = f[&format!("{prefix}.{b}.scores")].to_vec1().unwrap();
        let want_l: Vec<i64> = f[&format!("{prefix}.{b}.labels")].to_vec1().unwrap();
        let want_m: Vec<Vec<Vec<u8>>> = f[&format!("{prefix}.{b}.masks")].to_vec3().unwrap();
        // mmdet's own counts: kernels of its dynamic conv2d (pairs above score_thr), inputs of
        // its mask_matrix_nms call (masks after the area filter), results.
        let counts: Vec<i64> = f[&format!("{prefix}.{b}.counts")].to_vec1().unwrap();
        let want_stats = InferenceStats {
            above_score_thr: counts[0] as usize,
            after_area_filter: counts[1] as usize,
            kept: counts[2] as usize,
        };
        assert_eq!(stats, want_stats, "{prefix} image {b}: counts");
        assert!(!want_s.is_empty());
        assert_eq!(
            dets.len(),
            want_s.len(),
            "{prefix} image {b}: instance count"
        );
        for (i, d) in dets.iter().enumerate() {
            assert_eq!(
                d.label as i64, want_l[i],
                "{prefix} image {b} instance {i}: label"
            );
            let e = (d.score - want_s[i]).abs();
            assert!(
                e <= 1e-5,
                "{prefix} image {b} instance {i}: score {} vs {}",
                d.score,
                want_s[i]
            );
            worst = worst.max(e);
            assert_eq!(d.mask.dimensions(), (ori_hw.1 as u32, ori_hw.0 as u32));
            for (y, row) in want_m[i].iter().enumerate() {
                for (x, &m) in row.iter().enumerate() {
                    let got = d.mask.get_pixel(x as u32, y as u32).0[0] != 0;
                    assert_eq!(
                        got,
                        m != 0,
                        "{prefix} image {b} instance {i}: mask pixel ({y}, {x})"
                    );
                }
            }
        }
        eprintln!(
            "{prefix} image {b}: {:?}, {} instances at {}x{}, labels and masks equal",
            stats,
            dets.len(),
            ori_hw.0,
            ori_hw.1
        );
    }
    eprintln!("{prefix}: worst score error {worst:.2e}");
    worst
}

/// Inference under the default `test_cfg` (`pred.*`) and under the fixture's
/// `test_cfg_tight` (`tight.*`: score_thr 0.05, nms_pre 10, max_per_img 6, so that the area
/// filter, the `nms_pre` cut and the `max_per_img` cut all remove masks).
fn check_inference(out: &SoloV2Output, cfg: &SoloV2Config, f: &HashMap<String, Tensor>) {
    assert_eq!(cfg.test, TestConfig::default());
    check_inference_as(out, cfg, f, "pred");
    let meta = metadata("solov2_mmdet_tiny.safetensors");
    let tight: TestConfig = serde_json::from_str(&meta["test_cfg_tight"]).unwrap();
    assert_eq!((tight.nms_pre, tight.max_per_img), (10, 6));
    let cfg = SoloV2Config {
        test: tight,
        ..cfg.clone()
    };
    check_inference_as(out, &cfg, f, "tight");
    for b in 0..2 {
        let c: Vec<i64> = f[&format!("tight.{b}.counts")].to_vec1().unwrap();
        assert!(
            c[0] > c[1] && c[1] > 10 && c[2] == 6,
            "tight image {b}: {c:?}"
        );
    }
}

/// Every fixture of `tools/solov2_mmdet_parity.py` records its provenance: the script, the
/// reference package (mmdet 3.3.0) with the other packages, the config and what was stubbed.
#[test]
fn fixtures_name_the_reference_package() {
    for name in [
        "solov2_mmdet_tiny.safetensors",
        "solov2_mmdet_tiny_weights.safetensors",
        "solov2_mmdet_matrix_nms.safetensors",
        "solov2_mmdet_loss.safetensors",
        "solov2_mmdet_converted/solov2.no_backbone.safetensors",
    ] {
        let meta = metadata(name);
        let get = |k: &str| {
            meta.get(k)
                .unwrap_or_else(|| panic!("{name}: no `{k}` in the metadata"))
        };
        assert_eq!(get("script"), "tools/solov2_mmdet_parity.py", "{name}");
        assert_eq!(get("reference"), "mmdet==3.3.0", "{name}");
        let packages: HashMap<String, String> =
            serde_json::from_str(get("reference_packages")).unwrap();
        assert_eq!(packages["mmdet"], "3.3.0", "{name}");
        for p in ["mmengine", "mmcv-lite", "torch"] {
            assert!(packages.contains_key(p), "{name}: {p} missing");
        }
        assert!(!get("reference_call").is_empty(), "{name}");
        let config: serde_json::Value = serde_json::from_str(get("config")).unwrap();
        assert_eq!(config["type"], "SOLOv2", "{name}");
        assert_eq!(
            config["mask_head"]["num_grids"],
            serde_json::json!([12, 10, 8, 6, 4])
        );
        assert!(get("stubbed").contains("mmcv._ext"), "{name}");
    }
}

#[test]
fn mmdet_state_dict_keys_equal_the_model_parameters() {
    // Every key mmdet's SOLOv2 state_dict has (less `num_batches_tracked`) is a parameter or
    // buffer of the Rust model with the same shape, and nothing else is.
    let keys = key_shapes(
        &metadata("solov2_mmdet_tiny_weights.safetensors"),
        "state_dict_keys",
    );
    let cfg = SoloV2Config::tiny_r18();
    let spec = backbones::weights::record_params(|vb| {
        SoloV2::new(cfg.clone(), vb).map_err(|e| backbones::BackboneError::Config(e.to_string()))
    })
    .unwrap();
    let ours: HashMap<String, Vec<usize>> = spec.into_iter().collect();
    let theirs: HashMap<String, Vec<usize>> = keys
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    let mut only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let mut only_theirs: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    only_ours.sort();
    only_theirs.sort();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only ours: {only_ours:?}; only mmdet: {only_theirs:?}"
    );
    for (k, s) in &ours {
        assert_eq!(s, &theirs[k], "{k}");
    }
    assert_eq!(ours.len(), 156);
}

#[test]
fn mmdet_state_dict_loads_and_matches_mmdet_outputs() {
    let dev = Device::Cpu;
    let f = fixture("solov2_mmdet_tiny.safetensors");
    let sd = mmdet_state_dict();

    // Neck: backbone + FPN alone, from the same tensors.
    let vb = VarBuilder::from_tensors(sd.clone(), DType::F32, &dev);
    let rc = ResNetConfig {
        depth: ResNetDepth::R18,
        in_channels: 3,
        num_classes: None,
    };
    let resnet = ResNet::new(rc, vb.pp("backbone")).unwrap();
    let fpn = Fpn::new([64, 128, 256, 512], 32, vb.pp("neck")).unwrap();
    let maps = resnet.forward_t(&f["input"], false).unwrap();
    let c: Vec<Tensor> = ["c2", "c3", "c4", "c5"]
        .iter()
        .map(|n| maps.require(n).unwrap().clone())
        .collect();
    let p = fpn.forward(&c).unwrap();
    let mut worst = 0f32;
    for (i, t) in p.iter().enumerate() {
        let (rel, _) = errors(t, &f[&format!("neck.{i}")]);
        assert!(rel <= 1e-5, "neck.{i}: {rel:.2e}");
        worst = worst.max(rel);
    }
    eprintln!("backbone + FPN vs mmdet 3.3.0: worst max-abs/max-abs {worst:.2e}");

    // The whole model through `SoloV2::load` from a file holding mmdet's state_dict as is
    // (including the `num_batches_tracked` buffers, which `load` ignores).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmdet_state_dict.safetensors");
    candle_core::safetensors::save(&sd, &path).unwrap();
    let cfg = SoloV2Config::tiny_r18();
    let model = SoloV2::load(&path, cfg.clone(), DType::F32, &dev).unwrap();
    let out = model.forward(&f["input"]).unwrap();
    check_forward(&out, &f, "state_dict");
    check_inference(&out, &cfg, &f);
}

/// Training: targets, losses and gradients against mmdet's `SOLOV2Head.loss_by_feat` and torch
/// autograd (`solov2_mmdet_loss.safetensors`), in mmdet's train mode (BN frozen by
/// `norm_eval`, stem and layer1 frozen by `frozen_stages=1`).
#[test]
fn training_loss_and_gradients_match_mmdet() {
    let dev = Device::Cpu;
    let name = "solov2_mmdet_loss.safetensors";
    let f = fixture(name);
    let meta = metadata(name);
    let x = fixture("solov2_mmdet_tiny.safetensors")["input"].clone();
    let cfg = SoloV2Config::tiny_r18();

    // The model in a VarMap holding mmdet's state_dict.
    let sd = mmdet_state_dict();
    let vm = VarMap::new();
    let model = SoloV2::new(cfg.clone(), VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    for (k, var) in vm.data().lock().unwrap().iter() {
        var.set(&sd[k]).unwrap();
    }
    // What we optimise is what mmdet gives gradients to (`requires_grad`).
    let theirs: BTreeSet<String> = serde_json::from_str::<Vec<String>>(&meta["requires_grad"])
        .unwrap()
        .into_iter()
        .collect();
    let ours: BTreeSet<String> = vm
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| is_trainable(k, 1))
        .cloned()
        .collect();
    assert_eq!(ours, theirs, "trainable parameters");

    // Targets of both images against mmdet's `_get_targets_single`.
    let mut targets = Vec::new();
    for b in 0..2 {
        let masks: Vec<Vec<Vec<u8>>> = f[&format!("gt.{b}.masks")].to_vec3().unwrap();
        let labels: Vec<i64> = f[&format!("gt.{b}.labels")].to_vec1().unwrap();
        let gts: Vec<GtInstance> = masks
            .iter()
            .zip(&labels)
            .map(|(m, &l)| GtInstance {
                label: l as usize,
                mask: m.concat(),
            })
            .collect();
        let t = build_targets(&gts, (64, 64), &cfg).unwrap();
        for (l, lt) in t.levels.iter().enumerate() {
            let want: Vec<Vec<i64>> = f[&format!("targets.{b}.labels.{l}")].to_vec2().unwrap();
            let got: Vec<i64> = lt
                .labels
                .iter()
                .map(|c| c.map_or(cfg.num_classes as i64, |c| c as i64))
                .collect();
            assert_eq!(got, want.concat(), "image {b} level {l}: cell labels");
            let want: Vec<i64> = f[&format!("targets.{b}.pos_index.{l}")].to_vec1().unwrap();
            let got: Vec<i64> = lt.pos_index.iter().map(|&i| i as i64).collect();
            assert_eq!(got, want, "image {b} level {l}: positive cells");
        }
        targets.push(t);
    }

    let out = model.forward_t(&x, false).unwrap();
    let losses = solo_loss(&out, &targets, &cfg).unwrap();
    let want_pos: Vec<i64> = f["num_pos"].to_vec1().unwrap();
    assert_eq!(losses.num_pos as i64, want_pos[0]);
    let mut worst_loss = 0f32;
    for (ours, key) in [(&losses.mask, "loss_mask"), (&losses.cls, "loss_cls")] {
        let (rel, _) = errors(&ours.reshape(1).unwrap(), &f[key]);
        assert!(rel <= 1e-4, "{key}: relative error {rel:.2e}");
        worst_loss = worst_loss.max(rel);
    }

    let grads = losses.total.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let (mut worst, mut worst_key, mut n) = (0f32, String::new(), 0);
    for key in f.keys().filter(|k| k.starts_with("grad.")) {
        let param = &key["grad.".len()..];
        let var = data
            .get(param)
            .unwrap_or_else(|| panic!("{param}: not a parameter"));
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{param}: no gradient"));
        let (rel, _) = errors(g, &f[key]);
        assert!(rel <= 1e-3, "gradient of {param}: relative error {rel:.2e}");
        if rel > worst {
            (worst, worst_key) = (rel, param.to_string());
        }
        n += 1;
    }
    assert!(n >= 80, "{n} gradients in the fixture");
    eprintln!(
        "training vs mmdet 3.3.0: {} positives, losses max-abs/max-abs {worst_loss:.2e}; \
         {n} gradients, worst {worst:.2e} ({worst_key})",
        losses.num_pos
    );
}

fn kernel(name: &str) -> NmsKernel {
    match name {
        "gaussian" => NmsKernel::Gaussian,
        "linear" => NmsKernel::Linear,
        other => panic!("kernel {other}"),
    }
}

#[test]
fn matrix_nms_matches_mmdet() {
    let name = "solov2_mmdet_matrix_nms.safetensors";
    let f = fixture(name);
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&metadata(name)["cases"]).unwrap();
    assert_eq!(cases.len(), 11);
    let mut worst = 0f32;
    for (case, spec) in &cases {
        let set = case.split('.').next().unwrap();
        let masks = &f[&format!("{set}.masks")];
        let labels: Vec<usize> = f[&format!("{set}.labels")]
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&l| l as usize)
            .collect();
        let scores: Vec<f32> = f[&format!("{set}.scores")].to_vec1().unwrap();
        let areas: Option<Vec<f32>> = spec
            .get("mask_area")
            .map(|_| f[&format!("{set}.areas")].to_vec1().unwrap());
        let num = |k: &str, default: f64| spec.get(k).and_then(|v| v.as_f64()).unwrap_or(default);
        let p = MatrixNmsParams {
            kernel: kernel(spec["kernel"].as_str().unwrap()),
            sigma: num("sigma", 2.0) as f32,
            nms_pre: num("nms_pre", -1.0).max(0.0) as usize,
            filter_thr: num("filter_thr", -1.0) as f32,
            max_num: num("max_num", -1.0).max(0.0) as usize,
        };
        let out = matrix_nms(masks, &labels, &scores, areas.as_deref(), &p).unwrap();
        let want_k: Vec<i64> = f[&format!("{case}.keep_inds")].to_vec1().unwrap();
        let want_l: Vec<i64> = f[&format!("{case}.out_labels")].to_vec1().unwrap();
        let want_s: Vec<f32> = f[&format!("{case}.out_scores")].to_vec1().unwrap();
        let got_k: Vec<i64> = out.keep.iter().map(|&k| k as i64).collect();
        assert_eq!(got_k, want_k, "{case}: kept indices");
        let got_l: Vec<i64> = out.keep.iter().map(|&k| labels[k] as i64).collect();
        assert_eq!(got_l, want_l, "{case}: labels");
        for (a, b) in out.scores.iter().zip(&want_s) {
            if b.is_nan() {
                assert!(a.is_nan(), "{case}: {a} where mmdet has NaN");
            } else {
                assert!((a - b).abs() <= 1e-6, "{case}: {a} vs {b}");
                worst = worst.max((a - b).abs());
            }
        }
    }
    eprintln!(
        "Matrix NMS vs mmdet 3.3.0: {} cases, worst score error {worst:.2e}",
        cases.len()
    );
}

#[test]
fn converted_mmdet_checkpoint_loads_and_matches_mmdet_outputs() {
    let dev = Device::Cpu;
    let conv = "solov2_mmdet_converted";
    let stripped = format!("{conv}/solov2.no_backbone.safetensors");
    let omitted = key_shapes(&metadata(&stripped), "omitted");
    let tensors = fixture(&stripped);
    let dir = tempfile::tempdir().unwrap();
    let json = std::fs::read(fixture_path(&format!("{conv}/solov2.json"))).unwrap();
    std::fs::write(dir.path().join("solov2.json"), json).unwrap();

    // Without the backbone the loader names what is missing.
    let weights = dir.path().join("solov2.safetensors");
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let err = load_exported(dir.path(), &dev).unwrap_err().to_string();
    assert!(err.contains("backbone.conv1.weight"), "{err}");

    // The converter's output, whole.
    let full = complete(tensors, &omitted);
    assert!(!full.keys().any(|k| k.ends_with("num_batches_tracked")));
    candle_core::safetensors::save(&full, &weights).unwrap();
    let (model, info) = load_exported(dir.path(), &dev).unwrap();
    assert_eq!(
        info.classes,
        ["uvula", "pharyngeal wall", "tonsil", "tongue"]
    );
    assert_eq!(info.input_size, 64);
    // The converter inferred / read the tiny_r18 preset (scale ranges: f64 in the JSON).
    let want = SoloV2Config::tiny_r18();
    let mut got = info.config.clone();
    for (g, w) in got.scale_ranges.iter_mut().zip(&want.scale_ranges) {
        assert!((g.0 - w.0).abs() <= 1e-6 && (g.1 - w.1).abs() <= 1e-6);
        *g = *w;
    }
    assert_eq!(got, want);

    let f = fixture("solov2_mmdet_tiny.safetensors");
    let out = model.forward(&f["input"]).unwrap();
    check_forward(&out, &f, "converted");
    check_inference(&out, &info.config, &f);
}

/// A converted full-size checkpoint from `tools/solov2_mmdet_parity.py --shipped-configs DIR`
/// (mmdet's own `solov2_r50_fpn_1x_coco` / `solov2-light_r18_fpn_ms-3x_coco` configs, mmdet's
/// random init): `SOLOV2_MMDET_EXPORT=DIR/r50 cargo test -p sketch-synth --test solov2_mmdet
/// -- --ignored`. Loads the export and, where the folder has `mmdet_outputs.safetensors`,
/// compares the forward outputs of its 64 x 64 input with mmdet's.
#[test]
#[ignore = "needs SOLOV2_MMDET_EXPORT (a converted export folder, 70-190 MB)"]
fn converted_export_from_env() {
    let Ok(dir) = std::env::var("SOLOV2_MMDET_EXPORT") else {
        panic!("set SOLOV2_MMDET_EXPORT to a converted export folder");
    };
    let dev = Device::Cpu;
    let (model, info) = load_exported(&dir, &dev).unwrap();
    eprintln!(
        "{dir}: {:?}, {} classes, grids {:?}, input {}",
        info.config.backbone, info.config.num_classes, info.config.num_grids, info.input_size
    );
    let path = std::path::Path::new(&dir).join("mmdet_outputs.safetensors");
    if path.exists() {
        let f = candle_core::safetensors::load(&path, &dev).unwrap();
        let out = model.forward(&f["input"]).unwrap();
        check_forward(&out, &f, &dir);
    }
}
