//! `sketch2medi generate`: the main job, a sketch in, a synthetic throat image out.
//!
//! Nothing is overwritten by surprise (checked before the weights are loaded, so before
//! anything is written): no output may be the input sketch or another output of the same run;
//! in folder mode `--out` may not be the sketch folder, two sketches may not share an output
//! name (`x.png` and `x.jpg`, compared ignoring case: an error naming both), and existing
//! output files are only replaced with `--force`. In single-file mode an existing `--out`
//! (or `--strip`, variation) file that is not the input is replaced, as before.

use anyhow::Context;
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    /// Output PNG (written atomically, with provenance text chunks; an existing file is
    /// replaced, unless it is the sketch); a folder when --sketch is a folder (not the sketch
    /// folder).
    #[arg(long)]
    out: PathBuf,
    /// Folder mode: replace output files that already exist in the --out folder (without it
    /// the run stops before writing anything).
    #[arg(long)]
    force: bool,
    /// Sketches per batch in folder mode (1 to 256).
    #[arg(long, default_value_t = 8, value_parser = crate::cli::args::count::<usize>, allow_hyphen_values = true)]
    batch: usize,
    /// Weights folder (default: $SKETCH2MEDI_WEIGHTS, else weights/sketch2medi_phantom64).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Refinement steps T (default: the pipeline's "steps"); 0 = encoder only, at most 16.
    #[arg(long, value_parser = crate::cli::args::count0::<usize>, allow_hyphen_values = true)]
    steps: Option<usize>,
    /// Also write a strip "sketch | E | E+H t=1..T" to this PNG.
    #[arg(long)]
    strip: Option<PathBuf>,
    /// Also write N appearance variations (style mixing of the fine layers) next to --out as
    /// <stem>_var<i>.png (at most 256).
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<usize>, allow_hyphen_values = true)]
    variations: usize,
    /// Seed of the variations.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::count0::<u64>, allow_hyphen_values = true)]
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
/// Largest `--variations`.
pub const MAX_VARIATIONS: usize = 256;

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
    anyhow::ensure!(
        args.variations <= MAX_VARIATIONS,
        "--variations {}: at most {MAX_VARIATIONS}",
        args.variations
    );
    Ok(())
}

/// `path` absolute and resolved as far as it exists (symbolic links, `..`): the canonical
/// path of an existing file, else its canonical folder joined with its name, so that two
/// spellings of one file compare equal before it is written.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| abs.clone()),
        _ => abs,
    }
}

/// The files of `--variations` beside `out`: `<stem>_var<i>.png`.
fn variation_paths(out: &Path, n: usize) -> Vec<PathBuf> {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    (0..n)
        .map(|i| out.with_file_name(format!("{stem}_var{i}.png")))
        .collect()
}

/// Single-file mode: no output (--out, --strip, the variations) is the input sketch or
/// another output.
fn check_single_outputs(args: &GenerateArgs) -> anyhow::Result<()> {
    let input = resolved(&args.sketch);
    let mut outputs = vec![("--out", args.out.clone())];
    if let Some(strip) = &args.strip {
        outputs.push(("--strip", strip.clone()));
    }
    for p in variation_paths(&args.out, args.variations) {
        outputs.push(("--variations", p));
    }
    let resolved_outputs: Vec<PathBuf> = outputs.iter().map(|(_, p)| resolved(p)).collect();
    for (i, (option, path)) in outputs.iter().enumerate() {
        anyhow::ensure!(
            resolved_outputs[i] != input,
            "{option} {} is the input sketch {}: refusing to overwrite it",
            path.display(),
            args.sketch.display()
        );
        if let Some(j) = resolved_outputs[..i]
            .iter()
            .position(|q| *q == resolved_outputs[i])
        {
            anyhow::bail!(
                "{option} {} and {} {} are the same file: one would overwrite the other",
                path.display(),
                outputs[j].0,
                outputs[j].1.display()
            );
        }
    }
    Ok(())
}

/// Folder mode: the sketches of `--sketch` and the file each is written to, checked before
/// anything is written: `--out` is not the sketch folder (nor a file), no two sketches share an
/// output (stems compared ignoring case, as a case-insensitive file system would), and no
/// output exists unless `--force`.
fn plan_folder(args: &GenerateArgs) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    anyhow::ensure!(
        resolved(&args.out) != resolved(&args.sketch),
        "--out {} is the --sketch folder: the images would be written among the sketches; \
         choose another folder",
        args.out.display()
    );
    anyhow::ensure!(
        !args.out.exists() || args.out.is_dir(),
        "--out {} exists and is not a folder (--sketch is a folder)",
        args.out.display()
    );
    // The PNG/JPEG files of the folder, sorted; an error when there is none.
    let files = metrics::features::image_files(&args.sketch)?;
    let mut by_name: HashMap<String, &PathBuf> = HashMap::new();
    let mut plan = Vec::with_capacity(files.len());
    for f in &files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{stem}.png");
        if let Some(first) = by_name.insert(name.to_lowercase(), f) {
            anyhow::bail!(
                "{} and {} would both be written to {}: rename one of them (nothing was written)",
                first.display(),
                f.display(),
                args.out.join(&name).display()
            );
        }
        plan.push((f.clone(), args.out.join(name)));
    }
    if !args.force {
        let existing: Vec<String> = plan
            .iter()
            .filter(|(_, out)| out.exists())
            .map(|(_, out)| out.display().to_string())
            .collect();
        if !existing.is_empty() {
            let shown = existing.iter().take(5).cloned().collect::<Vec<_>>();
            anyhow::bail!(
                "{} output file(s) already exist ({}{}): pass --force to replace them \
                 (nothing was written)",
                existing.len(),
                shown.join(", "),
                if existing.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
    }
    Ok(plan)
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    check_options(&args)?;
    let plan = if args.sketch.is_dir() {
        Some(plan_folder(&args)?)
    } else {
        check_single_outputs(&args)?;
        None
    };
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
    if let Some(plan) = plan {
        return generate_folder(&model, &args, &plan);
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
        let prov = model.provenance(&generation, Some(args.seed));
        let images = model.variations_of(&generation, args.variations, args.seed)?;
        for (img, p) in images
            .iter()
            .zip(variation_paths(&args.out, args.variations))
        {
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

/// Folder mode: every sketch of the plan ([`plan_folder`]: `--sketch/<name>` ->
/// `--out/<stem>.png`), in batches, with a progress bar; unreadable files and sketches over the limits (`load_sketch`: decode limits, aspect
/// ratio) are reported and skipped (the count is printed).
fn generate_folder(
    model: &Sketch2MedI,
    args: &GenerateArgs,
    plan: &[(PathBuf, PathBuf)],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let bar = crate::cli::progress::bar(plan.len() as u64, crate::cli::progress::PLAIN);
    let t = Instant::now();
    let (mut skipped, mut warned) = (0usize, 0usize);
    for chunk in plan.chunks(args.batch) {
        let mut sketches = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        for (f, out) in chunk {
            match load_sketch(f) {
                Ok(s) => {
                    sketches.push(s);
                    names.push((f, out));
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
        for (g, (f, out)) in model.generate_batch(&sketches)?.iter().zip(names) {
            for w in &g.warnings {
                bar.suspend(|| eprintln!("warning: {}: {w}", f.display()));
                warned += 1;
            }
            model.save_png(g, out)?;
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    println!(
        "wrote {} images to {} in {:.1} s (T = {} refinement step(s){}; {skipped} files skipped (unreadable or over the limits), {warned} warnings)",
        plan.len() - skipped,
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
