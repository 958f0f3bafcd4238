//! The evaluation report: JSON (`report.json`) and a Markdown table shaped like the paper's
//! Table I (rows = methods; columns FID or `FD[...]`, KID, TReS, CLIP-IQA, DICE, LPIPS, DISTS,
//! ST-LPIPS, in that order, for the metrics that were requested).
//!
//! Cells: per-image metrics (TReS, CLIP-IQA, DICE, LPIPS, DISTS, ST-LPIPS) as `mean ± std`
//! (population std over images, ddof 0); KID as `mean ± std` over subsets (torch-fidelity);
//! FID/FD as one value. A metric that could not run shows `n/a` with a numbered footnote giving
//! the reason (e.g. `not available: weights/clip_rn50_iqa.safetensors missing`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::features::error::{MetricsError, Result};

/// The metrics of Table I, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// FID with the Inception weights, else `FD[<extractor>]`.
    Fd,
    Kid,
    Tres,
    ClipIqa,
    Dice,
    Lpips,
    Dists,
    StLpips,
}

impl Metric {
    pub const ALL: [Metric; 8] = [
        Metric::Fd,
        Metric::Kid,
        Metric::Tres,
        Metric::ClipIqa,
        Metric::Dice,
        Metric::Lpips,
        Metric::Dists,
        Metric::StLpips,
    ];

    /// The id used on the command line and in JSON.
    pub fn id(self) -> &'static str {
        match self {
            Metric::Fd => "fd",
            Metric::Kid => "kid",
            Metric::Tres => "tres",
            Metric::ClipIqa => "clip-iqa",
            Metric::Dice => "dice",
            Metric::Lpips => "lpips",
            Metric::Dists => "dists",
            Metric::StLpips => "st-lpips",
        }
    }

    /// Parses an id (case-insensitive; `fid` is accepted for `fd`, `stlpips` for `st-lpips`,
    /// `clipiqa` for `clip-iqa`).
    pub fn parse(s: &str) -> Result<Metric> {
        let l = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match l.as_str() {
            "fd" | "fid" => Metric::Fd,
            "kid" => Metric::Kid,
            "tres" => Metric::Tres,
            "clip-iqa" | "clipiqa" => Metric::ClipIqa,
            "dice" => Metric::Dice,
            "lpips" => Metric::Lpips,
            "dists" => Metric::Dists,
            "st-lpips" | "stlpips" => Metric::StLpips,
            _ => {
                return Err(MetricsError::Invalid(format!(
                    "unknown metric `{s}`; known: {}",
                    Metric::ALL.map(Metric::id).join(", ")
                )));
            }
        })
    }

    /// Whether higher is better (for the table header arrows).
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::Tres | Metric::ClipIqa | Metric::Dice)
    }

    /// Whether the metric pairs each generated image with the reference of the same name.
    pub fn paired(self) -> bool {
        matches!(
            self,
            Metric::Dice | Metric::Lpips | Metric::Dists | Metric::StLpips
        )
    }

    /// Default column label (FD/KID get the extractor's label at run time).
    pub fn label(self) -> &'static str {
        match self {
            Metric::Fd => "FD",
            Metric::Kid => "KID",
            Metric::Tres => "TReS",
            Metric::ClipIqa => "CLIP-IQA",
            Metric::Dice => "DICE",
            Metric::Lpips => "LPIPS",
            Metric::Dists => "DISTS",
            Metric::StLpips => "ST-LPIPS",
        }
    }
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    /// Column label (`FID`, `FD[stlpips-alex]`, `KID`, `DICE`, ...).
    pub label: String,
    /// `None` when the metric could not be computed (`note` says why).
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// Images (or image pairs, or KID subsets' size) behind the value.
    pub n: usize,
    pub note: Option<String>,
}

impl MetricValue {
    pub fn value(label: &str, mean: f64, std: Option<f64>, n: usize) -> Self {
        Self {
            label: label.to_string(),
            mean: Some(mean),
            std,
            n,
            note: None,
        }
    }
    pub fn unavailable(label: &str, reason: impl Into<String>) -> Self {
        Self {
            label: label.to_string(),
            mean: None,
            std: None,
            n: 0,
            note: Some(reason.into()),
        }
    }
}

/// Results of one method (one generated folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodReport {
    pub name: String,
    pub images: PathBuf,
    pub n_images: usize,
    /// Keyed by metric id, in column order.
    pub values: BTreeMap<Metric, MetricValue>,
    /// Per-class DICE (uvula, pharyngeal wall, tonsil, tongue), when DICE ran.
    pub dice_per_class: Option<BTreeMap<String, Option<f64>>>,
    /// Unreadable images that were skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The whole evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub reference_images: PathBuf,
    pub n_reference: usize,
    pub reference_masks: Option<PathBuf>,
    /// Requested metrics in column order.
    pub metrics: Vec<Metric>,
    /// Feature extractor behind FD/KID (e.g. `stlpips-alex`, `inception-v3-fid`).
    pub fd_extractor: Option<String>,
    pub methods: Vec<MethodReport>,
    /// Warnings (singular covariances, skipped images, ...), in the order they arose.
    pub warnings: Vec<String>,
    /// Settings that determine the numbers (batch size, KID subsets and seed, ...).
    pub settings: BTreeMap<String, String>,
}

impl Report {
    pub const FORMAT: &'static str = "sketch2medi-evaluate/1";

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| MetricsError::Invalid(e.to_string()))
    }

    /// Parses a report written by [`Report::to_json`].
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| MetricsError::Invalid(format!("report JSON: {e}")))
    }

    /// The value of `metric` for method `name`.
    pub fn get(&self, method: &str, metric: Metric) -> Option<&MetricValue> {
        self.methods
            .iter()
            .find(|m| m.name == method)
            .and_then(|m| m.values.get(&metric))
    }

    /// Column label of `metric` (the first method's, e.g. `FD[stlpips-alex]`).
    pub fn label(&self, metric: Metric) -> String {
        self.methods
            .iter()
            .find_map(|m| m.values.get(&metric).map(|v| v.label.clone()))
            .unwrap_or_else(|| metric.label().to_string())
    }

    /// A Markdown table shaped like the paper's Table I, with footnotes and warnings.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Reference: `{}` ({} images)\n\n",
            self.reference_images.display(),
            self.n_reference
        ));
        s.push_str("| method |");
        for m in &self.metrics {
            let arrow = if m.higher_is_better() { "↑" } else { "↓" };
            s.push_str(&format!(" {} {arrow} |", self.label(*m)));
        }
        s.push('\n');
        s.push_str("|---|");
        for _ in &self.metrics {
            s.push_str("---:|");
        }
        s.push('\n');
        let mut notes: Vec<String> = Vec::new();
        for method in &self.methods {
            s.push_str(&format!("| {} |", method.name));
            for m in &self.metrics {
                let cell = match method.values.get(m) {
                    Some(MetricValue {
                        mean: Some(v), std, ..
                    }) => match std {
                        Some(sd) => format!("{} ± {}", fmt(*v), fmt(*sd)),
                        None => fmt(*v),
                    },
                    Some(MetricValue { note, .. }) => {
                        let reason = note.clone().unwrap_or_else(|| "not computed".into());
                        let i = match notes.iter().position(|n| *n == reason) {
                            Some(i) => i,
                            None => {
                                notes.push(reason);
                                notes.len() - 1
                            }
                        };
                        format!("n/a [{}]", i + 1)
                    }
                    None => "–".into(),
                };
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
        if !notes.is_empty() {
            s.push('\n');
            for (i, n) in notes.iter().enumerate() {
                s.push_str(&format!("[{}] {n}\n", i + 1));
            }
        }
        let mut dice_rows = Vec::new();
        for method in &self.methods {
            if let Some(pc) = &method.dice_per_class {
                let cells: Vec<String> = pc
                    .iter()
                    .map(|(k, v)| format!("{k} {}", v.map(fmt).unwrap_or_else(|| "–".into())))
                    .collect();
                dice_rows.push(format!("- {}: {}", method.name, cells.join(", ")));
            }
        }
        if !dice_rows.is_empty() {
            s.push_str("\nDICE per class:\n\n");
            for r in dice_rows {
                s.push_str(&r);
                s.push('\n');
            }
        }
        if !self.warnings.is_empty() {
            s.push_str("\nWarnings:\n\n");
            for w in &self.warnings {
                s.push_str(&format!("- {w}\n"));
            }
        }
        s
    }

    /// Writes `report.json` and `report.md` into `dir` (created if needed); returns both paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|e| MetricsError::io(dir, e))?;
        let j = dir.join("report.json");
        let m = dir.join("report.md");
        s2m_core::fsio::atomic_write(&j, self.to_json()?.as_bytes())?;
        s2m_core::fsio::atomic_write(&m, self.to_markdown().as_bytes())?;
        Ok((j, m))
    }
}

/// Four significant digits, scientific below 1e-3.
fn fmt(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}
