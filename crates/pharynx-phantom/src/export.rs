//! Writing a dataset folder with the paper's splits (layout in [`crate::layout`] and
//! `docs/DATASET.md`).
//!
//! The folder is built under a temporary sibling name and renamed into place only when every
//! file and the manifest are written, so an interrupted or failed build never leaves a folder
//! that looks complete.

use crate::error::{PhantomError, Result};
use crate::layout::{self, Layout, Split};
use crate::manifest::{GENERATOR_VERSION, MANIFEST_KIND, Manifest};
use crate::render::check_size;
use crate::sample::{FreehandRecord, SampleRecord, Stream, draw_freehand, generate};
use rayon::prelude::*;
use s2m_core::anatomy::Class;
use s2m_core::imageio::{PngSource, encode_png};
use s2m_core::progress::Progress;
use serde::{Deserialize, Serialize};
use sketch_synth::{DrawerStyle, SketchConfig, drawer_styles};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The paper's counts at scale 1.0.
pub const PAPER_TRAIN: usize = 60_000;
pub const PAPER_SEG_TRAIN: usize = 1_600;
pub const PAPER_SEG_VAL: usize = 400;
pub const PAPER_FREEHAND: usize = 495;

/// Largest `scale` of a build: 100 x the paper's counts (6 million training images).
pub const MAX_SCALE: f64 = 100.0;

/// Number of ids per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub train: usize,
    pub seg_train: usize,
    pub seg_val: usize,
    pub freehand: usize,
}

impl Counts {
    /// The paper's counts scaled by `scale` (rounded), `scale` in (0, [`MAX_SCALE`]]. Every
    /// split must keep at least one id.
    pub fn scaled(scale: f64) -> Result<Counts> {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(PhantomError::BadArgument {
                name: "--scale",
                message: format!("{scale} is not a positive number"),
            });
        }
        if scale > MAX_SCALE {
            return Err(PhantomError::BadArgument {
                name: "--scale",
                message: format!(
                    "{scale} is above the cap of {MAX_SCALE} ({} training images)",
                    (PAPER_TRAIN as f64 * MAX_SCALE) as u64
                ),
            });
        }
        let n = |paper: usize| (paper as f64 * scale).round() as usize;
        let counts = Counts {
            train: n(PAPER_TRAIN),
            seg_train: n(PAPER_SEG_TRAIN),
            seg_val: n(PAPER_SEG_VAL),
            freehand: n(PAPER_FREEHAND),
        };
        let smallest = [
            ("train", PAPER_TRAIN, counts.train),
            ("seg_train", PAPER_SEG_TRAIN, counts.seg_train),
            ("seg_val", PAPER_SEG_VAL, counts.seg_val),
            ("freehand", PAPER_FREEHAND, counts.freehand),
        ];
        if let Some((split, paper, _)) = smallest.iter().find(|(_, _, c)| *c == 0) {
            return Err(PhantomError::BadArgument {
                name: "--scale",
                message: format!(
                    "{scale} leaves split {split} empty ({paper} x {scale} rounds to 0); use at least {:.4}",
                    0.5 / *paper as f64
                ),
            });
        }
        Ok(counts)
    }

    fn by_split(&self) -> BTreeMap<String, usize> {
        [
            (Split::Train, self.train),
            (Split::SegTrain, self.seg_train),
            (Split::SegVal, self.seg_val),
            (Split::Freehand, self.freehand),
        ]
        .into_iter()
        .map(|(s, c)| (s.name().to_string(), c))
        .collect()
    }
}

/// How to build a dataset folder.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    pub out: PathBuf,
    pub scale: f64,
    pub size: u32,
    pub seed: u64,
    /// Replace a non-empty output folder.
    pub force: bool,
    pub sketch: SketchConfig,
    /// The command line, recorded in the manifest.
    pub command: String,
}

/// Per-style summary of the free-hand sketches written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleReport {
    pub style: String,
    pub sketches: usize,
    /// Mean over sketches of the mean stroke-to-true-contour distance, in pixels at 256 px
    /// (distances at other sizes are divided by `size / 256`).
    pub mean_chamfer_px: f32,
    /// The style's configured range, in pixels at 256 px.
    pub expected_chamfer_px: [f32; 2],
}

/// What a build did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    pub counts: Counts,
    pub images_written: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    pub styles: Vec<StyleReport>,
    /// Synthesized sketches without any stroke (reported, never expected).
    pub empty_sketches: usize,
    /// Images per visible tonsil count (0, 1, 2).
    pub tonsil_histogram: [usize; 3],
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| PhantomError::io(path, e))
}

fn write_png<I: PngSource + ?Sized>(path: &Path, image: &I) -> Result<()> {
    write_file(path, &encode_png(image, path)?)
}

fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(
            &serde_json::to_string(row).map_err(|e| PhantomError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?,
        );
        text.push('\n');
    }
    write_file(path, text.as_bytes())
}

/// Checks that `out` may be written: absent, an empty folder, or `force`.
fn check_output(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(PhantomError::BadArgument {
                name: "--out",
                message: format!("{} exists and is not a folder", out.display()),
            });
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| PhantomError::io(out, e))?
            .next()
            .is_some();
        if non_empty && !force {
            return Err(PhantomError::OutputNotEmpty(out.to_path_buf()));
        }
    }
    Ok(())
}

/// Builds a dataset folder. On error nothing is left under `cfg.out` (a pre-existing folder
/// replaced with `force` is only removed once the new one is complete). The images are
/// reported on `progress` as one stage, `phantom`, of one unit per generated sample.
pub fn build_dataset(cfg: &BuildConfig, progress: &dyn Progress) -> Result<BuildReport> {
    check_size(cfg.size)?;
    cfg.sketch.validate()?;
    let counts = Counts::scaled(cfg.scale)?;
    check_output(&cfg.out, cfg.force)?;

    let name = cfg
        .out
        .file_name()
        .ok_or_else(|| PhantomError::BadArgument {
            name: "--out",
            message: format!("{} has no folder name", cfg.out.display()),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match cfg.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| PhantomError::io(&parent, e))?;
    // Staging folders of builds that were killed (their process no longer runs).
    s2m_core::fsio::remove_stale_leftovers(&parent, Some(&name))?;
    let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| PhantomError::io(&staging, e))?;
    }
    let result = write_all(cfg, counts, &staging, progress);
    match result {
        Ok(report) => {
            if cfg.out.exists() {
                // Move the old folder aside first so that the rename below is atomic.
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                std::fs::rename(&cfg.out, &old).map_err(|e| PhantomError::io(&cfg.out, e))?;
                std::fs::rename(&staging, &cfg.out).map_err(|e| PhantomError::io(&cfg.out, e))?;
                std::fs::remove_dir_all(&old).map_err(|e| PhantomError::io(&old, e))?;
            } else {
                std::fs::rename(&staging, &cfg.out).map_err(|e| PhantomError::io(&cfg.out, e))?;
            }
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

fn write_all(
    cfg: &BuildConfig,
    counts: Counts,
    root: &Path,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    let start = Instant::now();
    let layout = Layout::new(root);
    for dir in [
        layout::IMAGES,
        layout::MASKS,
        layout::SKETCHES,
        layout::FREEHAND,
        layout::SPLITS,
    ] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| PhantomError::io(&d, e))?;
    }
    let styles = drawer_styles();
    let total = counts.train + counts.freehand;
    progress.start("phantom", total as u64);
    let records = write_generation_set(cfg, counts, &layout, progress)?;
    let drawn = write_references(cfg, counts, &layout, &styles, progress)?;
    progress.finish();

    write_split_lists(counts, &layout, &records, &drawn)?;
    let all_records: Vec<&SampleRecord> =
        records.iter().chain(drawn.iter().map(|(s, _)| s)).collect();
    write_jsonl(&layout.samples_index(), &all_records)?;
    let freehand_records: Vec<&FreehandRecord> = drawn.iter().map(|(_, f)| f).collect();
    write_jsonl(&layout.freehand_index(), &freehand_records)?;

    let mut tonsil_histogram = [0usize; 3];
    for r in &all_records {
        tonsil_histogram[(r.tonsils as usize).min(2)] += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = BuildReport {
        counts,
        images_written: total,
        seconds,
        images_per_second: total as f64 / seconds.max(1e-9),
        styles: style_reports(&styles, &freehand_records),
        empty_sketches: all_records.iter().filter(|r| r.empty_sketch).count(),
        tonsil_histogram,
    };
    let report_path = root.join("build_report.json");
    write_file(
        &report_path,
        serde_json::to_string_pretty(&report)
            .map_err(|e| PhantomError::Parse {
                path: report_path.clone(),
                message: e.to_string(),
            })?
            .as_bytes(),
    )?;
    write_manifest(cfg, counts, &layout, &styles)?;
    Ok(report)
}

/// The generation set: image, mask and synthesized sketch of every training id.
fn write_generation_set(
    cfg: &BuildConfig,
    counts: Counts,
    layout: &Layout,
    progress: &dyn Progress,
) -> Result<Vec<SampleRecord>> {
    (0..counts.train)
        .into_par_iter()
        .map(|i| {
            let id = layout::train_id(i);
            let s = generate(cfg.seed, Stream::Train, i, cfg.size, &cfg.sketch)?;
            write_png(&layout.image(&id), &s.phantom.image)?;
            write_png(&layout.mask(&id), s.phantom.labels.as_gray())?;
            write_png(&layout.sketch(&id), &s.sketch)?;
            progress.inc(1);
            Ok(s.record(id))
        })
        .collect()
}

/// Held-out references and their free-hand sketches (style i % 12, so styles are balanced).
fn write_references(
    cfg: &BuildConfig,
    counts: Counts,
    layout: &Layout,
    styles: &[DrawerStyle],
    progress: &dyn Progress,
) -> Result<Vec<(SampleRecord, FreehandRecord)>> {
    (0..counts.freehand)
        .into_par_iter()
        .map(|i| {
            let id = layout::reference_id(i);
            let s = generate(cfg.seed, Stream::Reference, i, cfg.size, &cfg.sketch)?;
            let style_index = i % styles.len();
            let style: &DrawerStyle = &styles[style_index];
            let (sketch, seed, omitted, chamfer) = draw_freehand(&s, style, cfg.seed, i)?;
            write_png(&layout.image(&id), &s.phantom.image)?;
            write_png(&layout.mask(&id), s.phantom.labels.as_gray())?;
            write_png(&layout.sketch(&id), &s.sketch)?;
            write_png(&layout.freehand(&id), &sketch)?;
            progress.inc(1);
            let rec = FreehandRecord {
                id: id.clone(),
                style: style.name.clone(),
                style_index,
                seed,
                chamfer_px: chamfer,
                omitted,
            };
            Ok((s.record(id), rec))
        })
        .collect()
}

/// Split lists: the annotated images are the first seg_train + seg_val generation images.
fn write_split_lists(
    counts: Counts,
    layout: &Layout,
    records: &[SampleRecord],
    drawn: &[(SampleRecord, FreehandRecord)],
) -> Result<()> {
    let train_ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let seg_end = (counts.seg_train + counts.seg_val).min(train_ids.len());
    let seg_train_end = counts.seg_train.min(seg_end);
    let lists = [
        (Split::Train, train_ids.clone()),
        (Split::SegTrain, train_ids[..seg_train_end].to_vec()),
        (Split::SegVal, train_ids[seg_train_end..seg_end].to_vec()),
        (
            Split::Freehand,
            drawn.iter().map(|(s, _)| s.id.clone()).collect(),
        ),
    ];
    for (split, ids) in &lists {
        let mut text = ids.join("\n");
        text.push('\n');
        write_file(&layout.split(*split), text.as_bytes())?;
    }
    Ok(())
}

/// Per-style summary of the free-hand sketches.
fn style_reports(styles: &[DrawerStyle], freehand: &[&FreehandRecord]) -> Vec<StyleReport> {
    styles
        .iter()
        .enumerate()
        .map(|(k, style)| {
            let values: Vec<f32> = freehand
                .iter()
                .filter(|r| r.style_index == k)
                .filter_map(|r| r.chamfer_px)
                .collect();
            StyleReport {
                style: style.name.clone(),
                sketches: values.len(),
                mean_chamfer_px: if values.is_empty() {
                    f32::NAN
                } else {
                    values.iter().sum::<f32>() / values.len() as f32
                },
                expected_chamfer_px: style.expected_chamfer,
            }
        })
        .collect()
}

/// The manifest goes last: its presence marks a complete folder.
fn write_manifest(
    cfg: &BuildConfig,
    counts: Counts,
    layout: &Layout,
    styles: &[DrawerStyle],
) -> Result<()> {
    let manifest = Manifest {
        kind: MANIFEST_KIND.to_string(),
        generator_version: GENERATOR_VERSION.to_string(),
        seed: cfg.seed,
        scale: cfg.scale,
        size: cfg.size,
        sketch_stroke_width: cfg.sketch.stroke_width,
        counts: counts.by_split(),
        classes: Class::ALL
            .iter()
            .map(|c| (c.id(), c.name().to_string()))
            .collect(),
        mask_encoding: "L8 PNG, value = class_id * 16 + instance (0 = background); \
                        tonsil instance 0 = image left, 1 = image right"
            .to_string(),
        freehand_styles: styles.iter().map(|s| s.name.clone()).collect(),
        command: cfg.command.clone(),
    };
    let manifest_path = layout.manifest();
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| PhantomError::Parse {
        path: manifest_path.clone(),
        message: e.to_string(),
    })?;
    s2m_core::fsio::atomic_write(&manifest_path, text.as_bytes())?;
    Ok(())
}
