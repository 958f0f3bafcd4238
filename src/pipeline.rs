//! The one-call Sketch2MedI pipeline: sketch -> E -> w -> G -> image, then T refinements of G's
//! weights by H (theta_t = theta (1 + sum_i Delta_i)).
//!
//! ```no_run
//! use sketch2medi::{Sketch2MedI, load_sketch};
//! let model = Sketch2MedI::load_default()?; // weights/sketch2medi_phantom64, on the CPU
//! let sketch = load_sketch("examples/sketches/freehand_careful.png")?;
//! let out = model.generate(&sketch)?;
//! model.save_png(&out, "throat.png")?; // with provenance text chunks
//! # Ok::<(), sketch2medi::PipelineError>(())
//! ```
//!
//! ## Weights folder
//! A folder with `pipeline.json` ([`PipelineManifest`]): the generator file (a path relative to
//! the folder), the folder of `encoder.safetensors` + `encoder.json` (E and the average latent)
//! and, optionally, of `refiner.safetensors` + `refiner.json` (H), and the default number of
//! refinement steps. Every weights file (the encoder's `latent_avg.safetensors` included) is
//! hashed (SHA-256) at load time and checked against the hash its bundle records; the hashes go
//! into the provenance of every written image. Tensors holding NaN or infinity are refused at
//! load time, naming the file and the tensor.
//!
//! ## Sketch conventions
//! Any size and colour mode is accepted and converted to what the models were trained on: one
//! channel, dark ink on a white page, square, the model's size. Transparent pixels are composited
//! over white; a sketch whose mean grey is below 128 is taken as light-on-dark and inverted (with
//! a warning); a non-square sketch is padded with white to a square (centred, aspect kept; a
//! warning) and then resized with a triangle filter (the dataset loader's). A sketch without any
//! ink (no pixel darker than 200 of 255 after resizing) still produces an image, with a
//! [`SketchWarning::Blank`] warning. Limits: files over [`s2m_core::imageio::MAX_IMAGE_SIDE`]
//! px a side or [`s2m_core::imageio::MAX_DECODE_BYTES`] of pixels are refused from their
//! header, and sketches with an aspect ratio above [`MAX_SKETCH_ASPECT`]:1 before any
//! padding (docs/RELIABILITY.md).

use candle_core::{Device, Tensor};
use e4e_encoder::{Encoder, EncoderBundle, FrozenGenerator};
use hyperstyle_refiner::{HyperNetwork, RefinerBundle};
use image::{DynamicImage, GrayImage, Luma, RgbImage};
use s2m_core::LabelMap;
use serde::{Deserialize, Serialize};
use sketch_synth::SketchConfig;
use sketch_synth::normalise::{NormaliseConfig, normalise_sketch};

use crate::segmenter::SoloV2Segmenter;
use std::path::{Component, Path, PathBuf};
use stylegan2::{Generator, GeneratorInput, NoiseMode, WeightOffsets};

/// Name of the manifest inside a weights folder.
pub const MANIFEST: &str = "pipeline.json";
/// Format tag of [`PipelineManifest`].
pub const FORMAT: &str = "sketch2medi-pipeline/1";
/// The committed default pipeline, relative to the repository root.
pub const DEFAULT_WEIGHTS: &str = "weights/sketch2medi_phantom64";
/// Environment variable that overrides where weights are read from (a local folder; it also
/// overrides hub downloads).
pub const WEIGHTS_ENV: &str = "SKETCH2MEDI_WEIGHTS";
/// Ink threshold: a pixel darker than this (0..255) counts as a stroke.
pub const INK_THRESHOLD: u8 = 200;
/// Most refinement steps T a pipeline runs (`"steps"` in pipeline.json, `generate --steps`,
/// [`Sketch2MedI::with_steps`]): the paper uses 3; each step is one more H and G forward per
/// sketch and one more set of weight offsets kept in memory.
pub const MAX_STEPS: usize = 16;
/// Largest aspect ratio (long side : short side) of a sketch. Padding to a square of the long
/// side would otherwise let a 1 x 300000 sketch allocate a 300000² page; a sketch this thin is
/// no drawing of a throat either.
pub const MAX_SKETCH_ASPECT: u32 = 8;

/// Errors of the pipeline. File problems name the file.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("weights folder {dir}: {message}")]
    Weights { dir: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    #[error(transparent)]
    Generator(#[from] stylegan2::StyleGan2Error),
    #[error(transparent)]
    Encoder(#[from] e4e_encoder::EncoderError),
    #[error(transparent)]
    EncoderModel(#[from] e4e_encoder::E4eError),
    #[error(transparent)]
    Refiner(#[from] hyperstyle_refiner::RefinerError),
    #[cfg(feature = "hub")]
    #[error("hub repo {repo}: {message}")]
    Hub { repo: String, message: String },
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// `pipeline.json`: what a weights folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineManifest {
    /// [`FORMAT`].
    pub format: String,
    /// The generator safetensors (its config in the `.json` beside it), relative to the folder.
    pub generator: String,
    /// Folder of `encoder.safetensors` + `encoder.json`, relative to the folder.
    pub encoder: String,
    /// Folder of `refiner.safetensors` + `refiner.json`; `None` for an encoder-only pipeline.
    #[serde(default)]
    pub refiner: Option<String>,
    /// Default number of refinement steps T (the paper: 3).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Free text: what the weights were trained on.
    #[serde(default)]
    pub description: String,
    /// How sketches are brought to the model's size: absent = a plain triangle-filter resize;
    /// present = [`sketch_synth::normalise`] (ink-preserving, pen width normalised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalise: Option<NormaliseConfig>,
    /// Choose the step per sketch (see [`SelectConfig`]); absent = always the last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<SelectConfig>,
}

fn default_steps() -> usize {
    3
}

/// `"select"` of `pipeline.json`: the image of each sketch is the step t in 0..=T whose image
/// agrees best with the sketch. Agreement is the symmetric chamfer distance (px) between the
/// contour sketch of S's masks of ŷ_t (instances with score >= `threshold`, drawn as the
/// training sketches are) and the sketch as the model saw it; the smallest distance wins, ties
/// go to the earlier step, and a step whose image S finds nothing in never wins over one where
/// it does. A refinement step t > 0 replaces E's image only when it is at least `margin` px
/// closer than E's. With a blank sketch every step ties and E's image (t = 0) is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectConfig {
    /// The segmenter S's export folder (`solov2.safetensors` + `solov2.json`), relative to the
    /// pipeline folder.
    pub segmenter: String,
    /// Score threshold of S's instances (the paper's sketch threshold, 0.35).
    #[serde(default = "default_select_threshold")]
    pub threshold: f32,
    /// How much closer (px of chamfer distance) a refinement step must be than E's image to
    /// replace it; 0 = the closest step wins.
    #[serde(default)]
    pub margin: f32,
}

fn default_select_threshold() -> f32 {
    SketchConfig::default().score_threshold
}

/// The distance of [`SelectConfig`] between an image's segmentation `labels` and the `sketch`
/// it was made from (the same size): the symmetric chamfer distance (px) between the contour
/// sketch of `labels` and the sketch's ink (< 128); `None` when either has no ink.
pub fn sketch_distance(labels: &LabelMap, sketch: &GrayImage) -> Result<Option<f32>> {
    let invalid =
        |e: sketch_synth::SketchError| PipelineError::Invalid(format!("step selection: {e}"));
    let contours =
        sketch_synth::render_label_map(labels, &SketchConfig::default()).map_err(invalid)?;
    sketch_synth::chamfer_distance(&contours, sketch, 128).map_err(invalid)
}

/// The step of [`SelectConfig`] among `distances` (one per step t = 0..): the smallest among E's
/// (t = 0) and the steps at least `margin` closer than E's, ties to the earlier step, `None`
/// (nothing found) never over a distance; 0 when all are `None`.
pub fn select_step(distances: &[Option<f32>], margin: f32) -> usize {
    let key = |t: usize| distances[t].unwrap_or(f32::INFINITY);
    let Some(&first) = distances.first() else {
        return 0;
    };
    let bar = first.map_or(f32::INFINITY, |d0| d0 - margin);
    (0..distances.len())
        .filter(|&t| t == 0 || (distances[t].is_some() && key(t) <= bar))
        .min_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)))
        .unwrap_or(0)
}

/// Something about an input sketch that was corrected or is suspicious.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SketchWarning {
    /// No pixel darker than [`INK_THRESHOLD`]: the output is the model's "empty sketch" image.
    Blank,
    /// Mean grey below 128: taken as light strokes on a dark page and inverted.
    Inverted,
    /// Not square: padded with white to a square before resizing.
    Padded { width: u32, height: u32 },
}

impl std::fmt::Display for SketchWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Blank => write!(
                f,
                "the sketch is blank (no stroke darker than {INK_THRESHOLD}/255): the output \
                 follows no drawing"
            ),
            Self::Inverted => write!(
                f,
                "the sketch looks like light strokes on a dark page: it was inverted"
            ),
            Self::Padded { width, height } => write!(
                f,
                "the sketch is {width}x{height}, not square: it was padded with white"
            ),
        }
    }
}

/// A sketch converted to the model's input: `[1, size, size]` grey in [-1, 1].
#[derive(Debug, Clone)]
pub struct PreparedSketch {
    /// The converted sketch at the model's size (dark ink on white).
    pub image: GrayImage,
    pub warnings: Vec<SketchWarning>,
}

/// Converts any sketch image to the model's convention with a plain resize (see the module
/// docs); [`prepare_sketch_with`] can normalise instead.
pub fn prepare_sketch(sketch: &DynamicImage, size: u32) -> Result<PreparedSketch> {
    prepare_sketch_with(sketch, size, None)
}

/// Converts any sketch image to the model's convention: composited, inverted if light-on-dark,
/// padded to a square, then resized (`normalise: None`) or normalised
/// ([`sketch_synth::normalise::normalise_sketch`]) to `size` x `size`.
pub fn prepare_sketch_with(
    sketch: &DynamicImage,
    size: u32,
    normalise: Option<&NormaliseConfig>,
) -> Result<PreparedSketch> {
    use image::imageops::{FilterType, overlay, resize};
    let (w, h) = (sketch.width(), sketch.height());
    check_sketch_dimensions(w, h)?;
    let mut warnings = Vec::new();
    // Alpha over white, then luma.
    let rgba = sketch.to_rgba8();
    let mut grey = GrayImage::new(w, h);
    for (x, y, p) in rgba.enumerate_pixels() {
        let [r, g, b, a] = p.0;
        let luma = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
        let a = a as f32 / 255.0;
        grey.put_pixel(x, y, Luma([(a * luma + (1.0 - a) * 255.0).round() as u8]));
    }
    let mean = grey.pixels().map(|p| p.0[0] as f64).sum::<f64>() / (w as f64 * h as f64);
    if mean < 128.0 {
        image::imageops::invert(&mut grey);
        warnings.push(SketchWarning::Inverted);
    }
    if w != h {
        let side = w.max(h);
        let mut page = GrayImage::from_pixel(side, side, Luma([255]));
        overlay(
            &mut page,
            &grey,
            ((side - w) / 2) as i64,
            ((side - h) / 2) as i64,
        );
        grey = page;
        warnings.push(SketchWarning::Padded {
            width: w,
            height: h,
        });
    }
    if let Some(cfg) = normalise {
        grey = normalise_sketch(&grey, size, cfg)
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    } else if grey.width() != size {
        grey = resize(&grey, size, size, FilterType::Triangle);
    }
    if !grey.pixels().any(|p| p.0[0] < INK_THRESHOLD) {
        warnings.push(SketchWarning::Blank);
    }
    Ok(PreparedSketch {
        image: grey,
        warnings,
    })
}

/// Checks a sketch's size before anything is allocated for it: at least one pixel, and an
/// aspect ratio of at most [`MAX_SKETCH_ASPECT`]:1 (the image decoders' caps,
/// [`s2m_core::imageio::MAX_IMAGE_SIDE`] a side, apply to files).
pub fn check_sketch_dimensions(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(PipelineError::Invalid("the sketch has no pixels".into()));
    }
    let (long, short) = (width.max(height) as u64, width.min(height) as u64);
    if long > short * MAX_SKETCH_ASPECT as u64 {
        return Err(PipelineError::Invalid(format!(
            "the sketch is {width}x{height} px: its aspect ratio is above the cap of \
             {MAX_SKETCH_ASPECT}:1 (long side : short side)"
        )));
    }
    Ok(())
}

/// Reads a sketch file of any supported format (PNG, JPEG); errors name the file. Files over
/// the decode limits ([`s2m_core::imageio::MAX_IMAGE_SIDE`] a side,
/// [`s2m_core::imageio::MAX_DECODE_BYTES`]) are refused from their header, and sketches
/// that [`check_sketch_dimensions`] refuses (aspect ratio above [`MAX_SKETCH_ASPECT`]:1)
/// right after decoding.
pub fn load_sketch(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    checked_sketch(s2m_core::imageio::load_dynamic(path), path)
}

/// [`load_sketch`] of a sketch file held in memory (an upload, a fuzzer's input); `what` names
/// it in errors.
pub fn decode_sketch(bytes: &[u8], what: &Path) -> Result<DynamicImage> {
    checked_sketch(s2m_core::imageio::decode_dynamic(bytes, what), what)
}

fn checked_sketch(
    decoded: std::result::Result<DynamicImage, s2m_core::CoreError>,
    path: &Path,
) -> Result<DynamicImage> {
    let file_err = |message: String| PipelineError::File {
        path: path.to_path_buf(),
        message,
    };
    let image = decoded.map_err(|e| match e {
        s2m_core::CoreError::TooLarge { message, .. } => {
            file_err(format!("sketch image too large to decode: {message}"))
        }
        e => file_err(format!("not a readable sketch image: {e}")),
    })?;
    check_sketch_dimensions(image.width(), image.height()).map_err(|e| file_err(e.to_string()))?;
    Ok(image)
}

/// The output of [`Sketch2MedI::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// The final image (after all refinement steps).
    pub image: RgbImage,
    /// The latent w = E(sketch) + latent_avg, `style_dim` values.
    pub w: Vec<f32>,
    /// Every intermediate image: the encoder's ŷ_0, then ŷ_1..ŷ_T.
    pub steps: Vec<RgbImage>,
    /// The step `image` is: T, or the step chosen by agreement with the sketch
    /// ([`SelectConfig`]).
    pub chosen_step: usize,
    /// With the step selection: each step's chamfer distance (px) to the sketch (`None`
    /// where S found nothing or the sketch is blank); empty without it.
    pub distances: Vec<Option<f32>>,
    /// The sketch as the model saw it.
    pub sketch: GrayImage,
    pub warnings: Vec<SketchWarning>,
    /// Σ Δ behind the chosen step of this sample (`[1, out, in, k, k]` per refined slot; empty
    /// without a refiner or for t = 0), so that [`Sketch2MedI::variations_of`] reuses the
    /// refined weights.
    offsets: WeightOffsets,
}

impl Generation {
    /// A strip: sketch | ŷ_0 (E) | ŷ_1 .. ŷ_T, side by side.
    pub fn strip(&self) -> Result<RgbImage> {
        let mut tiles = vec![DynamicImage::ImageLuma8(self.sketch.clone()).to_rgb8()];
        tiles.extend(self.steps.iter().cloned());
        Ok(s2m_core::imageio::image_grid(&tiles, tiles.len(), 2)?)
    }
}

/// SHA-256 of the files of a loaded pipeline (hex), for provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightHashes {
    pub generator: String,
    pub encoder: String,
    /// The encoder folder's `latent_avg.safetensors` (w = E(sketch) + latent_avg).
    pub latent_avg: String,
    pub refiner: Option<String>,
    /// The segmenter of the step selection ([`SelectConfig`]), when the manifest has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmenter: Option<String>,
}

/// The loaded pipeline. Inference only: weights are plain tensors, no autograd graph is built.
pub struct Sketch2MedI {
    generator: FrozenGenerator,
    encoder: EncoderBundle,
    refiner: Option<HyperNetwork>,
    steps: usize,
    device: Device,
    dir: PathBuf,
    hashes: WeightHashes,
    manifest: PipelineManifest,
    /// S of the step selection, when the manifest configures one.
    selector: Option<SoloV2Segmenter>,
    /// Whether the step selection is on (it can be switched off when configured).
    select: bool,
}

impl std::fmt::Debug for Sketch2MedI {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch2MedI")
            .field("dir", &self.dir)
            .field("size", &self.size())
            .field("steps", &self.steps)
            .field("refiner", &self.refiner.is_some())
            .field("device", &self.device)
            .finish()
    }
}

/// Checks a number of refinement steps against [`MAX_STEPS`].
pub fn check_steps(steps: usize) -> Result<()> {
    if steps > MAX_STEPS {
        return Err(PipelineError::Invalid(format!(
            "{steps} refinement steps is above the cap of {MAX_STEPS}"
        )));
    }
    Ok(())
}

/// Joins `rel` to `dir`, refusing absolute paths (a manifest must not point anywhere).
fn resolve(dir: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.is_absolute() || p.components().any(|c| matches!(c, Component::Prefix(_))) {
        return Err(PipelineError::Weights {
            dir: dir.to_path_buf(),
            message: format!("{MANIFEST}: path {rel:?} must be relative to the folder"),
        });
    }
    Ok(dir.join(p))
}

impl PipelineManifest {
    /// Reads and checks a `pipeline.json`; errors name the file.
    pub fn read(path: &Path) -> Result<Self> {
        let file_err = |message: String| PipelineError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks the text of a `pipeline.json`; errors name `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let file_err = |message: String| PipelineError::File {
            path: path.to_path_buf(),
            message,
        };
        let manifest: Self = serde_json::from_str(text)
            .map_err(|e| file_err(format!("bad pipeline manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(file_err(format!(
                "format {:?}, expected {FORMAT:?}",
                manifest.format
            )));
        }
        if manifest.steps > MAX_STEPS {
            return Err(file_err(format!(
                "\"steps\": {} is above the cap of {MAX_STEPS} refinement steps",
                manifest.steps
            )));
        }
        Ok(manifest)
    }
}

impl Sketch2MedI {
    /// Loads the pipeline in `dir` on the CPU.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(dir, &Device::Cpu)
    }

    /// The committed default pipeline: `$SKETCH2MEDI_WEIGHTS` if set, else
    /// [`DEFAULT_WEIGHTS`] under the current directory, else under this crate's source folder.
    pub fn load_default() -> Result<Self> {
        Self::load(default_weights_dir())
    }

    /// Loads the pipeline in `dir` on `device`.
    pub fn load_on(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(PipelineError::Weights {
                dir,
                message: "not a folder".into(),
            });
        }
        let manifest = PipelineManifest::read(&dir.join(MANIFEST))?;
        // Each loader names a missing or bad file; the generator file is read once for its
        // weights and its sha256, and the bundles check the sha256 their JSON records.
        let g_path = resolve(&dir, &manifest.generator)?;
        let generator = FrozenGenerator::load(&g_path, device)?;
        let g_hash = generator.sha256().to_string();
        if let Some(cfg) = &manifest.normalise {
            cfg.validate(generator.config().size)
                .map_err(|e| PipelineError::File {
                    path: dir.join(MANIFEST),
                    message: format!("\"normalise\": {e}"),
                })?;
        }
        let enc_dir = resolve(&dir, &manifest.encoder)?;
        let encoder = EncoderBundle::load(&enc_dir, device)?;
        let enc_file = enc_dir.join(e4e_encoder::ENCODER_WEIGHTS);
        // E and H only work with the generator they were trained with.
        let mismatch = |what: &str, file: &Path, trained: &str| PipelineError::Weights {
            dir: dir.clone(),
            message: format!(
                "the {what} ({}) was trained with generator sha256 {trained}, but {} has {g_hash}",
                file.display(),
                g_path.display()
            ),
        };
        if encoder.meta.generator.sha256 != g_hash {
            return Err(mismatch(
                "encoder",
                &enc_file,
                &encoder.meta.generator.sha256,
            ));
        }
        let (refiner, refiner_hash) = match &manifest.refiner {
            Some(rel) => {
                let ref_dir = resolve(&dir, rel)?;
                let ref_file = ref_dir.join(hyperstyle_refiner::bundle::REFINER_WEIGHTS);
                let bundle = RefinerBundle::load(&ref_dir, generator.config(), device)?;
                if bundle.meta.generator.sha256 != g_hash {
                    return Err(mismatch(
                        "refiner",
                        &ref_file,
                        &bundle.meta.generator.sha256,
                    ));
                }
                if bundle.meta.encoder.sha256 != encoder.meta.encoder_sha256 {
                    return Err(PipelineError::Weights {
                        dir: dir.clone(),
                        message: format!(
                            "the refiner ({}) was trained with encoder sha256 {}, but {} has {}",
                            ref_file.display(),
                            bundle.meta.encoder.sha256,
                            enc_file.display(),
                            encoder.meta.encoder_sha256
                        ),
                    });
                }
                (Some(bundle.hypernet), Some(bundle.meta.refiner_sha256))
            }
            None => (None, None),
        };
        let enc_size = encoder.encoder.config().input_size as u32;
        if enc_size != generator.config().size {
            return Err(PipelineError::Weights {
                dir,
                message: format!(
                    "the encoder takes {enc_size} px sketches but the generator makes {} px images",
                    generator.config().size
                ),
            });
        }
        let (selector, segmenter_hash) = match &manifest.select {
            Some(sel) => {
                let s_dir = resolve(&dir, &sel.segmenter)?;
                let bad = |message: String| PipelineError::Weights {
                    dir: dir.clone(),
                    message: format!("\"select\": segmenter {}: {message}", s_dir.display()),
                };
                if !(sel.threshold > 0.0 && sel.threshold < 1.0) {
                    return Err(bad(format!(
                        "threshold {} must lie in (0, 1)",
                        sel.threshold
                    )));
                }
                if !(sel.margin.is_finite() && sel.margin >= 0.0) {
                    return Err(bad(format!(
                        "margin {} must be a finite number >= 0",
                        sel.margin
                    )));
                }
                let segmenter = SoloV2Segmenter::load(&s_dir, sel.threshold, device)
                    .map_err(|e| bad(format!("{e:#}")))?;
                let hash = s2m_train::bundle::sha256_file(
                    &s_dir.join(sketch_synth::solov2::export::WEIGHTS_FILE),
                )
                .map_err(|e| bad(e.to_string()))?;
                (Some(segmenter), Some(hash))
            }
            None => (None, None),
        };
        let hashes = WeightHashes {
            generator: g_hash,
            encoder: encoder.meta.encoder_sha256.clone(),
            latent_avg: encoder.latent_avg_sha256.clone(),
            refiner: refiner_hash,
            segmenter: segmenter_hash,
        };
        Ok(Self {
            generator,
            encoder,
            refiner,
            steps: manifest.steps,
            device: device.clone(),
            dir,
            hashes,
            select: selector.is_some(),
            selector,
            manifest,
        })
    }

    /// Downloads (or finds in the hub cache) the pipeline of `repo_id` on the Hugging Face hub
    /// and loads it. `$SKETCH2MEDI_WEIGHTS`, if set, is used instead (local override). The repo
    /// holds `pipeline.json` at `subfolder` and the files it names.
    #[cfg(feature = "hub")]
    pub fn from_hub(repo_id: &str, subfolder: &str, device: &Device) -> Result<Self> {
        if let Some(dir) = std::env::var_os(WEIGHTS_ENV) {
            return Self::load_on(PathBuf::from(dir), device);
        }
        let dir = crate::hub::fetch_pipeline(repo_id, subfolder)?;
        Self::load_on(dir, device)
    }

    /// Image side in pixels.
    pub fn size(&self) -> u32 {
        self.generator.config().size
    }

    /// Default number of refinement steps T.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Changes how sketches are brought to the model's size (`None`: plain resize).
    pub fn with_normalisation(mut self, normalise: Option<NormaliseConfig>) -> Self {
        self.set_normalisation(normalise);
        self
    }

    /// [`Self::with_normalisation`] in place.
    pub fn set_normalisation(&mut self, normalise: Option<NormaliseConfig>) {
        self.manifest.normalise = normalise;
    }

    /// Changes the number of refinement steps (0 = encoder only; at most [`MAX_STEPS`]).
    pub fn with_steps(mut self, steps: usize) -> Result<Self> {
        check_steps(steps)?;
        self.steps = steps;
        Ok(self)
    }

    pub fn has_refiner(&self) -> bool {
        self.refiner.is_some()
    }

    /// Whether the image of each sketch is the step chosen by agreement with the sketch
    /// ([`SelectConfig`]) rather than the last step.
    pub fn selects_step(&self) -> bool {
        self.select && self.selector.is_some()
    }

    /// Switches the step selection on or off; on needs a manifest with `"select"`.
    pub fn set_step_selection(&mut self, on: bool) -> Result<()> {
        if on && self.selector.is_none() {
            return Err(PipelineError::Invalid(format!(
                "{}: the step selection needs \"select\" in {MANIFEST}",
                self.dir.display()
            )));
        }
        self.select = on;
        Ok(())
    }

    /// Per step image ŷ_0..ŷ_T of one sketch, its distance to the sketch ([`SelectConfig`];
    /// `None` where S found nothing or the sketch is blank), and the chosen step.
    fn choose_step(
        &self,
        segmenter: &SoloV2Segmenter,
        steps: &[RgbImage],
        sketch: &GrayImage,
    ) -> Result<(Vec<Option<f32>>, usize)> {
        let maps = segmenter
            .segment_images(steps)
            .map_err(|e| PipelineError::Invalid(format!("step selection: {e}")))?;
        let distances = maps
            .iter()
            .map(|m| sketch_distance(m, sketch))
            .collect::<Result<Vec<_>>>()?;
        let margin = self.manifest.select.as_ref().map_or(0.0, |s| s.margin);
        let chosen = select_step(&distances, margin);
        Ok((distances, chosen))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn weights_dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &PipelineManifest {
        &self.manifest
    }

    pub fn hashes(&self) -> &WeightHashes {
        &self.hashes
    }

    pub fn generator(&self) -> &Generator {
        self.generator.generator()
    }

    /// The prepared sketches as one `[B,1,size,size]` tensor in [-1, 1].
    fn sketch_tensor(&self, sketches: &[PreparedSketch]) -> Result<Tensor> {
        let t = sketches
            .iter()
            .map(|s| s2m_core::imageio::gray_to_tensor(&s.image, &self.device))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Tensor::stack(&t, 0)?)
    }

    fn prepare_all(&self, sketches: &[DynamicImage]) -> Result<Vec<PreparedSketch>> {
        if sketches.is_empty() {
            return Err(PipelineError::Invalid("no sketch given".into()));
        }
        sketches
            .iter()
            .map(|s| prepare_sketch_with(s, self.size(), self.manifest.normalise.as_ref()))
            .collect()
    }

    /// w = E(sketch) + latent_avg for each sketch, `[B, style_dim]`.
    fn embed_tensor(&self, sketch: &Tensor) -> Result<Tensor> {
        Ok(self.encoder.embed(sketch)?)
    }

    /// The latent w of a sketch (`style_dim` values): the encoder's embedding, usable for
    /// sketch-based retrieval (compare with cosine or L2 distance).
    pub fn embed(&self, sketch: &DynamicImage) -> Result<Vec<f32>> {
        let p = self.prepare_all(std::slice::from_ref(sketch))?;
        let w = self.embed_tensor(&self.sketch_tensor(&p)?)?;
        Ok(w.squeeze(0)?.to_vec1::<f32>()?)
    }

    /// Embeddings of many sketches, `[B, style_dim]` rows.
    pub fn embed_batch(&self, sketches: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let p = self.prepare_all(sketches)?;
        let w = self.embed_tensor(&self.sketch_tensor(&p)?)?;
        Ok(w.to_vec2::<f32>()?)
    }

    /// E, then T refinements: the images ŷ_0..ŷ_T `[B,3,H,W]` and the accumulated offsets
    /// behind each (none for ŷ_0).
    fn run(&self, sketch: &Tensor, w: &Tensor) -> Result<(Vec<Tensor>, Vec<WeightOffsets>)> {
        let w_plus = Encoder::to_w_plus(w, self.generator().n_latent())?;
        match &self.refiner {
            Some(h) if self.steps > 0 => {
                let out = hyperstyle_refiner::refine(
                    h,
                    self.generator(),
                    sketch,
                    &w_plus,
                    self.steps,
                    NoiseMode::Const,
                )?;
                let mut offsets = vec![WeightOffsets::new()];
                offsets.extend(out.step_offsets);
                Ok((out.images, offsets))
            }
            _ => {
                let y = self
                    .generator()
                    .forward(&GeneratorInput::w_plus(w_plus).with_noise(NoiseMode::Const))?;
                Ok((vec![y.image], vec![WeightOffsets::new()]))
            }
        }
    }

    /// Generates the image of one sketch (see [`Generation`]).
    pub fn generate(&self, sketch: &DynamicImage) -> Result<Generation> {
        Ok(self
            .generate_batch(std::slice::from_ref(sketch))?
            .pop()
            .expect("one sketch in, one generation out"))
    }

    /// Generates the images of many sketches in one batch.
    pub fn generate_batch(&self, sketches: &[DynamicImage]) -> Result<Vec<Generation>> {
        let prepared = self.prepare_all(sketches)?;
        let x = self.sketch_tensor(&prepared)?;
        let w = self.embed_tensor(&x)?;
        let (images, offsets) = self.run(&x, &w)?;
        let per_step = images
            .iter()
            .map(|t| s2m_core::imageio::tensor_to_rgb_batch(&t.clamp(-1f32, 1f32)?))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ws = w.to_vec2::<f32>()?;
        prepared
            .into_iter()
            .zip(ws)
            .enumerate()
            .map(|(i, (p, w))| {
                let steps: Vec<RgbImage> = per_step.iter().map(|s| s[i].clone()).collect();
                let (distances, chosen) = match (&self.selector, self.select) {
                    (Some(sel), true) if steps.len() > 1 => {
                        self.choose_step(sel, &steps, &p.image)?
                    }
                    _ => (Vec::new(), steps.len() - 1),
                };
                let offsets = offsets[chosen]
                    .slots()
                    .map(|(slot, d)| Ok((slot, d.narrow(0, i, 1)?)))
                    .collect::<Result<WeightOffsets>>()?;
                Ok(Generation {
                    image: steps[chosen].clone(),
                    w,
                    steps,
                    chosen_step: chosen,
                    distances,
                    sketch: p.image,
                    warnings: p.warnings,
                    offsets,
                })
            })
            .collect()
    }

    /// First W+ index of the "fine" styles that [`Sketch2MedI::variations`] re-draws: the
    /// layers of the two highest resolutions (colour, texture, lighting).
    pub fn fine_layers_start(&self) -> usize {
        self.generator().n_latent().saturating_sub(4)
    }

    /// `n` variations of one sketch: the refined generator with the sketch's w in the coarse
    /// and middle styles (shape) and w = mapping(z) of seeded random z in the fine styles
    /// (appearance), z from `s2m_core::rng::derive_seed(seed, 0, i)`.
    pub fn variations(&self, sketch: &DynamicImage, n: usize, seed: u64) -> Result<Vec<RgbImage>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.variations_of(&self.generate(sketch)?, n, seed)
    }

    /// [`Sketch2MedI::variations`] of a sketch already generated: reuses its w and refined
    /// weights instead of running E and H again.
    pub fn variations_of(
        &self,
        generation: &Generation,
        n: usize,
        seed: u64,
    ) -> Result<Vec<RgbImage>> {
        use s2m_core::rng::{derive_seed, randn_vec, rng_from_seed};
        if n == 0 {
            return Ok(Vec::new());
        }
        let s = self.generator.config().style_dim;
        let n_latent = self.generator().n_latent();
        let w = Tensor::from_slice(&generation.w, (1, s), &self.device)?;
        let z: Vec<f32> = (0..n)
            .flat_map(|i| randn_vec(&mut rng_from_seed(derive_seed(seed, 0, i as u64)), s))
            .collect();
        let z = Tensor::from_vec(z, (n, s), &self.device)?;
        let w_rand = self.generator().mapping(&z)?;
        let k = self.fine_layers_start();
        let coarse = w.unsqueeze(1)?.repeat((n, k, 1))?;
        let fine = w_rand.unsqueeze(1)?.repeat((1, n_latent - k, 1))?;
        let w_plus = Tensor::cat(&[coarse, fine], 1)?;
        // The sample's offsets have batch 1; the modulated convs broadcast them over the n.
        let mut input = GeneratorInput::w_plus(w_plus).with_noise(NoiseMode::Const);
        if !generation.offsets.is_empty() {
            input = input.with_offsets(&generation.offsets);
        }
        let y = self.generator().forward(&input)?;
        Ok(s2m_core::imageio::tensor_to_rgb_batch(
            &y.image.clamp(-1f32, 1f32)?,
        )?)
    }

    /// The provenance recorded in written images.
    pub fn provenance(&self, generation: &Generation, seed: Option<u64>) -> Provenance {
        Provenance {
            software: format!("sketch2medi {}", env!("CARGO_PKG_VERSION")),
            synthetic: true,
            notice: SYNTHETIC_NOTICE.to_string(),
            weights: self.hashes.clone(),
            weights_dir: self.dir.display().to_string(),
            steps: generation.steps.len().saturating_sub(1),
            chosen_step: generation.chosen_step,
            normalise: self.manifest.normalise.clone(),
            seed,
            warnings: generation.warnings.iter().map(|w| w.to_string()).collect(),
        }
    }

    /// Writes the generated image as a PNG with provenance text chunks (atomically).
    pub fn save_png(&self, generation: &Generation, path: impl AsRef<Path>) -> Result<()> {
        write_png_with_provenance(
            path.as_ref(),
            &generation.image,
            &self.provenance(generation, None),
        )
    }
}

/// Keyword of the iTXt chunk holding [`Provenance`] as JSON.
pub const PROVENANCE_KEY: &str = "sketch2medi:provenance";

/// The notice put into every written image.
pub const SYNTHETIC_NOTICE: &str = "Synthetic image generated by Sketch2MedI from a sketch. \
     It is not a photograph of a patient and must not be used for diagnosis.";

/// What a written image records about its origin (PNG text chunks: `Software`, `Disclaimer`,
/// `Source` as tEXt, and [`PROVENANCE_KEY`], this struct as JSON, as iTXt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    pub software: String,
    pub synthetic: bool,
    pub notice: String,
    pub weights: WeightHashes,
    pub weights_dir: String,
    pub steps: usize,
    /// The step whose image was written (`steps` unless the step selection chose another).
    pub chosen_step: usize,
    /// How the sketch was brought to the model's size (`None`: a plain resize).
    pub normalise: Option<NormaliseConfig>,
    pub seed: Option<u64>,
    pub warnings: Vec<String>,
}

/// Writes `image` to `path` as PNG with the provenance text chunks, atomically.
pub fn write_png_with_provenance(path: &Path, image: &RgbImage, prov: &Provenance) -> Result<()> {
    let file_err = |message: String| PipelineError::File {
        path: path.to_path_buf(),
        message,
    };
    let json = serde_json::to_string(prov).map_err(|e| file_err(e.to_string()))?;
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, image.width(), image.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let chunks = [
            ("Software", prov.software.clone()),
            ("Disclaimer", prov.notice.clone()),
            (
                "Source",
                format!(
                    "generator sha256 {}, encoder sha256 {}, latent_avg sha256 {}, \
                     refiner sha256 {}",
                    prov.weights.generator,
                    prov.weights.encoder,
                    prov.weights.latent_avg,
                    prov.weights.refiner.as_deref().unwrap_or("none")
                ),
            ),
        ];
        for (k, v) in chunks {
            enc.add_text_chunk(k.to_string(), v)
                .map_err(|e| file_err(e.to_string()))?;
        }
        // UTF-8 (iTXt): paths and warnings need not be Latin-1.
        enc.add_itxt_chunk(PROVENANCE_KEY.to_string(), json)
            .map_err(|e| file_err(e.to_string()))?;
        let mut writer = enc.write_header().map_err(|e| file_err(e.to_string()))?;
        writer
            .write_image_data(image.as_raw())
            .map_err(|e| file_err(e.to_string()))?;
        writer.finish().map_err(|e| file_err(e.to_string()))?;
    }
    s2m_core::fsio::atomic_write(path, &bytes).map_err(|e| file_err(e.to_string()))
}

/// Reads the `sketch2medi:provenance` JSON back from a PNG written by
/// [`write_png_with_provenance`] (`None` when the file has none).
pub fn read_provenance(path: &Path) -> Result<Option<serde_json::Value>> {
    let file_err = |message: String| PipelineError::File {
        path: path.to_path_buf(),
        message,
    };
    let f = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let reader = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .map_err(|e| file_err(format!("not a PNG: {e}")))?;
    let info = reader.info();
    for t in &info.utf8_text {
        if t.keyword == PROVENANCE_KEY {
            let text = t.get_text().map_err(|e| file_err(e.to_string()))?;
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| file_err(format!("bad provenance JSON: {e}")));
        }
    }
    Ok(None)
}

/// Where [`Sketch2MedI::load_default`] looks (see there).
pub fn default_weights_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(WEIGHTS_ENV) {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from(DEFAULT_WEIGHTS);
    if here.join(MANIFEST).is_file() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS)
}
