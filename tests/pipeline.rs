//! The `Sketch2MedI` facade on a tiny pipeline built here (32 px generator, tiny E and H, fresh
//! weights): load, generate, batch = single, embed, variations, provenance, sketch conversion
//! and the errors for broken weights folders.

use std::path::{Path, PathBuf};

use candle_core::Device;
use e4e_encoder::testing::{tiny_encoder_config, tiny_generator_config, tiny_generator_tensors};
use e4e_encoder::{EncoderTrainConfig, EncoderTrainer, FrozenGenerator};
use hyperstyle_refiner::{HyperConfig, RefinerTrainConfig, RefinerTrainer};
use image::{DynamicImage, GrayImage, Luma, LumaA, Rgb, RgbImage};
use losses::SimilarityLoss;
use sketch2medi::Sketch2MedI;
use sketch2medi::pipeline::{
    MANIFEST, PipelineError, PipelineManifest, SketchWarning, prepare_sketch, read_provenance,
};

fn loss() -> SimilarityLoss {
    SimilarityLoss::cpu_default(&losses::weights::shipped_weights_dir()).unwrap()
}

/// Writes a complete tiny pipeline into `dir` (generator, encoder and refiner folders) and
/// returns `dir`.
fn tiny_pipeline(dir: &Path, with_refiner: bool) -> PathBuf {
    let g_dir = dir.join("g");
    std::fs::create_dir_all(&g_dir).unwrap();
    let g_file = g_dir.join("generator.safetensors");
    candle_core::safetensors::save(&tiny_generator_tensors(1).unwrap(), &g_file).unwrap();
    std::fs::write(
        g_file.with_extension("json"),
        serde_json::to_string(&tiny_generator_config()).unwrap(),
    )
    .unwrap();
    let g = || FrozenGenerator::load(&g_file, &Device::Cpu).unwrap();
    let e_cfg = EncoderTrainConfig {
        encoder: tiny_encoder_config(),
        latent_avg_samples: 256,
        ..EncoderTrainConfig::default()
    };
    let enc = EncoderTrainer::open(e_cfg, g(), loss(), dir.join("enc_run"), &Device::Cpu).unwrap();
    let model = dir.join("model");
    enc.export(&model.join("encoder")).unwrap();
    if with_refiner {
        let h_cfg = RefinerTrainConfig {
            hyper: HyperConfig::tiny_test(),
            batch: 2,
            ..RefinerTrainConfig::default()
        };
        let h = RefinerTrainer::open(
            h_cfg,
            g(),
            &model.join("encoder"),
            loss(),
            dir.join("ref_run"),
            &Device::Cpu,
        )
        .unwrap();
        h.export(&model.join("refiner")).unwrap();
    }
    let manifest = PipelineManifest {
        format: sketch2medi::pipeline::FORMAT.into(),
        generator: "../g/generator.safetensors".into(),
        encoder: "encoder".into(),
        refiner: with_refiner.then(|| "refiner".into()),
        steps: 3,
        description: "tiny test pipeline".into(),
        normalise: None,
        select: None,
    };
    std::fs::write(
        model.join(MANIFEST),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    model
}

/// A sketch: a dark ellipse outline on white, `size` px.
fn ellipse_sketch(size: u32, rx: f32, ry: f32) -> DynamicImage {
    let c = size as f32 / 2.0;
    let img = GrayImage::from_fn(size, size, |x, y| {
        let (dx, dy) = ((x as f32 - c) / rx, (y as f32 - c) / ry);
        let r = (dx * dx + dy * dy).sqrt();
        Luma([if (r - 1.0).abs() < 0.12 { 0 } else { 255 }])
    });
    DynamicImage::ImageLuma8(img)
}

/// The alphabetically first f32 tensor of a safetensors file.
fn first_f32_tensor(file: &Path) -> String {
    let t = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    let mut names: Vec<String> = t
        .iter()
        .filter(|(_, v)| v.dtype() == candle_core::DType::F32)
        .map(|(k, _)| k.clone())
        .collect();
    names.sort();
    names.remove(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap().path();
        let dest = to.join(f.file_name().unwrap());
        if f.is_dir() {
            copy_dir(&f, &dest);
        } else {
            std::fs::copy(&f, dest).unwrap();
        }
    }
}

#[test]
fn load_generate_embed_and_provenance_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = tiny_pipeline(dir.path(), true);
    let model = Sketch2MedI::load(&model_dir).unwrap();
    assert_eq!(model.size(), 32);
    assert!(model.has_refiner());
    let a = ellipse_sketch(32, 10.0, 12.0);
    let b = ellipse_sketch(32, 6.0, 8.0);
    let ga = model.generate(&a).unwrap();
    assert_eq!(ga.image.dimensions(), (32, 32));
    assert_eq!(ga.steps.len(), 4, "ŷ_0 (E) + 3 refinements");
    assert_eq!(ga.w.len(), 32);
    assert!(ga.warnings.is_empty(), "{:?}", ga.warnings);
    assert_eq!(&ga.image, ga.steps.last().unwrap());
    // Fresh H is not the identity: the refined image differs from E's.
    assert_ne!(ga.steps[0], ga.steps[3]);
    // Deterministic, and a batch gives the same as one at a time.
    assert_eq!(model.generate(&a).unwrap().image, ga.image);
    let batch = model.generate_batch(&[a.clone(), b.clone()]).unwrap();
    let gb = model.generate(&b).unwrap();
    let max_diff = |x: &RgbImage, y: &RgbImage| {
        x.as_raw()
            .iter()
            .zip(y.as_raw())
            .map(|(p, q)| (*p as i32 - *q as i32).abs())
            .max()
            .unwrap()
    };
    assert!(max_diff(&batch[0].image, &ga.image) <= 1);
    assert!(max_diff(&batch[1].image, &gb.image) <= 1);
    // embed is the generation's w; different sketches embed differently.
    let wa = model.embed(&a).unwrap();
    for (x, y) in wa.iter().zip(&ga.w) {
        assert!((x - y).abs() < 1e-5);
    }
    assert_ne!(model.embed(&b).unwrap(), wa);
    // Encoder only: one image, the refiner's ŷ_0.
    let e_only = Sketch2MedI::load(&model_dir)
        .unwrap()
        .with_steps(0)
        .unwrap();
    let ge = e_only.generate(&a).unwrap();
    assert_eq!(ge.steps.len(), 1);
    assert_eq!(ge.image, ga.steps[0]);
    // Strip: sketch + 4 images.
    let strip = ga.strip().unwrap();
    assert!(strip.width() > 5 * 32);
    // Provenance in the PNG.
    let out = dir.path().join("out.png");
    model.save_png(&ga, &out).unwrap();
    let back = image::open(&out).unwrap().to_rgb8();
    assert_eq!(back, ga.image);
    let prov = read_provenance(&out).unwrap().expect("provenance chunk");
    assert_eq!(prov["synthetic"], true);
    assert_eq!(prov["steps"], 3);
    assert_eq!(
        prov["weights"]["generator"],
        model.hashes().generator.as_str()
    );
    assert_eq!(
        prov["weights"]["refiner"],
        model.hashes().refiner.as_deref().unwrap()
    );
}

#[test]
fn variations_keep_the_shape_styles_and_follow_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let model = Sketch2MedI::load(tiny_pipeline(dir.path(), true)).unwrap();
    let s = ellipse_sketch(32, 10.0, 12.0);
    let v1 = model.variations(&s, 3, 7).unwrap();
    assert_eq!(v1.len(), 3);
    assert_eq!(
        model.variations(&s, 3, 7).unwrap(),
        v1,
        "same seed, same images"
    );
    assert_ne!(model.variations(&s, 3, 8).unwrap()[0], v1[0]);
    assert_ne!(v1[0], v1[1]);
    assert!(model.variations(&s, 0, 7).unwrap().is_empty());
    assert!(model.fine_layers_start() < model.generator().n_latent());
}

#[test]
fn normalisation_keeps_a_thin_pen_on_a_large_canvas_and_is_read_from_the_manifest() {
    use sketch2medi::pipeline::prepare_sketch_with;
    use sketch2medi::sketch_synth::normalise::NormaliseConfig;
    // A 2 px ring on a 512 px page: a plain resize to 32 px fades it to grey.
    let page = GrayImage::from_fn(512, 512, |x, y| {
        let r = ((x as f32 - 256.0).powi(2) + (y as f32 - 256.0).powi(2)).sqrt();
        Luma([if (r - 150.0).abs() < 1.0 { 0 } else { 255 }])
    });
    let sketch = DynamicImage::ImageLuma8(page);
    let darkest = |g: &GrayImage| g.as_raw().iter().copied().min().unwrap();
    let plain = prepare_sketch(&sketch, 32).unwrap();
    let cfg = NormaliseConfig::for_size(32);
    let normalised = prepare_sketch_with(&sketch, 32, Some(&cfg)).unwrap();
    assert!(darkest(&plain.image) > 128, "{}", darkest(&plain.image));
    assert!(
        darkest(&normalised.image) < 60,
        "{}",
        darkest(&normalised.image)
    );
    assert!(normalised.warnings.is_empty(), "{:?}", normalised.warnings);

    // The pipeline normalises as its manifest says; with_normalisation overrides it.
    let dir = tempfile::tempdir().unwrap();
    let folder = tiny_pipeline(dir.path(), false);
    let path = folder.join(MANIFEST);
    let mut manifest = PipelineManifest::read(&path).unwrap();
    manifest.normalise = Some(cfg.clone());
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let model = Sketch2MedI::load(&folder).unwrap();
    assert_eq!(model.manifest().normalise, Some(cfg.clone()));
    let g = model.generate(&sketch).unwrap();
    assert_eq!(g.sketch, normalised.image);
    let png = dir.path().join("out.png");
    model.save_png(&g, &png).unwrap();
    let prov = sketch2medi::pipeline::read_provenance(&png)
        .unwrap()
        .unwrap();
    assert_eq!(prov["normalise"]["pen_px"], serde_json::json!(cfg.pen_px));
    let g = model.with_normalisation(None).generate(&sketch).unwrap();
    assert_eq!(g.sketch, plain.image);

    // Invalid settings are refused at load time, naming the manifest.
    manifest.normalise = Some(NormaliseConfig {
        pen_px: -1.0,
        ..cfg
    });
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let Err(e) = Sketch2MedI::load(&folder) else {
        panic!("a negative pen loaded")
    };
    let e = e.to_string();
    assert!(e.contains("pipeline.json") && e.contains("pen_px"), "{e}");
}

#[test]
fn sketches_of_any_size_and_mode_are_converted_with_warnings() {
    // RGB, larger, not square: padded + resized; dark page: inverted.
    let rgb = RgbImage::from_fn(96, 64, |x, _| {
        if x == 40 {
            Rgb([255, 255, 255])
        } else {
            Rgb([10, 10, 10])
        }
    });
    let p = prepare_sketch(&DynamicImage::ImageRgb8(rgb), 32).unwrap();
    assert_eq!(p.image.dimensions(), (32, 32));
    assert!(p.warnings.contains(&SketchWarning::Inverted));
    assert!(p.warnings.contains(&SketchWarning::Padded {
        width: 96,
        height: 64
    }));
    // Transparent page with an opaque black stroke: alpha over white, no inversion.
    let la = image::ImageBuffer::from_fn(32, 32, |x, _| {
        if x == 16 {
            LumaA([0u8, 255])
        } else {
            LumaA([0u8, 0])
        }
    });
    let p = prepare_sketch(&DynamicImage::ImageLumaA8(la), 32).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.image.get_pixel(16, 5).0[0], 0);
    assert_eq!(p.image.get_pixel(3, 5).0[0], 255);
    // Blank: a warning, and still an output.
    let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(50, 50, Luma([255])));
    assert_eq!(
        prepare_sketch(&blank, 32).unwrap().warnings,
        vec![SketchWarning::Blank]
    );
    let dir = tempfile::tempdir().unwrap();
    let model = Sketch2MedI::load(tiny_pipeline(dir.path(), false)).unwrap();
    assert!(!model.has_refiner());
    let g = model.generate(&blank).unwrap();
    assert_eq!(g.warnings, vec![SketchWarning::Blank]);
    assert_eq!(g.steps.len(), 1, "no refiner: E only");
}

#[test]
fn oversized_and_too_thin_sketches_are_refused_before_any_allocation() {
    use sketch2medi::pipeline::{MAX_SKETCH_ASPECT, load_sketch};
    // In memory: a 1x300000 sketch would be padded to a 300000² page (90 GB); refused.
    let thin = DynamicImage::ImageLuma8(GrayImage::from_pixel(1, 300_000, Luma([0])));
    let e = prepare_sketch(&thin, 32).unwrap_err();
    assert!(matches!(e, PipelineError::Invalid(_)), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("1x300000") && e.contains(&format!("{MAX_SKETCH_ASPECT}:1")),
        "{e}"
    );
    // The cap itself passes (8:1, padded), one pixel more does not.
    let at_cap = DynamicImage::ImageLuma8(GrayImage::from_pixel(8 * 20, 20, Luma([255])));
    assert!(prepare_sketch(&at_cap, 32).is_ok());
    let over = DynamicImage::ImageLuma8(GrayImage::from_pixel(8 * 20 + 1, 20, Luma([255])));
    assert!(prepare_sketch(&over, 32).is_err());

    let dir = tempfile::tempdir().unwrap();
    // The same 1x300000 sketch as a PNG file (under 2 KB): refused from its header,
    // naming the file and the limit.
    let file = dir.path().join("thin.png");
    {
        use image::ImageEncoder;
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let mut bytes = Vec::new();
        PngEncoder::new_with_quality(&mut bytes, CompressionType::Best, FilterType::NoFilter)
            .write_image(&[0u8; 300_000], 1, 300_000, image::ExtendedColorType::L8)
            .unwrap();
        assert!(bytes.len() < 2_000, "{} bytes", bytes.len());
        std::fs::write(&file, bytes).unwrap();
    }
    let e = load_sketch(&file).unwrap_err().to_string();
    assert!(e.contains("thin.png") && e.contains("16384"), "{e}");
    // Within the decode limits but too thin: refused after decoding, naming the file.
    let file = dir.path().join("strip.png");
    GrayImage::from_pixel(16_000, 10, Luma([255]))
        .save(&file)
        .unwrap();
    let e = load_sketch(&file).unwrap_err().to_string();
    assert!(e.contains("strip.png") && e.contains("aspect ratio"), "{e}");
    // A 20000x20000 PNG and a JPEG whose header says 64x65535.
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, s2m_core::testing::png_claiming_size(20_000, 20_000)).unwrap();
    let tall = dir.path().join("tall.jpg");
    std::fs::write(&tall, s2m_core::testing::jpeg_claiming_size(64, 65_535)).unwrap();
    for (f, size) in [(&huge, "20000x20000"), (&tall, "64x65535")] {
        let e = load_sketch(f).unwrap_err().to_string();
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            e.contains(name) && e.contains(size) && e.contains("16384"),
            "{e}"
        );
    }
}

/// Rewrites `<dir>/encoder.json` through `edit`.
fn edit_encoder_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("encoder/encoder.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Sets element 0 of tensor `name` in the safetensors `file` to NaN.
fn poison(file: &Path, name: &str) {
    let mut t = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    let x = &t[name];
    let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[0] = f32::NAN;
    let y = candle_core::Tensor::from_vec(v, x.dims(), &Device::Cpu).unwrap();
    t.insert(name.to_string(), y);
    candle_core::safetensors::save(&t, file).unwrap();
}

#[test]
fn latent_avg_is_hashed_and_non_finite_weights_are_refused() {
    use s2m_train::bundle::sha256_file;
    let dir = tempfile::tempdir().unwrap();
    let model_dir = tiny_pipeline(dir.path(), true);
    let avg_file = model_dir.join("encoder/latent_avg.safetensors");
    let avg_hash = sha256_file(&avg_file).unwrap();
    // The export records the hash, the pipeline reports it and writes it into provenance.
    let meta: e4e_encoder::bundle::EncoderMeta = serde_json::from_str(
        &std::fs::read_to_string(model_dir.join("encoder/encoder.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta.latent_avg_sha256.as_deref(), Some(avg_hash.as_str()));
    let model = Sketch2MedI::load(&model_dir).unwrap();
    assert_eq!(model.hashes().latent_avg, avg_hash);
    let g = model.generate(&ellipse_sketch(32, 10.0, 12.0)).unwrap();
    let png = dir.path().join("out.png");
    model.save_png(&g, &png).unwrap();
    let prov = read_provenance(&png).unwrap().unwrap();
    assert_eq!(prov["weights"]["latent_avg"], avg_hash.as_str());

    // Flipped bytes in latent_avg: refused, naming the file.
    let flipped = dir.path().join("flipped");
    copy_dir(&model_dir, &flipped);
    let f = flipped.join("encoder/latent_avg.safetensors");
    let mut bytes = std::fs::read(&f).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    let e = Sketch2MedI::load(&flipped).unwrap_err().to_string();
    assert!(
        e.contains("latent_avg.safetensors") && e.contains(&avg_hash),
        "{e}"
    );
    // An export without the recorded hash (written before it existed) still loads, and its
    // latent_avg is still hashed for provenance.
    let old = dir.path().join("old_export");
    copy_dir(&model_dir, &old);
    edit_encoder_json(&old, |v| {
        v.as_object_mut().unwrap().remove("latent_avg_sha256");
    });
    assert_eq!(
        Sketch2MedI::load(&old).unwrap().hashes().latent_avg,
        avg_hash
    );

    // NaN in latent_avg (no hash recorded, so only the value check can catch it).
    poison(&old.join("encoder/latent_avg.safetensors"), "latent_avg");
    let e = Sketch2MedI::load(&old).unwrap_err().to_string();
    assert!(
        e.contains("latent_avg.safetensors") && e.contains("`latent_avg`") && e.contains("NaN"),
        "{e}"
    );
    // NaN in E's weights with a matching recorded hash (a diverged run exports such a file).
    let nan_e = dir.path().join("nan_encoder");
    copy_dir(&model_dir, &nan_e);
    let e_file = nan_e.join("encoder/encoder.safetensors");
    let name = first_f32_tensor(&e_file);
    poison(&e_file, &name);
    let h = sha256_file(&e_file).unwrap();
    edit_encoder_json(&nan_e, |v| v["encoder_sha256"] = h.into());
    let e = Sketch2MedI::load(&nan_e).unwrap_err().to_string();
    assert!(
        e.contains("encoder.safetensors") && e.contains(&format!("`{name}`")),
        "{e}"
    );
    // NaN in H's weights (refiner.json's hash updated) and in G's.
    let nan_h = dir.path().join("nan_refiner");
    copy_dir(&model_dir, &nan_h);
    let h_file = nan_h.join("refiner/refiner.safetensors");
    let h_name = first_f32_tensor(&h_file);
    poison(&h_file, &h_name);
    let json = nan_h.join("refiner/refiner.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    v["refiner_sha256"] = sha256_file(&h_file).unwrap().into();
    std::fs::write(&json, v.to_string()).unwrap();
    let e = Sketch2MedI::load(&nan_h).unwrap_err().to_string();
    assert!(
        e.contains("refiner.safetensors") && e.contains(&format!("`{h_name}`")),
        "{e}"
    );
    let g_file = dir.path().join("g/generator.safetensors");
    poison(&g_file, "style.1.weight");
    let e = FrozenGenerator::load(&g_file, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("generator.safetensors") && e.contains("`style.1.weight`"),
        "{e}"
    );
    let e = Sketch2MedI::load(&model_dir).unwrap_err().to_string();
    assert!(e.contains("`style.1.weight`"), "{e}");
}

#[test]
fn broken_weights_folders_and_inputs_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = tiny_pipeline(dir.path(), true);
    let msg = |e: PipelineError| e.to_string();
    // Missing folder / manifest.
    let e = msg(Sketch2MedI::load(dir.path().join("nope")).unwrap_err());
    assert!(e.contains("nope") && e.contains("not a folder"), "{e}");
    let e = msg(Sketch2MedI::load(dir.path()).unwrap_err());
    assert!(e.contains(MANIFEST), "{e}");
    // Each missing part is named.
    for (file, what) in [
        ("refiner.safetensors", "refiner"),
        ("encoder.safetensors", "encoder"),
        ("latent_avg.safetensors", "latent_avg.safetensors"),
    ] {
        let copy = dir.path().join(format!("copy_{what}"));
        copy_dir(&model_dir, &copy);
        let sub = if file.starts_with("refiner") {
            "refiner"
        } else {
            "encoder"
        };
        std::fs::remove_file(copy.join(sub).join(file)).unwrap();
        let e = msg(Sketch2MedI::load(&copy).unwrap_err());
        assert!(e.contains(file), "{what}: {e}");
    }
    // A corrupt manifest and an absolute path.
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join(MANIFEST), "{ not json").unwrap();
    let e = msg(Sketch2MedI::load(&bad).unwrap_err());
    assert!(e.contains("bad pipeline manifest"), "{e}");
    let mut m: PipelineManifest =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join(MANIFEST)).unwrap()).unwrap();
    m.generator = "/etc/generator.safetensors".into();
    std::fs::write(bad.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
    let e = msg(Sketch2MedI::load(&bad).unwrap_err());
    assert!(e.contains("must be relative"), "{e}");
    // Steps above the cap, in the manifest or set afterwards.
    let mut many = m.clone();
    many.generator = "../g/generator.safetensors".into();
    many.steps = sketch2medi::pipeline::MAX_STEPS + 1;
    let steps_dir = dir.path().join("many_steps");
    copy_dir(&model_dir, &steps_dir);
    std::fs::write(
        steps_dir.join(MANIFEST),
        serde_json::to_string(&many).unwrap(),
    )
    .unwrap();
    let e = msg(Sketch2MedI::load(&steps_dir).unwrap_err());
    assert!(
        e.contains(MANIFEST) && e.contains("\"steps\": 17") && e.contains("cap of 16"),
        "{e}"
    );
    let model = Sketch2MedI::load(&model_dir).unwrap();
    let e = msg(model.with_steps(17).unwrap_err());
    assert!(e.contains("cap of 16"), "{e}");
    // A non-image sketch file.
    let not_image = dir.path().join("sketch.png");
    std::fs::write(&not_image, b"this is not a PNG").unwrap();
    let e = msg(sketch2medi::load_sketch(&not_image).unwrap_err());
    assert!(
        e.contains("sketch.png") && e.contains("not a readable sketch"),
        "{e}"
    );
    // An encoder trained for another generator is refused.
    let other = dir.path().join("other_g");
    std::fs::create_dir_all(&other).unwrap();
    candle_core::safetensors::save(
        &tiny_generator_tensors(2).unwrap(),
        other.join("g.safetensors"),
    )
    .unwrap();
    std::fs::write(
        other.join("g.json"),
        serde_json::to_string(&tiny_generator_config()).unwrap(),
    )
    .unwrap();
    m.generator = "../other_g/g.safetensors".into();
    std::fs::write(model_dir.join(MANIFEST), serde_json::to_string(&m).unwrap()).unwrap();
    let e = msg(Sketch2MedI::load(&model_dir).unwrap_err());
    assert!(e.contains("trained with generator"), "{e}");
}

#[test]
fn step_selection_picks_the_step_closest_to_the_sketch_and_is_recorded() {
    use sketch2medi::pipeline::{SelectConfig, select_step, sketch_distance};
    // The rule: smallest distance, ties to the earlier step, nothing found never wins.
    assert_eq!(
        select_step(&[Some(3.0), Some(1.0), Some(1.0), Some(2.0)], 0.0),
        1
    );
    assert_eq!(select_step(&[None, Some(5.0), None], 0.0), 1);
    assert_eq!(select_step(&[None, None, None, None], 0.0), 0);
    assert_eq!(select_step(&[Some(2.0), Some(2.0)], 0.0), 0);
    assert_eq!(select_step(&[], 0.0), 0);
    // With a margin a step must beat E's image by at least that much; among those that do,
    // the closest wins. With nothing found in E's image any distance qualifies.
    assert_eq!(select_step(&[Some(3.0), Some(2.5), Some(2.2)], 1.0), 0);
    assert_eq!(select_step(&[Some(3.0), Some(2.5), Some(2.0)], 1.0), 2);
    assert_eq!(select_step(&[Some(3.0), Some(1.5), Some(1.9)], 1.0), 1);
    assert_eq!(select_step(&[None, Some(9.0), None], 1.0), 1);
    assert_eq!(select_step(&[Some(3.0), None, None], 1.0), 0);

    let dir = tempfile::tempdir().unwrap();
    let folder = tiny_pipeline(dir.path(), true);
    let shipped_s = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/solov2_phantom");
    copy_dir(&shipped_s, &dir.path().join("s"));
    let path = folder.join(MANIFEST);
    let mut manifest = PipelineManifest::read(&path).unwrap();
    // A pipeline without "select" cannot switch it on.
    let mut plain = Sketch2MedI::load(&folder).unwrap();
    assert!(!plain.selects_step());
    assert!(plain.set_step_selection(true).is_err());

    manifest.select = Some(SelectConfig {
        segmenter: "../s".into(),
        threshold: 0.35,
        margin: 0.0,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    let mut model = Sketch2MedI::load(&folder).unwrap();
    assert!(model.selects_step());
    assert_eq!(model.hashes().segmenter.as_ref().map(String::len), Some(64));
    let s =
        sketch2medi::segmenter::SoloV2Segmenter::load(&dir.path().join("s"), 0.35, &Device::Cpu)
            .unwrap();
    for sketch in [
        ellipse_sketch(32, 10.0, 12.0),
        ellipse_sketch(32, 5.0, 14.0),
    ] {
        let g = model.generate(&sketch).unwrap();
        assert_eq!(g.steps.len(), 4);
        assert_eq!(g.distances.len(), 4);
        // The distances are those of S's masks of each step, and the image is the chosen step.
        let maps = s.segment_images(&g.steps).unwrap();
        for (t, m) in maps.iter().enumerate() {
            assert_eq!(
                sketch_distance(m, &g.sketch).unwrap(),
                g.distances[t],
                "t = {t}"
            );
        }
        assert_eq!(g.chosen_step, select_step(&g.distances, 0.0));
        assert_eq!(g.image, g.steps[g.chosen_step]);
        let png = dir.path().join("sel.png");
        model.save_png(&g, &png).unwrap();
        let prov = sketch2medi::pipeline::read_provenance(&png)
            .unwrap()
            .unwrap();
        assert_eq!(prov["chosen_step"], serde_json::json!(g.chosen_step));
        assert_eq!(prov["steps"], serde_json::json!(3));
    }
    // A blank page: S's contours cannot be compared with no ink, so E's image is kept.
    let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(32, 32, Luma([255])));
    let g = model.generate(&blank).unwrap();
    assert!(g.distances.iter().all(Option::is_none));
    assert_eq!(g.chosen_step, 0);
    assert_eq!(g.image, g.steps[0]);
    // Switched off, the last step is written.
    model.set_step_selection(false).unwrap();
    let g = model.generate(&blank).unwrap();
    assert_eq!(g.chosen_step, 3);
    assert!(g.distances.is_empty());

    // A bad threshold or margin or a missing segmenter is refused at load time, naming
    // "select".
    for (seg, threshold, margin) in [
        ("../s", 1.5, 0.0),
        ("../missing", 0.35, 0.0),
        ("../s", 0.35, -1.0),
    ] {
        manifest.select = Some(SelectConfig {
            segmenter: seg.into(),
            threshold,
            margin,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
        let Err(e) = Sketch2MedI::load(&folder) else {
            panic!("{seg} {threshold} {margin} loaded")
        };
        assert!(e.to_string().contains("\"select\""), "{e}");
    }
}
