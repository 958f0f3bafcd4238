//! Robustness report: DICE through the segmenter S of E, E+H (t = 1..3) and E+H with the
//! per-sketch step selection (`E+H select t<=T`, the rule of `sketch2medi::pipeline::select_step`
//! with the pipeline's margin; `--select-margins` adds other margins)
//! on the free-hand references of a phantom build, per sketch source (the build's simulated
//! free-hand sketches, the references drawn again by their drawers on other canvases and pens,
//! by the part-wise drawer styles, a blank page), per drawer style (the simulator's twelve and
//! the five part-wise ones), and per sketch input (`--inputs`: plain resize, normalisation);
//! plus the ceiling (the reference images through S). Every mean has a 95% bootstrap CI; every
//! gain a paired CI over the same images.
//!
//! ```text
//! cargo run --release -- phantom build --out data/val7 --size 64 --scale 0.2 --seed 7
//! cargo run --release --example robustness -- --data data/val7 --out report/robustness-val7
//! ```
//! Writes `robustness.md`, `robustness.json` and the figures `robustness.png` (per source) and
//! `robustness_styles.png` (per drawer style) to `--out`. Use a build whose seed no training
//! used: a validation seed to choose settings, a fresh test seed once for the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use clap::Parser;
use image::{DynamicImage, GrayImage, Luma, RgbImage};
use metrics::dice::{dice_per_class, image_dice, load_label_map};
use rand::Rng as _;
use s2m_core::rng::{derive_seed, rng_from_seed};
use serde::{Deserialize, Serialize};
use sketch2medi::pharynx_phantom::layout::reference_id;
use sketch2medi::pharynx_phantom::sample::{Sample, Stream, draw_freehand, generate, sample_seed};
use sketch2medi::pipeline::{select_step, sketch_distance};
use sketch2medi::segmenter::SoloV2Segmenter;
use sketch2medi::sketch_synth::normalise::NormaliseConfig;
use sketch2medi::sketch_synth::{
    SketchConfig, drawer_styles, partwise_styles, simulate_freehand_label_map,
};
use sketch2medi::{Sketch2MedI, load_sketch};

#[derive(Parser)]
struct Args {
    /// A phantom build (`phantom build`): its free-hand references are scored.
    #[arg(long)]
    data: PathBuf,
    /// Where robustness.md and robustness.json go.
    #[arg(long)]
    out: PathBuf,
    /// The pipeline's weights folder.
    #[arg(long, default_value = "weights/sketch2medi_phantom64")]
    weights: PathBuf,
    /// The segmenter S behind DICE.
    #[arg(long, default_value = "weights/solov2_phantom")]
    segmenter: PathBuf,
    /// Redrawn sketch sources as CANVAS:PEN_PX, comma separated: each reference drawn again by
    /// its drawer (same style and seed) on a CANVAS px page with a PEN_PX pen.
    #[arg(long, default_value = "512:2,1024:2,256:8", value_delimiter = ',')]
    redraw: Vec<String>,
    /// Add the references drawn by the part-wise drawer styles as one more sketch source
    /// (`--partwise false` to leave it out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    partwise: bool,
    /// Use only the first N references (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Sketch inputs to compare: resize, normalise (comma separated).
    #[arg(long, default_value = "resize,normalise", value_delimiter = ',')]
    inputs: Vec<String>,
    /// The bars of the figures, as INPUT:SYSTEM (comma separated; systems: E, E+H t=N,
    /// E+H select t<=N).
    #[arg(
        long,
        default_value = "resize:E+H t=3,normalise:E,normalise:E+H t=1",
        value_delimiter = ','
    )]
    figure: Vec<String>,
    /// Extra step-selection margins (px, comma separated) to score beside the pipeline's own:
    /// rows `E+H select t<=T m=MARGIN`.
    #[arg(long, value_delimiter = ',')]
    select_margins: Vec<f32>,
    /// Only redraw the figures from an earlier run's robustness.json (into --out).
    #[arg(long)]
    replot: Option<PathBuf>,
}

const RESAMPLES: usize = 10_000;
/// Names of the sources whose rows are also split per drawer style.
const SIMULATOR: &str = "simulator";
const PARTWISE: &str = "part-wise drawer";
const MAX_T: usize = 3;

/// Mean and 95% percentile-bootstrap interval (seeded).
fn bootstrap(values: &[f64], seed: u64) -> [f64; 3] {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = rng_from_seed(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    [
        mean,
        means[RESAMPLES * 25 / 1000],
        means[RESAMPLES * 975 / 1000],
    ]
}

#[derive(Serialize, Deserialize)]
struct Row {
    source: String,
    input: String,
    system: String,
    style: String,
    n: usize,
    dice: [f64; 3],
    /// Paired gain over E with the same input, in DICE points (mean, CI low, CI high).
    gain_over_e: Option<[f64; 3]>,
}

impl Row {
    /// `input | system | DICE [CI] | gain [CI]` of a markdown table row.
    fn cells(&self) -> String {
        let gain = self
            .gain_over_e
            .map(|g| format!("{:+.2} [{:+.2}, {:+.2}]", g[0], g[1], g[2]))
            .unwrap_or_default();
        format!(
            "{} | {} | {:.4} [{:.4}, {:.4}] | {}",
            self.input, self.system, self.dice[0], self.dice[1], self.dice[2], gain
        )
    }
}

struct Reference {
    id: String,
    style: String,
    labels: sketch2medi::s2m_core::LabelMap,
}

fn read_references(data: &Path, limit: usize) -> anyhow::Result<(u64, u32, Vec<Reference>)> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("manifest.json")).context("reading manifest.json")?,
    )?;
    let seed = manifest["seed"]
        .as_u64()
        .context("manifest.json: no seed")?;
    let size = manifest["size"]
        .as_u64()
        .context("manifest.json: no size")? as u32;
    let index = std::fs::read_to_string(data.join("freehand.jsonl"))?;
    let mut refs = Vec::new();
    for line in index.lines().filter(|l| !l.trim().is_empty()) {
        let rec: serde_json::Value = serde_json::from_str(line)?;
        let id = rec["id"]
            .as_str()
            .context("freehand.jsonl: no id")?
            .to_string();
        let style = rec["style"].as_str().unwrap_or("?").to_string();
        let labels = load_label_map(&data.join("masks").join(format!("{id}.png")))?;
        refs.push(Reference { id, style, labels });
        if limit > 0 && refs.len() == limit {
            break;
        }
    }
    anyhow::ensure!(
        !refs.is_empty(),
        "{}: no free-hand references",
        data.display()
    );
    Ok((seed, size, refs))
}

/// Every reference rendered again on a `canvas` px page and drawn by `draw(index, reference,
/// sample)`, where `index` is the reference's index in the build's reference stream.
/// The index `i` of reference `ref{i:06}`.
fn reference_index(r: &Reference) -> anyhow::Result<usize> {
    let i: usize = r.id.trim_start_matches("ref").parse()?;
    anyhow::ensure!(reference_id(i) == r.id, "unexpected reference id {}", r.id);
    Ok(i)
}

fn draw_references(
    seed: u64,
    refs: &[Reference],
    canvas: u32,
    draw: impl Fn(usize, &Reference, &Sample) -> anyhow::Result<GrayImage>,
) -> anyhow::Result<Vec<GrayImage>> {
    refs.iter()
        .map(|r| {
            let i = reference_index(r)?;
            let sample = generate(seed, Stream::Reference, i, canvas, &SketchConfig::default())?;
            draw(i, r, &sample)
        })
        .collect()
}

/// The build's drawings redrawn on a `canvas` px page with a `pen` px pen.
fn redraw(seed: u64, refs: &[Reference], canvas: u32, pen: f32) -> anyhow::Result<Vec<GrayImage>> {
    let styles = drawer_styles();
    draw_references(seed, refs, canvas, |i, r, sample| {
        let mut style = styles
            .iter()
            .find(|s| s.name == r.style)
            .with_context(|| format!("{}: unknown style {}", r.id, r.style))?
            .clone();
        // Style widths are given at 256 px and scaled by canvas / 256 when drawn.
        style.stroke_width_px = pen * 256.0 / canvas as f32;
        Ok(draw_freehand(sample, &style, seed, i)?.0)
    })
}

/// The references drawn at the build's `size` by the part-wise drawer styles: reference `i`
/// by style `i % n`, from a sub-stream of the build's free-hand seed of that reference (so the
/// drawings are reproducible and independent of the build's own free-hand sketches).
fn draw_partwise(seed: u64, refs: &[Reference]) -> anyhow::Result<Vec<GrayImage>> {
    let styles = partwise_styles();
    refs.iter()
        .map(|r| {
            let i = reference_index(r)?;
            let style = &styles[i % styles.len()];
            let stream = derive_seed(sample_seed(seed, Stream::Freehand, i), PARTWISE_STREAM, 0);
            // The build's own label map of the reference (the phantom at the build's size).
            let drawn = simulate_freehand_label_map(&r.labels, style, &mut rng_from_seed(stream))?;
            Ok(drawn.image)
        })
        .collect()
}

/// Sub-stream of a reference's free-hand seed for the part-wise drawings.
const PARTWISE_STREAM: u64 = 1;

/// One value per step (t = 0..T) and image: `v[t][i]`.
type PerStep<T> = Vec<Vec<T>>;

/// Per-image DICE of every step image (E, t = 1..T) of one pipeline on `sketches`, and the
/// per-image distance of each step image to the sketch (`sketch2medi::pipeline::sketch_distance`).
fn score(
    model: &Sketch2MedI,
    s: &SoloV2Segmenter,
    sketches: &[GrayImage],
    refs: &[Reference],
) -> anyhow::Result<(PerStep<f64>, PerStep<Option<f32>>)> {
    let mut per_step = vec![Vec::new(); MAX_T + 1];
    let mut agree = vec![Vec::new(); MAX_T + 1];
    for (chunk, rchunk) in sketches.chunks(8).zip(refs.chunks(8)) {
        let inputs: Vec<DynamicImage> = chunk
            .iter()
            .cloned()
            .map(DynamicImage::ImageLuma8)
            .collect();
        let gens = model.generate_batch(&inputs)?;
        for (t, scores) in per_step.iter_mut().enumerate() {
            let images: Vec<RgbImage> = gens.iter().map(|g| g.steps[t].clone()).collect();
            let preds = s.segment_images(&images)?;
            for ((pred, r), g) in preds.iter().zip(rchunk).zip(&gens) {
                scores.push(image_dice(&dice_per_class(&r.labels, pred)?).unwrap_or(0.0));
                agree[t].push(sketch_distance(pred, &g.sketch)?);
            }
        }
    }
    Ok((per_step, agree))
}

/// Per image, the scores of the step in `0..=t_max` that the pipeline's step selection
/// (`sketch2medi::pipeline::select_step`) chooses.
fn select_by_agreement(
    per_step: &[Vec<f64>],
    agree: &[Vec<Option<f32>>],
    t_max: usize,
    margin: f32,
) -> Vec<f64> {
    (0..per_step[0].len())
        .map(|i| {
            let d: Vec<Option<f32>> = (0..=t_max).map(|t| agree[t][i]).collect();
            per_step[select_step(&d, margin)][i]
        })
        .collect()
}

/// `robustness.png` (one group per sketch source) and `robustness_styles.png` (one group per
/// drawer style of the simulator's and the part-wise drawer's sketches): DICE with 95% CI
/// whiskers, one bar per `input:system` of `series`.
fn write_figures(out: &Path, rows: &[Row], series: &[String]) -> anyhow::Result<()> {
    use s2m_train::plot::{IntervalBar, plot_interval_bars};
    let wanted = |r: &Row| {
        series
            .iter()
            .any(|s| *s == format!("{}:{}", r.input, r.system))
    };
    let groups = |keep: &dyn Fn(&Row) -> Option<String>| {
        let mut groups: Vec<(String, Vec<IntervalBar>)> = Vec::new();
        for r in rows {
            let Some(group) = keep(r) else { continue };
            if !wanted(r) {
                continue;
            }
            let bar = IntervalBar {
                series: format!("{}, {}", r.input, r.system),
                mean: r.dice[0],
                lo: r.dice[1],
                hi: r.dice[2],
            };
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, bars)) => bars.push(bar),
                None => groups.push((group, vec![bar])),
            }
        }
        groups
    };
    let by_source = groups(&|r: &Row| (r.style == "all").then(|| r.source.clone()));
    plot_interval_bars(
        out.join("robustness.png"),
        "DICE through S per sketch source (95% CI)",
        "DICE",
        &by_source,
        1100,
        450,
    )?;
    let by_style = groups(&|r: &Row| {
        (r.style != "all" && (r.source.starts_with(SIMULATOR) || r.source.starts_with(PARTWISE)))
            .then(|| r.style.clone())
    });
    plot_interval_bars(
        out.join("robustness_styles.png"),
        "DICE through S per drawer style: the simulator's 12 and the 5 part-wise (95% CI)",
        "DICE",
        &by_style,
        1400,
        450,
    )?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(json) = &args.replot {
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json)?)?;
        let rows: Vec<Row> = serde_json::from_value(report["rows"].clone())?;
        std::fs::create_dir_all(&args.out)?;
        return write_figures(&args.out, &rows, &args.figure);
    }
    let dev = Device::Cpu;
    let (seed, size, refs) = read_references(&args.data, args.limit)?;
    let s = SoloV2Segmenter::load(&args.segmenter, SoloV2Segmenter::default_threshold(), &dev)?;
    let mut model = Sketch2MedI::load(&args.weights)?.with_steps(MAX_T)?;
    let margin = model.manifest().select.as_ref().map_or(0.0, |s| s.margin);
    for m in &args.select_margins {
        anyhow::ensure!(
            m.is_finite() && *m >= 0.0,
            "--select-margins: {m} is not a finite number >= 0"
        );
    }
    // The report scores every step and applies the step selection itself (for each T).
    model.set_step_selection(false)?;
    anyhow::ensure!(
        model.has_refiner(),
        "{}: the report compares E with E+H and needs a pipeline with a refiner",
        args.weights.display()
    );
    anyhow::ensure!(
        model.size() == size,
        "the build is {size} px, the pipeline {} px",
        model.size()
    );

    let mut sources: Vec<(String, Vec<GrayImage>)> = Vec::new();
    let mut simulated = Vec::with_capacity(refs.len());
    for r in &refs {
        let path = args.data.join("freehand").join(format!("{}.png", r.id));
        simulated.push(load_sketch(&path)?.to_luma8());
    }
    sources.push((format!("{SIMULATOR} ({size} px)"), simulated));
    for spec in &args.redraw {
        let (canvas, pen) = spec
            .split_once(':')
            .context("--redraw wants CANVAS:PEN_PX")?;
        let (canvas, pen): (u32, f32) = (canvas.parse()?, pen.parse()?);
        let drawn = redraw(seed, &refs, canvas, pen)?;
        sources.push((format!("canvas {canvas} px, pen {pen} px"), drawn));
    }
    if args.partwise {
        let drawn = draw_partwise(seed, &refs)?;
        let n = partwise_styles().len();
        sources.push((format!("{PARTWISE} ({n} styles)"), drawn));
    }
    let blank = vec![GrayImage::from_pixel(size, size, Luma([255])); refs.len()];
    sources.push(("blank page (floor)".into(), blank));

    let inputs: Vec<(&str, Option<NormaliseConfig>)> = [
        ("resize", None),
        ("normalise", Some(NormaliseConfig::for_size(size))),
    ]
    .into_iter()
    .filter(|(name, _)| args.inputs.iter().any(|i| i == name))
    .collect();
    anyhow::ensure!(!inputs.is_empty(), "--inputs: use resize and/or normalise");
    let mut rows = Vec::new();
    let partwise_names: Vec<String> = partwise_styles().into_iter().map(|s| s.name).collect();
    for (source, sketches) in &sources {
        // The drawer style of each sketch of this source.
        let styles: Vec<String> = refs
            .iter()
            .map(|r| {
                if source.starts_with(PARTWISE) {
                    Ok(partwise_names[reference_index(r)? % partwise_names.len()].clone())
                } else {
                    Ok(r.style.clone())
                }
            })
            .collect::<anyhow::Result<_>>()?;
        for (input, cfg) in &inputs {
            model.set_normalisation(cfg.clone());
            let (per_step, agree) = score(&model, &s, sketches, &refs)?;
            eprintln!("{source}, {input}: done");
            let mut systems: Vec<(String, Vec<f64>)> = per_step
                .iter()
                .enumerate()
                .map(|(t, v)| {
                    let name = if t == 0 {
                        "E".to_string()
                    } else {
                        format!("E+H t={t}")
                    };
                    (name, v.clone())
                })
                .collect();
            for t in 1..=MAX_T {
                systems.push((
                    format!("E+H select t<={t}"),
                    select_by_agreement(&per_step, &agree, t, margin),
                ));
                for &m in &args.select_margins {
                    systems.push((
                        format!("E+H select t<={t} m={m}"),
                        select_by_agreement(&per_step, &agree, t, m),
                    ));
                }
            }
            for (k, (system, scores)) in systems.iter().enumerate() {
                let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                groups.insert("all".into(), (0..refs.len()).collect());
                for (i, style) in styles.iter().enumerate() {
                    groups.entry(style.clone()).or_default().push(i);
                }
                for (style, idx) in groups {
                    let v: Vec<f64> = idx.iter().map(|&i| scores[i]).collect();
                    let gain = (k > 0).then(|| {
                        let d: Vec<f64> = idx
                            .iter()
                            .map(|&i| 100.0 * (scores[i] - per_step[0][i]))
                            .collect();
                        bootstrap(&d, 2)
                    });
                    rows.push(Row {
                        source: source.clone(),
                        input: input.to_string(),
                        system: system.to_string(),
                        style,
                        n: v.len(),
                        dice: bootstrap(&v, 1),
                        gain_over_e: gain,
                    });
                }
            }
        }
    }
    // Ceiling: the reference images themselves through S.
    let mut ceiling = Vec::new();
    for chunk in refs.chunks(16) {
        let images = chunk
            .iter()
            .map(|r| {
                s2m_core::imageio::load_rgb(args.data.join("images").join(format!("{}.png", r.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (pred, r) in s.segment_images(&images)?.iter().zip(chunk) {
            ceiling.push(image_dice(&dice_per_class(&r.labels, pred)?).unwrap_or(0.0));
        }
    }
    let ceiling = bootstrap(&ceiling, 1);

    std::fs::create_dir_all(&args.out)?;
    let mut md = format!(
        "# Robustness: DICE through S on {} free-hand references ({}, seed {seed})\n\n\
         Ceiling (reference images through S): {:.4} [{:.4}, {:.4}]. Gains are paired over the \
         same images, in DICE points, against E with the same sketch input. 95% bootstrap CIs.\n\n\
         | sketches | input | system | DICE [95% CI] | gain over E [95% CI] |\n|---|---|---|---|---|\n",
        refs.len(),
        args.data.display(),
        ceiling[0],
        ceiling[1],
        ceiling[2]
    );
    for r in rows.iter().filter(|r| r.style == "all") {
        md += &format!("| {} | {} |\n", r.source, r.cells());
    }
    for (source, _) in sources
        .iter()
        .filter(|(s, _)| s.starts_with(SIMULATOR) || s.starts_with(PARTWISE))
    {
        md += &format!(
            "\n## Per drawer style: {source}\n\n| style | n | input | system | DICE [95% CI] | gain over E [95% CI] |\n|---|---|---|---|---|---|\n"
        );
        for r in rows
            .iter()
            .filter(|r| r.style != "all" && r.source == *source)
        {
            md += &format!("| {} | {} | {} |\n", r.style, r.n, r.cells());
        }
    }
    std::fs::write(args.out.join("robustness.md"), &md)?;
    write_figures(&args.out, &rows, &args.figure)?;
    let json =
        serde_json::json!({ "data": args.data, "seed": seed, "ceiling": ceiling, "rows": rows });
    std::fs::write(
        args.out.join("robustness.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    print!("{md}");
    Ok(())
}
