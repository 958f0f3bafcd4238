//! `sketch2medi evaluate`: the paper's Table I metrics over folders of generated images.

use crate::cli::progress::StageBars;
use anyhow::Context;
use clap::Args;
use metrics::evaluate::{EvaluateConfig, MethodInput, evaluate};
use metrics::report::Metric;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Reference images (PNG/JPEG), paired with the generated ones by sorted file name.
    #[arg(long)]
    reference: PathBuf,
    /// Label-map masks of the reference images (for DICE), same file stems.
    #[arg(long)]
    reference_masks: Option<PathBuf>,
    /// A generated folder as NAME=DIR (repeat for several methods), or just DIR.
    #[arg(long = "generated", required = true)]
    generated: Vec<String>,
    /// Label-map masks of a generated folder as NAME=DIR (for DICE without a segmenter).
    #[arg(long = "generated-masks")]
    generated_masks: Vec<String>,
    /// Metrics to compute (comma separated): fd, kid, tres, clip-iqa, dice, lpips, dists,
    /// st-lpips. Default: all.
    #[arg(long, value_delimiter = ',')]
    metrics: Vec<String>,
    /// Folder with the metric weights.
    #[arg(long, default_value = "weights")]
    weights: PathBuf,
    /// Cache file for the reference feature statistics.
    #[arg(long)]
    reference_stats: Option<PathBuf>,
    /// Where report.json and report.md go.
    #[arg(long, default_value = "report")]
    out: PathBuf,
    /// Stop at the first unreadable image instead of skipping it (it is always reported).
    #[arg(long)]
    strict: bool,
    /// A trained SOLOv2 export folder (`sketch2medi solov2 train`): segments the images for
    /// DICE where no masks are given (instances with score >= 0.35).
    #[arg(long)]
    segmenter: Option<PathBuf>,
}

fn split_named(spec: &str, index: usize) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((name, dir)) if !name.is_empty() => (name.to_string(), PathBuf::from(dir)),
        _ => {
            let path = PathBuf::from(spec);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("method{index}"));
            (name, path)
        }
    }
}

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let masks: Vec<(String, PathBuf)> = args
        .generated_masks
        .iter()
        .enumerate()
        .map(|(i, s)| split_named(s, i))
        .collect();
    let methods: Vec<MethodInput> = args
        .generated
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (name, images) = split_named(s, i);
            let masks = masks
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| p.clone());
            MethodInput {
                name,
                images,
                masks,
            }
        })
        .collect();
    for (name, _) in &masks {
        anyhow::ensure!(
            methods.iter().any(|m| &m.name == name),
            "--generated-masks {name}=...: no --generated folder is named {name}"
        );
    }
    let mut cfg = EvaluateConfig::new(&args.reference, methods);
    cfg.reference_masks = args.reference_masks;
    cfg.weights_dir = args.weights;
    cfg.reference_stats = args.reference_stats;
    cfg.strict = args.strict;
    if !args.metrics.is_empty() {
        cfg.metrics = args
            .metrics
            .iter()
            .map(|m| Metric::parse(m))
            .collect::<Result<_, _>>()?;
    }
    let device = crate::cli::device()?;
    let segmenter = match &args.segmenter {
        Some(dir) => Some(
            sketch2medi::segmenter::SoloV2Segmenter::load(
                dir,
                sketch2medi::segmenter::SoloV2Segmenter::default_threshold(),
                &device,
            )
            .with_context(|| format!("loading the segmenter {}", dir.display()))?,
        ),
        None => None,
    };
    let bars = StageBars::new("{msg:>28} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})");
    let report = match &segmenter {
        Some(seg) => {
            let models = metrics::evaluate::Models {
                segmenter: Some(seg),
                ..Default::default()
            };
            metrics::evaluate::evaluate_with(&cfg, models, &device, &bars)
        }
        None => evaluate(&cfg, &device, &bars),
    }
    .context("evaluating")?;
    let (json, md) = report.write(&args.out)?;
    println!("{}", report.to_markdown());
    println!("wrote {} and {}", json.display(), md.display());
    Ok(())
}
