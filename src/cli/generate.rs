//! `sketch2medi generate`: the main job, a sketch in, a synthetic throat image out.

use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

use sketch2medi::pipeline::{MAX_STEPS, Sketch2MedI, default_weights_dir, load_sketch};
use sketch2medi::sketch_synth::normalise::NormaliseConfig;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The sketch: PNG or JPEG, any size or colour mode (dark strokes on a light page, or the
    /// reverse; see the crate docs for the conversion). A folder: every PNG/JPEG in it, written
    /// to the --out folder under the same file stems.
    #[arg(long)]
    sketch: PathBuf,
    /// Output PNG (written atomically, with provenance text chunks); a folder when --sketch is
    /// a folder.
    #[arg(long)]
    out: PathBuf,
    /// Sketches per batch in folder mode (1 to 256).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Weights folder (default: $SKETCH2MEDI_WEIGHTS, else weights/sketch2medi_phantom64).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Refinement steps T (default: the pipeline's "steps"); 0 = encoder only, at most 16.
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
    /// How the sketch is brought to the model's size (default: the pipeline's, pipeline.json
    /// "normalise"): `resize` (triangle filter) or `normalise` (ink-preserving, pen width
    /// normalised to the training pen; the pipeline's settings if it has them).
    #[arg(long, value_enum)]
    sketch_input: Option<SketchInput>,
    /// Write the step t in 0..=T whose image agrees best with the sketch (true) or always
    /// step T (false); default: the pipeline's (`"select"` in pipeline.json).
    #[arg(long, action = clap::ArgAction::Set)]
    select_step: Option<bool>,
}

/// `--sketch-input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SketchInput {
    Resize,
    Normalise,
}

/// Largest `--batch`: a batch holds every sketch's activations of E, G and H at once.
pub const MAX_BATCH: usize = 256;

/// The caps of the numeric options, checked before anything is loaded.
fn check_options(args: &GenerateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_BATCH).contains(&args.batch),
        "--batch {}: it must be from 1 to {MAX_BATCH}",
        args.batch
    );
    if let Some(t) = args.steps {
        anyhow::ensure!(
            t <= MAX_STEPS,
            "--steps {t}: at most {MAX_STEPS} refinement steps"
        );
    }
    Ok(())
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    check_options(&args)?;
    let device = crate::cli::device()?;
    let dir = args.weights.clone().unwrap_or_else(default_weights_dir);
    let t0 = Instant::now();
    let mut model = Sketch2MedI::load_on(&dir, &device)
        .with_context(|| format!("loading the pipeline from {}", dir.display()))?;
    if let Some(t) = args.steps {
        model = model.with_steps(t)?;
    }
    match args.sketch_input {
        Some(SketchInput::Resize) => model = model.with_normalisation(None),
        Some(SketchInput::Normalise) if model.manifest().normalise.is_none() => {
            let cfg = NormaliseConfig::for_size(model.size());
            model = model.with_normalisation(Some(cfg));
        }
        Some(SketchInput::Normalise) | None => {}
    }
    if let Some(on) = args.select_step {
        model.set_step_selection(on)?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    if args.sketch.is_dir() {
        return generate_folder(&model, &args);
    }
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
            .variations_of(&generation, args.variations, args.seed)?
            .iter()
            .enumerate()
        {
            let p = args.out.with_file_name(format!("{stem}_var{i}.png"));
            sketch2medi::pipeline::write_png_with_provenance(&p, img, &prov)?;
        }
    }
    let chosen = if model.selects_step() {
        format!(
            ", step {} chosen by agreement with the sketch",
            generation.chosen_step
        )
    } else {
        String::new()
    };
    println!(
        "wrote {} ({} px, T = {} refinement step(s){chosen}{}) in {:.2} s (+{:.2} s loading, {:?})",
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

/// Folder mode: every image of `--sketch` -> `--out/<stem>.png`, in batches, with a progress
/// bar; unreadable files and sketches over the limits (`load_sketch`: decode limits, aspect
/// ratio) are reported and skipped (the count is printed).
fn generate_folder(model: &Sketch2MedI, args: &GenerateArgs) -> anyhow::Result<()> {
    // The PNG/JPEG files of the folder, sorted; an error when there is none.
    let files = metrics::features::image_files(&args.sketch)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let bar = crate::cli::progress::bar(files.len() as u64, crate::cli::progress::PLAIN);
    let t = Instant::now();
    let (mut skipped, mut warned) = (0usize, 0usize);
    for chunk in files.chunks(args.batch) {
        let mut sketches = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        for f in chunk {
            match load_sketch(f) {
                Ok(s) => {
                    sketches.push(s);
                    names.push(f);
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("skipped: {e}"));
                    skipped += 1;
                }
            }
        }
        if sketches.is_empty() {
            bar.inc(chunk.len() as u64);
            continue;
        }
        for (g, f) in model.generate_batch(&sketches)?.iter().zip(names) {
            for w in &g.warnings {
                bar.suspend(|| eprintln!("warning: {}: {w}", f.display()));
                warned += 1;
            }
            let stem = f.file_stem().map(|s| s.to_string_lossy().into_owned());
            let out = args.out.join(format!("{}.png", stem.unwrap_or_default()));
            model.save_png(g, &out)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "wrote {} images to {} in {:.1} s (T = {} refinement step(s){}; {skipped} files skipped (unreadable or over the limits), {warned} warnings)",
        files.len() - skipped,
        args.out.display(),
        t.elapsed().as_secs_f64(),
        if model.has_refiner() {
            model.steps()
        } else {
            0
        },
        if model.selects_step() {
            ", the step of each chosen by agreement with its sketch"
        } else {
            ""
        },
    );
    Ok(())
}
