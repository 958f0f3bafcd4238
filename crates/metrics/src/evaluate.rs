//! The `evaluate` library API: one call computes the requested Table I metrics for one or
//! several folders of generated images against a reference folder and returns a [`Report`]
//! (`report.json` + a Markdown table, see [`crate::report`]). The CLI is a thin layer over
//! [`EvaluateConfig`] and [`evaluate`].
//!
//! Inputs and pairing:
//! * every folder is read non-recursively (PNG/JPEG, sorted by name); images go to the models
//!   in [0, 1] (DICE's segmentation model gets [-1, 1]);
//! * paired metrics (DICE, LPIPS, DISTS, ST-LPIPS) pair `<generated>/<id>.*` with
//!   `<reference>/<id>.*` by file stem; when a paired metric is requested and the folders cannot
//!   be paired (unequal lengths, different names) `evaluate` fails **before** any model runs,
//!   naming the method and the unmatched files;
//! * FD/KID and the no-reference metrics (TReS, CLIP-IQA) need no pairing.
//!
//! Bad input: an unreadable image is skipped (listed in the method's `skipped` and in the
//! warnings, never silently) unless `strict`, where it fails naming the file. A NaN/inf feature
//! or score fails naming the image. A metric whose weights are missing shows
//! `n/a [not available: <file> missing]` and the other metrics still run.
//!
//! Models: [`Models`] lets the caller inject loaded models (tests use synthetic weights, the
//! future SOLOv2 synthesizer plugs in as the [`SegmentationModel`]); what is not injected is
//! loaded from `weights_dir` by file name ([`WeightFiles`]).
//!
//! LPIPS, DISTS and ST-LPIPS come through the [`PairedMetric`] trait, implemented by
//! [`crate::perceptual::PerceptualMetric`] (alex trunks for LPIPS / ST-LPIPS, loaded from
//! `weights_dir` when not injected; a missing trunk file reports `n/a` with its name).
//!
//! Determinism: fixed file order, fixed batches, seeded KID subsets; the same inputs give the
//! same report byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use s2m_core::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::clip_iqa::ClipIqa;
use crate::dice::{ClassDice, SegmentationModel, dice_per_class, load_label_map, pair_by_stem};
use crate::features::error::{MetricsError, Result};
use crate::features::{
    FeatureExtractor, FeatureSet, InceptionFeatures, StLpipsAlexFeatures, extract_features,
    image_files, load_image_unit,
};
use crate::fid::{fd_from_stats, reference_stats};
use crate::frechet::GaussianStats;
use crate::kid::{KidConfig, kid};
use crate::report::{MethodReport, Metric, MetricValue, Report};

/// A no-reference IQA model (TReS, CLIP-IQA): one score per image in [0, 1] input.
pub trait NoReferenceMetric: Send + Sync {
    /// Scores `[B]` of images `[B, 3, H, W]` in [0, 1].
    fn score(&self, images: &Tensor) -> Result<Vec<f32>>;
}

impl NoReferenceMetric for ClipIqa {
    fn score(&self, images: &Tensor) -> Result<Vec<f32>> {
        ClipIqa::score(self, images)
    }
}

/// A full-reference metric (LPIPS, DISTS, ST-LPIPS): one distance per pair.
pub trait PairedMetric: Send + Sync {
    /// Distances `[B]` between `generated` and `reference` (`[B, 3, H, W]` in [0, 1], equal
    /// sizes).
    fn distance(&self, generated: &Tensor, reference: &Tensor) -> Result<Vec<f32>>;
}

impl PairedMetric for crate::perceptual::PerceptualMetric {
    fn distance(&self, generated: &Tensor, reference: &Tensor) -> Result<Vec<f32>> {
        // The perceptual module takes [-1, 1].
        let v = self
            .pairs(&generated.affine(2.0, -1.0)?, &reference.affine(2.0, -1.0)?)
            .map_err(|e| MetricsError::Invalid(e.to_string()))?;
        Ok(v.into_iter().map(|x| x as f32).collect())
    }
}

/// The perceptual network behind a paired metric when none is injected (alex trunks, as
/// pyiqa's defaults `lpips` and `stlpips`), loaded from `weights_dir`.
fn load_paired(metric: Metric, dir: &Path, device: &Device) -> Result<Box<dyn PairedMetric>> {
    use crate::perceptual::{PerceptualKind, PerceptualMetric};
    let kind = match metric {
        Metric::Lpips => PerceptualKind::Lpips(losses::LpipsNet::Alex),
        Metric::StLpips => PerceptualKind::StLpips(losses::LpipsNet::Alex),
        Metric::Dists => PerceptualKind::Dists,
        _ => {
            return Err(MetricsError::Invalid(format!(
                "{} is not a paired metric",
                metric.id()
            )));
        }
    };
    let m = PerceptualMetric::from_dir(kind, dir, candle_core::DType::F32, device)
        .map_err(|e| MetricsError::NotAvailable(e.to_string()))?;
    Ok(Box::new(m))
}

/// Which extractor backs FD/KID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FdExtractor {
    /// The FID Inception if its weight file exists, else the ST-LPIPS AlexNet trunk.
    Auto,
    Inception,
    StLpipsAlex,
    /// torchvision AlexNet from a user file.
    AlexNet(PathBuf),
}

/// File names looked up in `weights_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightFiles {
    /// pytorch-fid Inception converted by `tools/backbones_convert.py`.
    pub inception: String,
    pub stlpips_alex: String,
    /// `tools/metrics_convert_clip.py` output.
    pub clip_iqa: String,
    /// `tools/metrics_convert_tres.py` output.
    pub tres: String,
}

impl Default for WeightFiles {
    fn default() -> Self {
        Self {
            inception: "pt_inception-2015-12-05.safetensors".into(),
            stlpips_alex: StLpipsAlexFeatures::FILE.into(),
            clip_iqa: "clip_rn50_iqa.safetensors".into(),
            tres: "tres_koniq.safetensors".into(),
        }
    }
}

/// One method's generated images (and optionally its own masks for DICE).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInput {
    pub name: String,
    pub images: PathBuf,
    /// Label-map PNGs of the generated images (else the segmentation model is used).
    pub masks: Option<PathBuf>,
}

/// Everything `evaluate` needs besides the models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluateConfig {
    pub methods: Vec<MethodInput>,
    pub reference_images: PathBuf,
    /// Label-map PNGs of the reference images (else the segmentation model is used).
    pub reference_masks: Option<PathBuf>,
    pub metrics: Vec<Metric>,
    pub weights_dir: PathBuf,
    pub weight_files: WeightFiles,
    pub fd_extractor: FdExtractor,
    /// Cache file for the reference FD statistics (read if present and from the same
    /// extractor, else written).
    pub reference_stats: Option<PathBuf>,
    pub kid: KidConfig,
    pub batch_size: usize,
    /// Fail on the first unreadable image instead of skipping it.
    pub strict: bool,
}

impl EvaluateConfig {
    /// Defaults: all metrics, `weights/`, automatic FD extractor, KID 100 subsets of <= 1000,
    /// batch 16.
    pub fn new(reference_images: impl Into<PathBuf>, methods: Vec<MethodInput>) -> Self {
        Self {
            methods,
            reference_images: reference_images.into(),
            reference_masks: None,
            metrics: Metric::ALL.to_vec(),
            weights_dir: PathBuf::from("weights"),
            weight_files: WeightFiles::default(),
            fd_extractor: FdExtractor::Auto,
            reference_stats: None,
            kid: KidConfig::default(),
            batch_size: 16,
            strict: false,
        }
    }
}

/// Models injected by the caller; anything `None` is loaded from `weights_dir`.
#[derive(Default)]
pub struct Models<'a> {
    pub extractor: Option<Box<dyn FeatureExtractor + 'a>>,
    pub clip_iqa: Option<Box<dyn NoReferenceMetric + 'a>>,
    pub tres: Option<Box<dyn NoReferenceMetric + 'a>>,
    pub segmenter: Option<&'a dyn SegmentationModel>,
    /// LPIPS, DISTS, ST-LPIPS implementations (keyed by [`Metric::Lpips`] etc.).
    pub paired: BTreeMap<Metric, Box<dyn PairedMetric + 'a>>,
}

fn load_extractor(cfg: &EvaluateConfig, device: &Device) -> Result<Box<dyn FeatureExtractor>> {
    let w = |f: &str| cfg.weights_dir.join(f);
    Ok(match &cfg.fd_extractor {
        FdExtractor::Inception => Box::new(InceptionFeatures::load(
            &w(&cfg.weight_files.inception),
            device,
        )?),
        FdExtractor::StLpipsAlex => Box::new(StLpipsAlexFeatures::load(
            &w(&cfg.weight_files.stlpips_alex),
            device,
        )?),
        FdExtractor::AlexNet(p) => Box::new(crate::features::AlexNetFeatures::load(p, device)?),
        FdExtractor::Auto => {
            let inc = w(&cfg.weight_files.inception);
            if inc.exists() {
                Box::new(InceptionFeatures::load(&inc, device)?)
            } else {
                Box::new(StLpipsAlexFeatures::load(
                    &w(&cfg.weight_files.stlpips_alex),
                    device,
                )?)
            }
        }
    })
}

/// Unreadable files with the reason.
type Skipped = Vec<(PathBuf, String)>;

/// Scores every readable image of `files` (batches of equal-size consecutive images).
fn nr_scores(
    model: &dyn NoReferenceMetric,
    files: &[PathBuf],
    batch_size: usize,
    strict: bool,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(Vec<f64>, Skipped)> {
    let mut scores = Vec::new();
    let mut skipped = Vec::new();
    let mut pending: Vec<(PathBuf, Tensor)> = Vec::new();
    let flush = |pending: &mut Vec<(PathBuf, Tensor)>, scores: &mut Vec<f64>| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let t: Vec<Tensor> = pending.iter().map(|p| p.1.clone()).collect();
        let s = model.score(&Tensor::stack(&t, 0)?)?;
        for ((p, _), v) in pending.iter().zip(&s) {
            if !v.is_finite() {
                return Err(MetricsError::NonFinite {
                    image: p.display().to_string(),
                    extractor: "no-reference metric".into(),
                    value: *v as f64,
                });
            }
            scores.push(*v as f64);
        }
        progress.inc(pending.len() as u64);
        pending.clear();
        Ok(())
    };
    for f in files {
        match load_image_unit(f, device) {
            Ok(t) => {
                let same = pending.first().is_none_or(|(_, p)| p.dims() == t.dims());
                if !same || pending.len() >= batch_size.max(1) {
                    flush(&mut pending, &mut scores)?;
                }
                pending.push((f.clone(), t));
            }
            Err(e) if !strict => {
                skipped.push((f.clone(), e.to_string()));
                progress.inc(1);
            }
            Err(e) => return Err(e),
        }
    }
    flush(&mut pending, &mut scores)?;
    Ok((scores, skipped))
}

fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    Some((m, var.sqrt()))
}

/// Label maps of image files through the segmentation model (one image at a time).
fn segment_files(
    model: &dyn SegmentationModel,
    files: &[PathBuf],
    device: &Device,
) -> Result<Vec<s2m_core::LabelMap>> {
    files
        .iter()
        .map(|f| {
            let x = load_image_unit(f, device)?
                .affine(2.0, -1.0)?
                .unsqueeze(0)?;
            let mut v = model.segment(&x)?;
            if v.len() != 1 {
                return Err(MetricsError::Mismatch(format!(
                    "segmentation model {} returned {} label maps for 1 image ({})",
                    model.name(),
                    v.len(),
                    f.display()
                )));
            }
            Ok(v.remove(0))
        })
        .collect()
}

/// Runs the evaluation with models loaded from `cfg.weights_dir`, reporting each pass over a
/// folder as a stage on `progress` (use [`s2m_core::progress::NoProgress`] to report nothing).
pub fn evaluate(cfg: &EvaluateConfig, device: &Device, progress: &dyn Progress) -> Result<Report> {
    evaluate_with(cfg, Models::default(), device, progress)
}

/// Runs the evaluation with injected models (see [`Models`]); progress as in [`evaluate`].
pub fn evaluate_with(
    cfg: &EvaluateConfig,
    mut models: Models,
    device: &Device,
    progress: &dyn Progress,
) -> Result<Report> {
    let run = Run::new(cfg, device, progress)?;
    let mut reports = run.empty_reports();
    let mut warnings = Vec::new();
    let mut fd_extractor = None;
    if run.wants(Metric::Fd) || run.wants(Metric::Kid) {
        fd_extractor = run.fd_and_kid(models.extractor.take(), &mut reports, &mut warnings)?;
    }
    for metric in [Metric::Tres, Metric::ClipIqa] {
        if run.wants(metric) {
            let injected = match metric {
                Metric::Tres => models.tres.take(),
                _ => models.clip_iqa.take(),
            };
            run.no_reference(metric, injected, &mut reports)?;
        }
    }
    if run.wants(Metric::Dice) {
        run.dice(models.segmenter, &mut reports);
    }
    for metric in [Metric::Lpips, Metric::Dists, Metric::StLpips] {
        if run.wants(metric) {
            run.paired(metric, models.paired.remove(&metric), &mut reports)?;
        }
    }
    for r in &reports {
        for (p, why) in &r.skipped {
            warnings.push(format!("{}: image {} skipped: {why}", r.name, p.display()));
        }
    }
    Ok(Report {
        format: Report::FORMAT.into(),
        reference_images: cfg.reference_images.clone(),
        n_reference: run.ref_files.len(),
        reference_masks: cfg.reference_masks.clone(),
        settings: run.settings(),
        metrics: run.metrics,
        fd_extractor,
        methods: reports,
        warnings,
    })
}

/// One evaluation: the checked inputs every step reads.
struct Run<'a> {
    cfg: &'a EvaluateConfig,
    /// Requested metrics, sorted (column order) and without repeats.
    metrics: Vec<Metric>,
    ref_files: Vec<PathBuf>,
    /// The images of each method, in `cfg.methods` order.
    gen_files: Vec<Vec<PathBuf>>,
    /// (reference, generated) pairs of each method; empty when no paired metric is requested.
    pairs: Vec<Vec<(PathBuf, PathBuf)>>,
    device: &'a Device,
    progress: &'a dyn Progress,
}

impl<'a> Run<'a> {
    /// Checks the methods, lists every folder and pairs them (when a paired metric is
    /// requested) before any model runs.
    fn new(
        cfg: &'a EvaluateConfig,
        device: &'a Device,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        if cfg.methods.is_empty() {
            return Err(MetricsError::Invalid(
                "no generated folder (method) given".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for m in &cfg.methods {
            if !names.insert(m.name.clone()) {
                return Err(MetricsError::Invalid(format!(
                    "method name `{}` given twice",
                    m.name
                )));
            }
        }
        let mut metrics = cfg.metrics.clone();
        metrics.sort();
        metrics.dedup();
        let ref_files = image_files(&cfg.reference_images)?;
        let gen_files: Vec<Vec<PathBuf>> = cfg
            .methods
            .iter()
            .map(|m| image_files(&m.images))
            .collect::<Result<_>>()?;
        let mut run = Self {
            cfg,
            metrics,
            ref_files,
            gen_files,
            pairs: Vec::new(),
            device,
            progress,
        };
        run.pairs = run.pair_methods()?;
        Ok(run)
    }

    fn wants(&self, metric: Metric) -> bool {
        self.metrics.contains(&metric)
    }

    /// Pairs every method's images with the reference images by file stem.
    fn pair_methods(&self) -> Result<Vec<Vec<(PathBuf, PathBuf)>>> {
        if !self.metrics.iter().any(|m| m.paired()) {
            return Ok(Vec::new());
        }
        let paired_ids = self
            .metrics
            .iter()
            .filter(|x| x.paired())
            .map(|x| x.id())
            .collect::<Vec<_>>()
            .join("/");
        self.cfg
            .methods
            .iter()
            .zip(&self.gen_files)
            .map(|(m, g)| {
                pair_by_stem(
                    &self.ref_files,
                    g,
                    &format!(
                        "method `{}` ({}) vs reference ({}) for {paired_ids}",
                        m.name,
                        m.images.display(),
                        self.cfg.reference_images.display(),
                    ),
                )
            })
            .collect()
    }

    fn empty_reports(&self) -> Vec<MethodReport> {
        self.cfg
            .methods
            .iter()
            .zip(&self.gen_files)
            .map(|(m, g)| MethodReport {
                name: m.name.clone(),
                images: m.images.clone(),
                n_images: g.len(),
                values: BTreeMap::new(),
                dice_per_class: None,
                skipped: Vec::new(),
            })
            .collect()
    }

    /// The settings recorded in the report.
    fn settings(&self) -> BTreeMap<String, String> {
        let cfg = self.cfg;
        let mut settings = BTreeMap::new();
        settings.insert("batch_size".into(), cfg.batch_size.to_string());
        settings.insert(
            "kid".into(),
            format!(
                "{} subsets of min(n, {}), seed {} ({:?})",
                cfg.kid.subsets, cfg.kid.subset_size, cfg.kid.seed, cfg.kid.sampler
            ),
        );
        settings.insert("device".into(), format!("{:?}", self.device));
        settings
    }

    /// FD and KID of every method (the ones requested); returns the extractor's name, or `None`
    /// when it is not available (then both metrics are `n/a` with the reason).
    fn fd_and_kid(
        &self,
        injected: Option<Box<dyn FeatureExtractor + '_>>,
        reports: &mut [MethodReport],
        warnings: &mut Vec<String>,
    ) -> Result<Option<String>> {
        let ext = match injected {
            Some(e) => e,
            None => match load_extractor(self.cfg, self.device) {
                Ok(e) => e,
                Err(e) => {
                    for r in reports.iter_mut() {
                        for m in [Metric::Fd, Metric::Kid] {
                            if self.wants(m) {
                                r.values
                                    .insert(m, MetricValue::unavailable(m.label(), e.to_string()));
                            }
                        }
                    }
                    return Ok(None);
                }
            },
        };
        let (ref_stats, ref_set) = self.reference_features(ext.as_ref(), warnings)?;
        for (r, g) in reports.iter_mut().zip(&self.gen_files) {
            self.progress
                .start(&format!("{} {}", ext.name(), r.name), g.len() as u64);
            let set = extract_features(
                ext.as_ref(),
                g,
                self.cfg.batch_size,
                self.cfg.strict,
                self.device,
                self.progress,
            )?;
            self.progress.finish();
            r.skipped.extend(set.skipped.iter().cloned());
            if self.wants(Metric::Fd) {
                let stats = set.stats()?;
                let v = fd_from_stats(&ext.fd_label(), &stats, &ref_stats)?;
                if let Some(w) = stats.singular_warning() {
                    warnings.push(format!("{}: {w}", r.name));
                }
                r.values.insert(
                    Metric::Fd,
                    MetricValue::value(&v.label, v.value, None, v.n_generated),
                );
            }
            if self.wants(Metric::Kid) {
                let label = ext.kid_label();
                let val = match &ref_set {
                    Some(rs) => match kid(&set.values, &rs.values, set.dim, &self.cfg.kid) {
                        Ok(k) => MetricValue::value(&label, k.mean, Some(k.std), k.subset_size),
                        Err(e) => MetricValue::unavailable(&label, e.to_string()),
                    },
                    None => MetricValue::unavailable(&label, "reference features unavailable"),
                };
                r.values.insert(Metric::Kid, val);
            }
        }
        Ok(Some(ext.name().to_string()))
    }

    /// The reference statistics (from the cache when valid) and, when computed or needed for
    /// KID, the reference features; their warnings go to `warnings`.
    fn reference_features(
        &self,
        ext: &dyn FeatureExtractor,
        warnings: &mut Vec<String>,
    ) -> Result<(GaussianStats, Option<FeatureSet>)> {
        let n = self.ref_files.len() as u64;
        self.progress.start(&format!("{} reference", ext.name()), n);
        let (ref_stats, ref_set) = reference_stats(
            ext,
            &self.ref_files,
            self.cfg.reference_stats.as_deref(),
            self.cfg.batch_size,
            self.device,
            self.progress,
        )?;
        self.progress.finish();
        let ref_set = match (ref_set, self.wants(Metric::Kid)) {
            (Some(s), _) => Some(s),
            // KID needs the features, not only the cached statistics.
            (None, true) => {
                self.progress.start("reference features (KID)", n);
                let s = extract_features(
                    ext,
                    &self.ref_files,
                    self.cfg.batch_size,
                    self.cfg.strict,
                    self.device,
                    self.progress,
                )?;
                self.progress.finish();
                Some(s)
            }
            (None, false) => None,
        };
        if let Some(s) = &ref_set {
            for (p, why) in &s.skipped {
                warnings.push(format!("reference image {} skipped: {why}", p.display()));
            }
        }
        if let Some(w) = ref_stats.singular_warning() {
            warnings.push(format!("reference: {w}"));
        }
        Ok((ref_stats, ref_set))
    }

    /// A no-reference metric (TReS or CLIP-IQA) of every method: mean and std over images.
    fn no_reference(
        &self,
        metric: Metric,
        injected: Option<Box<dyn NoReferenceMetric + '_>>,
        reports: &mut [MethodReport],
    ) -> Result<()> {
        let cfg = self.cfg;
        let model: Result<Box<dyn NoReferenceMetric + '_>> = match injected {
            Some(m) => Ok(m),
            None => match metric {
                Metric::Tres => crate::tres::Tres::load(
                    &cfg.weights_dir.join(&cfg.weight_files.tres),
                    self.device,
                )
                .map(|m| Box::new(m) as Box<dyn NoReferenceMetric>),
                _ => ClipIqa::load(
                    &cfg.weights_dir.join(&cfg.weight_files.clip_iqa),
                    self.device,
                )
                .map(|m| Box::new(m) as Box<dyn NoReferenceMetric>),
            },
        };
        let model = match model {
            Ok(m) => m,
            Err(e) => {
                for r in reports.iter_mut() {
                    r.values.insert(
                        metric,
                        MetricValue::unavailable(metric.label(), e.to_string()),
                    );
                }
                return Ok(());
            }
        };
        for (r, g) in reports.iter_mut().zip(&self.gen_files) {
            self.progress
                .start(&format!("{} {}", metric.label(), r.name), g.len() as u64);
            let (scores, skipped) = nr_scores(
                model.as_ref(),
                g,
                cfg.batch_size,
                cfg.strict,
                self.device,
                self.progress,
            )?;
            self.progress.finish();
            merge_skipped(&mut r.skipped, skipped);
            let v = match mean_std(&scores) {
                Some((m, s)) => MetricValue::value(metric.label(), m, Some(s), scores.len()),
                None => MetricValue::unavailable(metric.label(), "no readable image"),
            };
            r.values.insert(metric, v);
        }
        Ok(())
    }

    /// DICE of every method (a method whose masks cannot be had shows `n/a` with the reason).
    fn dice(&self, seg: Option<&dyn SegmentationModel>, reports: &mut [MethodReport]) {
        for ((r, m), pr) in reports.iter_mut().zip(&self.cfg.methods).zip(&self.pairs) {
            match dice_for_method(self.cfg, m, pr, seg, self.device) {
                Ok((v, pc)) => {
                    r.values.insert(Metric::Dice, v);
                    r.dice_per_class = Some(pc);
                }
                Err(e) => {
                    r.values.insert(
                        Metric::Dice,
                        MetricValue::unavailable("DICE", e.to_string()),
                    );
                }
            }
        }
    }

    /// A paired metric (LPIPS, DISTS, ST-LPIPS) of every method: mean and std over pairs.
    fn paired(
        &self,
        metric: Metric,
        injected: Option<Box<dyn PairedMetric + '_>>,
        reports: &mut [MethodReport],
    ) -> Result<()> {
        let model = match injected {
            Some(m) => m,
            None => match load_paired(metric, &self.cfg.weights_dir, self.device) {
                Ok(m) => m,
                Err(e) => {
                    for r in reports.iter_mut() {
                        r.values.insert(
                            metric,
                            MetricValue::unavailable(metric.label(), e.to_string()),
                        );
                    }
                    return Ok(());
                }
            },
        };
        for (r, pr) in reports.iter_mut().zip(&self.pairs) {
            self.progress
                .start(&format!("{} {}", metric.label(), r.name), pr.len() as u64);
            let d = self.distances(metric, model.as_ref(), pr, r)?;
            self.progress.finish();
            let v = match mean_std(&d) {
                Some((m, s)) => MetricValue::value(metric.label(), m, Some(s), d.len()),
                None => MetricValue::unavailable(metric.label(), "no readable pair"),
            };
            r.values.insert(metric, v);
        }
        Ok(())
    }

    /// The distances of the readable pairs of one method (unreadable ones are skipped into
    /// `r.skipped` unless `strict`).
    fn distances(
        &self,
        metric: Metric,
        model: &dyn PairedMetric,
        pairs: &[(PathBuf, PathBuf)],
        r: &mut MethodReport,
    ) -> Result<Vec<f64>> {
        let mut d = Vec::new();
        for (rf, gf) in pairs {
            let (x, y) = match (
                load_image_unit(gf, self.device),
                load_image_unit(rf, self.device),
            ) {
                (Ok(x), Ok(y)) => (x, y),
                (Err(e), _) | (_, Err(e)) => {
                    if self.cfg.strict {
                        return Err(e);
                    }
                    merge_skipped(&mut r.skipped, vec![(gf.clone(), e.to_string())]);
                    self.progress.inc(1);
                    continue;
                }
            };
            if x.dims() != y.dims() {
                return Err(MetricsError::Mismatch(format!(
                    "{}: {} is {:?} but its reference {} is {:?}",
                    metric.label(),
                    gf.display(),
                    x.dims(),
                    rf.display(),
                    y.dims()
                )));
            }
            let v = model.distance(&x.unsqueeze(0)?, &y.unsqueeze(0)?)?;
            for s in v {
                if !s.is_finite() {
                    return Err(MetricsError::NonFinite {
                        image: gf.display().to_string(),
                        extractor: metric.label().into(),
                        value: s as f64,
                    });
                }
                d.push(s as f64);
            }
            self.progress.inc(1);
        }
        Ok(d)
    }
}

fn merge_skipped(into: &mut Vec<(PathBuf, String)>, new: Vec<(PathBuf, String)>) {
    for s in new {
        if !into.iter().any(|(p, _)| *p == s.0) {
            into.push(s);
        }
    }
}

type DiceOut = (MetricValue, BTreeMap<String, Option<f64>>);

fn mask_pairs(masks_dir: &Path, images: &[PathBuf], what: &str) -> Result<Vec<PathBuf>> {
    let masks = image_files(masks_dir)?;
    Ok(pair_by_stem(images, &masks, what)?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

fn dice_for_method(
    cfg: &EvaluateConfig,
    m: &MethodInput,
    pairs: &[(PathBuf, PathBuf)],
    seg: Option<&dyn SegmentationModel>,
    device: &Device,
) -> Result<DiceOut> {
    let ref_imgs: Vec<PathBuf> = pairs.iter().map(|p| p.0.clone()).collect();
    let gen_imgs: Vec<PathBuf> = pairs.iter().map(|p| p.1.clone()).collect();
    let ref_maps = match (&cfg.reference_masks, seg) {
        (Some(d), _) => mask_pairs(d, &ref_imgs, "reference images vs reference masks")?
            .iter()
            .map(|p| load_label_map(p))
            .collect::<Result<Vec<_>>>()?,
        (None, Some(s)) => segment_files(s, &ref_imgs, device)?,
        (None, None) => {
            return Err(MetricsError::NotAvailable(
                "DICE needs reference masks or a segmentation model".into(),
            ));
        }
    };
    let gen_maps = match (&m.masks, seg) {
        (Some(d), _) => mask_pairs(
            d,
            &gen_imgs,
            &format!("method `{}` images vs its masks", m.name),
        )?
        .iter()
        .map(|p| load_label_map(p))
        .collect::<Result<Vec<_>>>()?,
        (None, Some(s)) => segment_files(s, &gen_imgs, device)?,
        (None, None) => {
            return Err(MetricsError::NotAvailable(format!(
                "DICE needs masks of method `{}` or a segmentation model (SOLOv2, not wired yet)",
                m.name
            )));
        }
    };
    let per: Vec<ClassDice> = ref_maps
        .iter()
        .zip(&gen_maps)
        .zip(&gen_imgs)
        .map(|((a, b), f)| {
            dice_per_class(a, b)
                .map_err(|e| MetricsError::Mismatch(format!("{}: {e}", f.display())))
        })
        .collect::<Result<_>>()?;
    let s = crate::dice::summarize(&per)?;
    Ok((
        MetricValue::value("DICE", s.mean, Some(s.std), s.images - s.images_all_empty),
        s.per_class,
    ))
}
