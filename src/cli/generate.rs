//! `sketch2medi generate`: the main job, a sketch in, a synthetic throat image out.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

use sketch2medi::pipeline::{Sketch2MedI, default_weights_dir, load_sketch};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The sketch: PNG or JPEG, any size or colour mode (dark strokes on a light page, or the
    /// reverse; see the crate docs for the conversion).
    #[arg(long)]
    sketch: PathBuf,
    /// Output PNG (written atomically, with provenance text chunks).
    #[arg(long)]
    out: PathBuf,
    /// Weights folder (default: $SKETCH2MEDI_WEIGHTS, else weights/sketch2medi_phantom64).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Refinement steps T (default: the pipeline's, 3); 0 = encoder only.
    #[arg(long)]
    steps: Option<usize>,
    /// Also write a strip "sketch | E | E+H t=1..T" to this PNG.
    #[arg(long)]
    strip: Option<PathBuf>,
    /// Also write N appearance variations (style mixing of the fine layers) next to --out as
    /// <stem>_var<i>.png.
    #[arg(long, default_value_t = 0)]
    variations: usize,
    /// Seed of the variations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = crate::cli::device()?;
    let dir = args.weights.clone().unwrap_or_else(default_weights_dir);
    let t0 = Instant::now();
    let mut model = Sketch2MedI::load_on(&dir, &device)
        .with_context(|| format!("loading the pipeline from {}", dir.display()))?;
    if let Some(t) = args.steps {
        model = model.with_steps(t);
    }
    let load_s = t0.elapsed().as_secs_f64();
    let sketch = load_sketch(&args.sketch)?;
    let t1 = Instant::now();
    let generation = model.generate(&sketch)?;
    let gen_s = t1.elapsed().as_secs_f64();
    for w in &generation.warnings {
        eprintln!("warning: {}: {w}", args.sketch.display());
    }
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    model.save_png(&generation, &args.out)?;
    if let Some(strip) = &args.strip {
        let prov = model.provenance(&generation, None);
        sketch2medi::pipeline::write_png_with_provenance(strip, &generation.strip()?, &prov)?;
    }
    if args.variations > 0 {
        let stem = args
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let prov = model.provenance(&generation, Some(args.seed));
        for (i, img) in model
            .variations(&sketch, args.variations, args.seed)?
            .iter()
            .enumerate()
        {
            let p = args.out.with_file_name(format!("{stem}_var{i}.png"));
            sketch2medi::pipeline::write_png_with_provenance(&p, img, &prov)?;
        }
    }
    println!(
        "wrote {} ({} px, {} refinement steps{}) in {:.2} s (+{:.2} s loading, {:?})",
        args.out.display(),
        model.size(),
        generation.steps.len() - 1,
        if model.has_refiner() {
            ""
        } else {
            ", no refiner in this pipeline"
        },
        gen_s,
        load_s,
        model.device()
    );
    Ok(())
}
