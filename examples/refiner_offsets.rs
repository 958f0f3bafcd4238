//! How much the refiner H's weight offsets depend on the sketch, and on the refinement step.
//!
//! For every sketch in a folder it runs E, then the T = 3 refinement loop, and prints, per
//! step t and per tuned generator slot, the RMS of the offsets' mean over the sketches
//! (the part shared by all sketches) and the RMS of their spread across the sketches (the
//! sketch-specific part).
//!
//! ```text
//! cargo run --release --example refiner_offsets -- weights/sketch2medi_phantom64 data/phantom64/freehand
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use sketch2medi::pipeline::{PipelineManifest, load_sketch, prepare_sketch_with};

/// RMS of the mean over dim 0, RMS of the deviation from that mean.
fn shared_and_spread(offsets: &Tensor) -> anyhow::Result<(f64, f64)> {
    let flat = offsets.flatten_from(1)?;
    let mean = flat.mean_keepdim(0)?;
    let spread = flat.broadcast_sub(&mean)?.sqr()?.mean_all()?;
    let shared = mean.sqr()?.mean_all()?;
    Ok((
        f64::from(shared.to_scalar::<f32>()?),
        f64::from(spread.to_scalar::<f32>()?),
    ))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, pipeline, sketches] = args.as_slice() else {
        bail!("usage: refiner_offsets PIPELINE_DIR SKETCH_DIR");
    };
    let dev = Device::Cpu;
    let dir = Path::new(pipeline);
    let manifest = PipelineManifest::read(&dir.join("pipeline.json"))?;
    let g = e4e_encoder::FrozenGenerator::load(&dir.join(&manifest.generator), &dev)?;
    let e = e4e_encoder::EncoderBundle::load(&dir.join(&manifest.encoder), &dev)?;
    let refiner = manifest
        .refiner
        .as_ref()
        .context("the pipeline has no refiner")?;
    let h = hyperstyle_refiner::RefinerBundle::load(&dir.join(refiner), g.config(), &dev)?;

    let mut paths: Vec<PathBuf> = std::fs::read_dir(sketches)
        .with_context(|| format!("reading {sketches}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    paths.sort();
    if paths.len() < 2 {
        bail!("{sketches}: need at least 2 PNG sketches");
    }
    let mut batch = Vec::with_capacity(paths.len());
    for p in &paths {
        let prepared = prepare_sketch_with(
            &load_sketch(p)?,
            g.config().size,
            manifest.normalise.as_ref(),
        )?;
        batch.push(s2m_core::imageio::gray_to_tensor(&prepared.image, &dev)?);
    }
    let sketch = Tensor::stack(&batch, 0)?;
    let w = e.embed(&sketch)?;
    let w_plus = e4e_encoder::Encoder::to_w_plus(&w, g.config().n_latent())?;
    let steps = hyperstyle_refiner::DEFAULT_STEPS;
    let out = hyperstyle_refiner::refine(
        &h.hypernet,
        g.generator(),
        &sketch,
        &w_plus,
        steps,
        stylegan2::NoiseMode::Const,
    )?;
    println!(
        "{} sketches from {sketches}; RMS of H's offsets Δ_t",
        paths.len()
    );
    println!("step | slot | shared (mean over sketches) | spread across sketches");
    for t in 0..steps {
        // Δ_{t+1} = H([ŷ_t, sketch]), as in the loop.
        let delta = h
            .hypernet
            .forward(&h.hypernet.input(&sketch, &out.images[t])?)?;
        let (mut shared, mut spread) = (0.0, 0.0);
        for (slot, d) in delta.slots() {
            let (m, s) = shared_and_spread(d)?;
            println!("{} | {slot} | {:.4} | {:.4}", t + 1, m.sqrt(), s.sqrt());
            shared += m;
            spread += s;
        }
        println!(
            "{} | all | {:.4} | {:.4} (spread / shared {:.3})",
            t + 1,
            shared.sqrt(),
            spread.sqrt(),
            (spread / shared).sqrt()
        );
    }
    Ok(())
}
