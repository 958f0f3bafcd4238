//! H: parameter names against HyperStyle's own `SharedWeightsHyperNetResNet(opts)` (state-dict
//! keys recorded by `tools/hyperstyle_fixtures.py`, which imports yuval-alaluf/hyperstyle; see
//! tests/convert_hyperstyle.rs for the command), the output table derived from the generator
//! config against HyperStyle's hard-coded `PARAMETERS` / `TO_RGB_LAYERS` / shared slots, output
//! shapes for two generators, and the update rule theta_t = theta (1 + sum Delta) against an
//! explicit computation. Forward and gradient parity with HyperStyle: tests/convert_hyperstyle.rs.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hyperstyle_refiner::{
    BlockKind, HyperConfig, HyperNetwork, LayersToTune, OwnBlock, REFINER_JSON, Refinement,
    RefinerMeta, SharedLayers, output_table, refine,
};
use s2m_core::testing::{fixture_metadata, rel_err, torch_keys};
use stylegan2::{
    Generator, GeneratorInput, NoiseMode, StyleGan2Config, WeightOffsets, init::init_generator,
    modulated_layer_shapes,
};

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hyperstyle_tiny.safetensors"
);
const NARROW_EXPORT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hyperstyle_narrow_export"
);

fn hyperstyle_metadata() -> HashMap<String, String> {
    let meta = fixture_metadata(FIX);
    assert_eq!(
        meta.get("reference_repository").map(String::as_str),
        Some("https://github.com/yuval-alaluf/hyperstyle"),
        "provenance of {FIX}"
    );
    assert!(meta.contains_key("reference_commit") && meta.contains_key("stubbed"));
    meta
}

#[test]
fn parameter_names_equal_the_pytorch_state_dicts() {
    let meta = hyperstyle_metadata();
    let narrow: RefinerMeta = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(NARROW_EXPORT).join(REFINER_JSON)).unwrap(),
    )
    .unwrap();
    let cases = [
        // HyperStyle's class at output_size 256 with a 4-channel input (this crate's preset)
        (
            "hyperstyle_paper256",
            HyperConfig::hyperstyle(),
            StyleGan2Config::paper_256(),
        ),
        // ... and at its defaults: output_size 1024, input_nc 6
        (
            "hyperstyle_ffhq1024",
            HyperConfig {
                in_channels: 6,
                ..HyperConfig::hyperstyle()
            },
            StyleGan2Config::ffhq_1024(),
        ),
        // ... and its separable variant at the defaults
        (
            "hyperstyle_ffhq1024_separable",
            HyperConfig {
                in_channels: 6,
                own_block: OwnBlock::Separable,
                ..HyperConfig::hyperstyle()
            },
            StyleGan2Config::ffhq_1024(),
        ),
        ("narrow", narrow.hyper, narrow.generator.config),
    ];
    for (name, h, g) in cases {
        let rust = HyperNetwork::parameter_shapes(&h, &g).unwrap();
        // PyTorch lists the shared hypernet again under every HyperRefinementBlock.
        let torch: Vec<_> = torch_keys(&meta, name)
            .into_iter()
            .filter(|(k, _)| !(k.starts_with("refinement_blocks.") && k.contains(".hypernet.")))
            .collect();
        assert_eq!(rust, torch, "{name}");
        if name.starts_with("hyperstyle_") {
            let n: usize = rust.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
            println!("HyperStyle H ({name}): {n} parameters");
            // 313 M at 256, 333 M at 1024, 215 M for the separable variant at 1024
            let range = if name.ends_with("_separable") {
                200_000_000..230_000_000
            } else {
                300_000_000..340_000_000
            };
            assert!(range.contains(&n), "{name}: {n}");
        }
    }
}

/// HyperStyle hard-codes a config-f layer table (`PARAMETERS`: slot -> [k, in, out]), its ToRGB
/// slots and its shared slots; the crate derives them from the generator config. For the
/// config-f generators HyperStyle supports they must agree slot for slot.
#[test]
fn derived_table_equals_hyperstyle_parameters_for_config_f() {
    let meta = hyperstyle_metadata();
    let params: HashMap<String, [usize; 3]> =
        serde_json::from_str(&meta["hyperstyle_parameters"]).unwrap();
    let to_rgb: Vec<usize> = serde_json::from_str(&meta["hyperstyle_to_rgb_layers"]).unwrap();
    let shared: Vec<usize> = serde_json::from_str(&meta["hyperstyle_shared_layers"]).unwrap();
    let default_tuned: Vec<usize> = meta["hyperstyle_default_layers_to_tune"]
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for (g, n_outputs) in [
        (StyleGan2Config::paper_256(), 20),
        (
            StyleGan2Config {
                size: 512,
                ..StyleGan2Config::paper_256()
            },
            23,
        ),
        (StyleGan2Config::ffhq_1024(), 26),
    ] {
        let shapes = modulated_layer_shapes(&g).unwrap();
        assert_eq!(shapes.len(), n_outputs, "HyperStyle n_hypernet_outputs");
        for s in &shapes {
            let [k, i, o] = params[&s.slot.to_string()];
            assert_eq!((s.kernel, s.in_ch, s.out_ch), (k, i, o), "slot {}", s.slot);
            assert_eq!(s.is_to_rgb, to_rgb.contains(&s.slot), "slot {}", s.slot);
        }
        let t = output_table(&HyperConfig::hyperstyle(), &g).unwrap();
        let tuned: Vec<usize> = t.iter().map(|s| s.layer.slot).collect();
        let want: Vec<usize> = default_tuned
            .iter()
            .copied()
            .filter(|&s| s < n_outputs)
            .collect();
        assert_eq!(tuned, want, "size {}", g.size);
        let ours: Vec<usize> = t
            .iter()
            .filter(|s| s.kind == BlockKind::Shared)
            .map(|s| s.layer.slot)
            .collect();
        assert_eq!(ours, shared, "size {}", g.size);
    }
}

#[test]
fn output_table_reproduces_hyperstyle_for_config_f_and_follows_other_generators() {
    let h = HyperConfig::hyperstyle();
    for g in [StyleGan2Config::paper_256(), StyleGan2Config::ffhq_1024()] {
        let t = output_table(&h, &g).unwrap();
        let tuned: Vec<usize> = t.iter().map(|s| s.layer.slot).collect();
        let shared: Vec<usize> = t
            .iter()
            .filter(|s| s.kind == BlockKind::Shared)
            .map(|s| s.layer.slot)
            .collect();
        let hs = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24];
        let want: Vec<usize> = hs
            .into_iter()
            .filter(|&s| s < 3 * g.log_size() - 4)
            .collect();
        assert_eq!(tuned, want, "size {}", g.size);
        assert_eq!(shared, vec![0, 2, 3, 5, 6, 8, 9, 11, 12], "size {}", g.size);
    }
    // phantom_64: 128-wide up to 16 px, so slots 0..6 are shared; 8, 9, 11, 12 are not.
    let t = output_table(&HyperConfig::narrow_cpu(), &StyleGan2Config::phantom_64()).unwrap();
    let own: Vec<usize> = t
        .iter()
        .filter(|s| s.kind == BlockKind::Own)
        .map(|s| s.layer.slot)
        .collect();
    assert_eq!(own, vec![8, 9, 11, 12]);
    // choices and errors
    let mut c = HyperConfig::narrow_cpu();
    c.layers_to_tune = LayersToTune::Slots(vec![12, 3]);
    c.shared = SharedLayers::None;
    let t = output_table(&c, &StyleGan2Config::phantom_64()).unwrap();
    assert_eq!(
        t.iter().map(|s| s.layer.slot).collect::<Vec<_>>(),
        vec![3, 12]
    );
    assert!(t.iter().all(|s| s.kind == BlockKind::Own));
    c.layers_to_tune = LayersToTune::Slots(vec![1]);
    let e = output_table(&c, &StyleGan2Config::phantom_64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ToRGB"), "{e}");
    c.layers_to_tune = LayersToTune::Slots(vec![40]);
    assert!(output_table(&c, &StyleGan2Config::phantom_64()).is_err());
    c.layers_to_tune = LayersToTune::AllConvs;
    c.shared = SharedLayers::Slots(vec![0, 8]);
    let e = output_table(&c, &StyleGan2Config::phantom_64())
        .unwrap_err()
        .to_string();
    assert!(e.contains("one shape"), "{e}");
}

fn h_outputs_fit(gen_cfg: StyleGan2Config) {
    let dev = Device::Cpu;
    let (h, _) = e4e_encoder::init::seeded_var_map(7, DType::F32, &dev, |vb| {
        HyperNetwork::new(HyperConfig::narrow_cpu(), &gen_cfg, vb)
    })
    .unwrap();
    let b = 2;
    let sketch = Tensor::rand(0f32, 1.0, (b, 1, 64, 64), &dev).unwrap();
    let img = Tensor::rand(
        -1f32,
        1.0,
        (b, 3, gen_cfg.size as usize, gen_cfg.size as usize),
        &dev,
    )
    .unwrap();
    let x = h.input(&sketch, &img).unwrap();
    let out = h.forward(&x).unwrap();
    let shapes = modulated_layer_shapes(&gen_cfg).unwrap();
    let convs: Vec<usize> = shapes
        .iter()
        .filter(|s| !s.is_to_rgb)
        .map(|s| s.slot)
        .collect();
    assert_eq!(out.slots().map(|(s, _)| s).collect::<Vec<_>>(), convs);
    for (slot, d) in out.slots() {
        let l = &shapes[slot];
        assert_eq!(
            d.dims(),
            &[b, l.out_ch, l.in_ch, l.kernel, l.kernel],
            "{}",
            l.name
        );
    }
    // ... and the generator takes them (offsets scaled down to keep the image finite)
    let small: WeightOffsets = out.slots().map(|(s, d)| (s, (d * 1e-3).unwrap())).collect();
    let (g, _) = init_generator(
        &gen_cfg,
        &mut s2m_core::rng::rng_from_seed(1),
        DType::F32,
        &dev,
    )
    .unwrap();
    let w = Tensor::zeros((b, g.n_latent(), gen_cfg.style_dim), DType::F32, &dev).unwrap();
    let y = g
        .forward(&GeneratorInput::w_plus(w).with_offsets(&small))
        .unwrap()
        .image;
    let n = gen_cfg.size as usize;
    assert_eq!(y.dims(), &[b, 3, n, n]);
}

#[test]
fn outputs_have_the_generator_layer_shapes_tiny() {
    h_outputs_fit(StyleGan2Config::tiny_fixture());
}

#[test]
fn outputs_have_the_generator_layer_shapes_phantom64() {
    h_outputs_fit(StyleGan2Config::phantom_64());
}

#[test]
fn theta_update_rule_matches_an_explicit_computation() {
    let dev = Device::Cpu;
    let cfg = StyleGan2Config {
        size: 16,
        ..StyleGan2Config::tiny_fixture()
    };
    let (g, vm) =
        init_generator(&cfg, &mut s2m_core::rng::rng_from_seed(5), DType::F32, &dev).unwrap();
    let shapes = modulated_layer_shapes(&cfg).unwrap();
    let b = 2;
    let w = Tensor::randn(0f32, 1.0, (b, g.n_latent(), cfg.style_dim), &dev).unwrap();
    let run_g = |o: Option<&WeightOffsets>| {
        let mut i = GeneratorInput::w_plus(w.clone()).with_noise(NoiseMode::Const);
        if let Some(o) = o {
            i = i.with_offsets(o);
        }
        g.forward(&i).unwrap().image
    };
    // slot 0: full k x k deltas (shared-block style), slot 2 (up-conv): per-channel deltas.
    let (s_full, s_chan) = (0usize, 2usize);
    let (lf, lc) = (&shapes[s_full], &shapes[s_chan]);
    let mut refinement = Refinement::new();
    let mut sums: Vec<Tensor> = vec![
        Tensor::zeros((b, lf.out_ch, lf.in_ch, 3, 3), DType::F32, &dev).unwrap(),
        Tensor::zeros((b, lc.out_ch, lc.in_ch, 1, 1), DType::F32, &dev).unwrap(),
    ];
    let y0 = run_g(None);
    let mut last = y0.clone();
    for t in 1..=3 {
        let df = (Tensor::randn(0f32, 1.0, (b, lf.out_ch, lf.in_ch, 3, 3), &dev).unwrap() * 0.1)
            .unwrap();
        let dc = (Tensor::randn(0f32, 1.0, (b, lc.out_ch, lc.in_ch, 1, 1), &dev).unwrap() * 0.1)
            .unwrap();
        sums[0] = (&sums[0] + &df).unwrap();
        sums[1] = (&sums[1] + &dc).unwrap();
        let delta: WeightOffsets = [(s_full, df), (s_chan, dc)].into_iter().collect();
        refinement.accumulate(&delta).unwrap();
        assert_eq!(refinement.steps(), t);
        // multiplier = 1 + sum Delta
        let m = refinement.multiplier(s_full).unwrap().unwrap();
        assert!(rel_err(&m, &(&sums[0] + 1.0).unwrap()) < 1e-6);
        let yt = run_g(Some(&refinement.offsets()));
        // explicit: per sample, a generator whose weights are W * (1 + d1 + .. + dt)
        for i in 0..b {
            let mut map: HashMap<String, Tensor> = vm
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
                .collect();
            for (slot, sum) in [(s_full, &sums[0]), (s_chan, &sums[1])] {
                let name = format!("{}.weight", shapes[slot].name);
                // W [1,out,in,k,k] * (1 + sum_i) [1,out,in,k|1,k|1]
                let mult = (sum.narrow(0, i, 1).unwrap() + 1.0).unwrap();
                let wn = map[&name].broadcast_mul(&mult).unwrap();
                map.insert(name, wn);
            }
            let gexp = Generator::new_with_noise_buffers(
                &cfg,
                g.noise_buffers().to_vec(),
                VarBuilder::from_tensors(map, DType::F32, &dev),
            )
            .unwrap();
            let yi = gexp
                .forward(
                    &GeneratorInput::w_plus(w.narrow(0, i, 1).unwrap())
                        .with_noise(NoiseMode::Const),
                )
                .unwrap()
                .image;
            let err = rel_err(&yt.narrow(0, i, 1).unwrap(), &yi);
            println!("t={t} sample {i}: offsets vs explicit W*(1+sum d): {err:.2e}");
            assert!(err < 1e-4, "t={t} sample {i}: {err}");
        }
        // each step changes the image
        assert!(rel_err(&yt, &last) > 1e-3, "step {t} changed nothing");
        last = yt;
    }
    // detached copy keeps the values
    let d = refinement.detached();
    assert!(rel_err(&d.offsets().get(s_chan).unwrap().clone(), &sums[1]) < 1e-6);
}

#[test]
fn refine_loop_runs_t_steps() {
    let dev = Device::Cpu;
    let gcfg = StyleGan2Config::tiny_fixture();
    let (h, _) = e4e_encoder::init::seeded_var_map(2, DType::F32, &dev, |vb| {
        HyperNetwork::new(HyperConfig::narrow_cpu(), &gcfg, vb)
    })
    .unwrap();
    let (g, _) = init_generator(
        &gcfg,
        &mut s2m_core::rng::rng_from_seed(1),
        DType::F32,
        &dev,
    )
    .unwrap();
    let sketch = Tensor::rand(0f32, 1.0, (1, 1, 64, 64), &dev).unwrap();
    let w = Tensor::zeros((1, g.n_latent(), gcfg.style_dim), DType::F32, &dev).unwrap();
    let out = refine(&h, &g, &sketch, &w, 3, NoiseMode::Const).unwrap();
    assert_eq!(out.images.len(), 4);
    assert_eq!(out.refinement.steps(), 3);
    assert!(out.images.iter().all(|i| i.dims() == [1, 3, 64, 64]));
    // wrong inputs
    let bad = Tensor::zeros((1, 3, 64, 64), DType::F32, &dev).unwrap();
    let e = h.forward(&bad).unwrap_err().to_string();
    assert!(e.contains("hypernetwork input"), "{e}");
    assert!(h.input(&bad, &bad).is_err());
}

#[test]
fn config_round_trips() {
    for c in [HyperConfig::hyperstyle(), HyperConfig::narrow_cpu()] {
        let s = serde_json::to_string(&c).unwrap();
        let back: HyperConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn gradients_reach_h_through_the_generator() {
    // Phase-2 training path: loss(G(w; W (1 + H(x)))) -> every trainable parameter of H.
    let dev = Device::Cpu;
    let gcfg = StyleGan2Config {
        size: 16,
        ..StyleGan2Config::tiny_fixture()
    };
    let hcfg = HyperConfig {
        input_size: 32,
        ..HyperConfig::narrow_cpu()
    };
    let (h, vm) = e4e_encoder::init::seeded_var_map(4, DType::F32, &dev, |vb| {
        HyperNetwork::new(hcfg, &gcfg, vb)
    })
    .unwrap();
    let (g, _) = init_generator(
        &gcfg,
        &mut s2m_core::rng::rng_from_seed(1),
        DType::F32,
        &dev,
    )
    .unwrap();
    let w = Tensor::randn(0f32, 1.0, (2, g.n_latent(), gcfg.style_dim), &dev).unwrap();
    let y0 = g.forward(&GeneratorInput::w_plus(w.clone())).unwrap().image;
    let sketch = Tensor::rand(0f32, 1.0, (2, 1, 32, 32), &dev).unwrap();
    let x = h.input(&sketch, &y0).unwrap();
    let delta = h.forward_t(&x, true).unwrap();
    let mut r = Refinement::new();
    r.accumulate(&delta).unwrap();
    let offsets = r.offsets();
    let y = g
        .forward(&GeneratorInput::w_plus(w).with_offsets(&offsets))
        .unwrap()
        .image;
    let loss = y.sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut missing: Vec<&String> = data
        .iter()
        .filter(|(k, v)| !k.contains("running_") && grads.get(v.as_tensor()).is_none())
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    assert!(data.contains_key("shared_weight_hypernet.w2"));
}
