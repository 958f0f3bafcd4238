//! Evaluation metrics of the paper's Table I: FID/KID, DICE, LPIPS, DISTS, ST-LPIPS, TReS, CLIP-IQA.
//!
//! - [`frechet`]: Gaussian feature statistics (cacheable) and the Frechet distance (f64, faer).
//! - [`fid`]: FID / `FD[<extractor>]` between image sets; [`kid`]: KID (unbiased MMD^2, torch-fidelity's
//!   subsets via [`numpy_random`]).
//! - [`features`]: image folders, `[-1,1]`/`[0,1]` loading, feature extractors, [`MetricsError`].
//! - [`clip_iqa`]: CLIP-IQA (OpenAI CLIP RN50 image tower + attention pool, stored prompts).
//! - [`tres`]: TReS (ResNet + transformer, pyiqa names, uniform 224 crops).
//! - [`evaluate`]: the evaluate API ([`evaluate::EvaluateConfig`], [`evaluate::evaluate`]) and
//!   [`report`]: the [`report::Report`] (JSON + Markdown shaped like Table I).
//! - [`dice`]: per-class DICE from label-map files or a [`dice::SegmentationModel`].
//!
//! See `docs/METRICS.md` for the pinned preprocessing of every metric and parity numbers.

pub mod clip_iqa;
pub mod dice;
pub mod evaluate;
pub mod features;
pub mod fid;
pub mod frechet;
pub mod kid;
pub mod numpy_random;
pub mod perceptual;
pub mod report;
pub mod tres;

pub use features::error::{MetricsError, Result};
pub use perceptual::{PerceptualError, PerceptualKind, PerceptualMetric, PerceptualReport};
