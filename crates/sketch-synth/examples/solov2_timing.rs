//! Wall-clock split of one SOLOv2 training step (forward, loss, backward) and of inference,
//! for choosing the CPU preset: `cargo run --release -p sketch-synth --example solov2_timing
//! -- [preset] [input_size] [batch]`. With `SOLOV2_WEIGHTS=<export dir>` and
//! `SOLOV2_IMAGES=<dir of PNGs>` it times the trained model instead: forward alone vs `predict`
//! (forward + post-processing) vs the sketch drawing, per image, at the batch size.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use sketch_synth::solov2::{GtInstance, SoloV2, SoloV2Config, build_targets, solo_loss};

fn trained(weights: &str, images: &str, batch: usize) -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let (model, _) = sketch_synth::solov2::load_exported(weights, &dev)?;
    let mut files: Vec<_> = std::fs::read_dir(images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    files.sort();
    files.truncate(batch * 4);
    let imgs = files
        .iter()
        .map(s2m_core::imageio::load_rgb)
        .collect::<Result<Vec<_>, _>>()?;
    let n = imgs.len() as f64;
    let (mut fwd, mut pred, mut sketch) = (0.0, 0.0, 0.0);
    for chunk in imgs.chunks(batch) {
        let t0 = Instant::now();
        let x = model.preprocess(chunk, &dev)?;
        let _ = model.forward(&x)?;
        let t1 = Instant::now();
        let preds = model.predict(chunk)?;
        let t2 = Instant::now();
        for (p, im) in preds.into_iter().zip(chunk) {
            let cfg = sketch_synth::SketchConfig::default();
            let _ = sketch_synth::solov2::sketch_from_prediction(p, im.dimensions(), &cfg)?;
        }
        let t3 = Instant::now();
        fwd += (t1 - t0).as_secs_f64();
        pred += (t2 - t1).as_secs_f64();
        sketch += (t3 - t2).as_secs_f64();
    }
    println!(
        "trained model, {n} images, batch {batch}: forward {:.1} ms, predict {:.1} ms, sketch {:.1} ms per image",
        fwd * 1e3 / n,
        pred * 1e3 / n,
        sketch * 1e3 / n
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let (Ok(w), Ok(i)) = (
        std::env::var("SOLOV2_WEIGHTS"),
        std::env::var("SOLOV2_IMAGES"),
    ) {
        let batch: usize = args.get(3).map_or(Ok(8), |s| s.parse())?;
        return trained(&w, &i, batch);
    }
    let preset = args.get(1).map_or("phantom_r18", |s| s.as_str());
    let mut cfg = SoloV2Config::preset(preset)?;
    if let Some(s) = args.get(2) {
        cfg = cfg.with_input_size(s.parse()?);
    }
    let batch: usize = args.get(3).map_or(Ok(8), |s| s.parse())?;
    let dev = Device::Cpu;
    let (model, _vars) =
        s2m_core::init::seeded_var_map(0, DType::F32, &dev, |vb| SoloV2::new(cfg.clone(), vb))?;
    let s = cfg.input_size;
    let x = Tensor::from_vec(
        s2m_core::rng::randn_vec(&mut s2m_core::rng::rng_from_seed(1), batch * 3 * s * s),
        (batch, 3, s, s),
        &dev,
    )?;
    // One square instance per class.
    let gts: Vec<GtInstance> = (0..4)
        .map(|k| {
            let mut mask = vec![0u8; s * s];
            let (y0, x0, w) = (s / 8 + k * s / 5, s / 8 + k * s / 6, s / 4);
            for y in y0..(y0 + w).min(s) {
                for x in x0..(x0 + w).min(s) {
                    mask[y * s + x] = 1;
                }
            }
            GtInstance { label: k, mask }
        })
        .collect();
    let targets: Vec<_> = (0..batch)
        .map(|_| build_targets(&gts, (s, s), &cfg))
        .collect::<Result<_, _>>()?;
    for round in 0..3 {
        let t0 = Instant::now();
        let out = model.forward_t(&x, true)?;
        let t1 = Instant::now();
        let loss = solo_loss(&out, &targets, &cfg)?;
        let t2 = Instant::now();
        let grads = loss.total.backward()?;
        let t3 = Instant::now();
        drop(grads);
        let t4 = Instant::now();
        let _ = model.forward(&x)?;
        let t5 = Instant::now();
        println!(
            "round {round}: {preset} {s} px batch {batch}: forward {:.3} s, loss {:.3} s, backward {:.3} s, eval forward {:.3} s",
            (t1 - t0).as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            (t5 - t4).as_secs_f64()
        );
    }
    Ok(())
}
