//! Fuzzing the inputs sketch2medi reads from users: sketch image files (decoding and the
//! preparation for the model), `pipeline.json`, training checkpoints and safetensors weights.
//!
//! - [`Target`]: one function per input kind, which must return (an error is fine) for every
//!   byte string: no panic, no abort, bounded memory and time.
//! - [`campaign`]: a seeded mutation runner on stable Rust (bit flips, byte and boundary-value
//!   writes, deletions, duplications, insertions, splices between corpus entries, PNG chunk
//!   CRCs repaired so that mutations reach the decoder), which CI runs for a bounded count and
//!   which the `s2m-fuzz` binary runs for as long as one likes.
//! - `fuzz/` at the workspace root holds the same targets for `cargo fuzz` (libFuzzer,
//!   nightly Rust).
//!
//! ```no_run
//! let report = s2m_fuzz::campaign(s2m_fuzz::Target::Sketch, 1_000, 7, &[]);
//! assert!(report.panics.is_empty());
//! ```

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

use rand::Rng as _;
use s2m_core::rng::{Rng, rng_from_seed};

/// An input kind under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A sketch file's bytes: `decode_sketch`, then `prepare_sketch` (plain resize) and
    /// `prepare_sketch_with` (the shipped normalisation) at 64 px.
    Sketch,
    /// A `pipeline.json`: `PipelineManifest::parse`.
    PipelineJson,
    /// A training checkpoint: `Checkpoint::from_bytes`, then its RNG states and config.
    Checkpoint,
    /// A safetensors weights file: candle's loader, then the NaN/Inf check every weights
    /// loader runs (`s2m_train::bundle::check_finite`).
    Safetensors,
}

/// The model size the sketch target prepares for.
const SKETCH_SIZE: u32 = 64;

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Sketch,
        Target::PipelineJson,
        Target::Checkpoint,
        Target::Safetensors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Sketch => "sketch",
            Target::PipelineJson => "pipeline_json",
            Target::Checkpoint => "checkpoint",
            Target::Safetensors => "safetensors",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target on one input: `Ok` when the input was accepted, `Err` with the message
    /// when it was refused. A panic propagates (the runner catches it).
    pub fn run(self, bytes: &[u8]) -> Result<(), String> {
        let what = Path::new("fuzz-input");
        match self {
            Target::Sketch => {
                let image = sketch2medi::decode_sketch(bytes, what).map_err(|e| e.to_string())?;
                sketch2medi::prepare_sketch(&image, SKETCH_SIZE).map_err(|e| e.to_string())?;
                let cfg =
                    sketch2medi::sketch_synth::normalise::NormaliseConfig::for_size(SKETCH_SIZE);
                sketch2medi::prepare_sketch_with(&image, SKETCH_SIZE, Some(&cfg))
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
            Target::PipelineJson => {
                let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
                sketch2medi::PipelineManifest::parse(text, what).map_err(|e| e.to_string())?;
                Ok(())
            }
            Target::Checkpoint => {
                let ck = s2m_train::checkpoint::Checkpoint::from_bytes(bytes, what)
                    .map_err(|e| e.to_string())?;
                for name in ck.meta.rng.keys() {
                    ck.rng(name).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Target::Safetensors => {
                let tensors =
                    candle_core::safetensors::load_buffer(bytes, &candle_core::Device::Cpu)
                        .map_err(|e| e.to_string())?;
                s2m_train::bundle::check_finite(what, &tensors).map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    /// Valid inputs to start mutating from, built in code (no files needed).
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Target::Sketch => seeds::sketches(),
            Target::PipelineJson => seeds::manifests(),
            Target::Checkpoint => seeds::checkpoints(),
            Target::Safetensors => seeds::safetensors(),
        }
    }
}

/// An input on which a target panicked.
#[derive(Debug, Clone)]
pub struct Finding {
    pub input: Vec<u8>,
    pub message: String,
}

/// What a [`campaign`] did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: Target,
    pub seed: u64,
    /// Inputs run.
    pub inputs: u64,
    /// Inputs the target accepted (the rest were refused with an error).
    pub accepted: u64,
    /// Inputs on which the target panicked.
    pub panics: Vec<Finding>,
    pub seconds: f64,
    /// The slowest single input, in milliseconds, and the input.
    pub slowest_ms: f64,
    pub slowest_input: Vec<u8>,
    /// Peak resident memory of the process (Linux `VmHWM`), MiB; `None` elsewhere.
    pub peak_rss_mib: Option<f64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} inputs (seed {}), {} accepted, {} refused, {} panics; {:.2} s, slowest input \
             {:.1} ms, peak RSS {}",
            self.target.name(),
            self.inputs,
            self.seed,
            self.accepted,
            self.inputs - self.accepted - self.panics.len() as u64,
            self.panics.len(),
            self.seconds,
            self.slowest_ms,
            self.peak_rss_mib
                .map_or("n/a".into(), |m| format!("{m:.0} MiB"))
        )
    }
}

/// The largest input the mutator produces.
pub const MAX_INPUT: usize = 1 << 20;
/// Inputs kept in the corpus at most (seeds, extra inputs and accepted mutants).
const MAX_CORPUS: usize = 256;

/// Runs `count` mutated inputs through `target`, seeded: the same `(target, count, seed,
/// extra)` runs the same inputs. `extra` adds corpus entries (e.g. a regression corpus).
/// Accepted mutants join the corpus (up to a bound), so mutations keep reaching past the
/// parsers' first checks. Panics are caught and reported with their input; the panic hook is
/// silenced meanwhile.
pub fn campaign(target: Target, count: u64, seed: u64, extra: &[Vec<u8>]) -> Report {
    let mut corpus = target.seeds();
    corpus.extend(extra.iter().cloned());
    let mut rng = rng_from_seed(seed);
    let mut report = Report {
        target,
        seed,
        inputs: 0,
        accepted: 0,
        panics: Vec::new(),
        seconds: 0.0,
        slowest_ms: 0.0,
        slowest_input: Vec::new(),
        peak_rss_mib: None,
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for _ in 0..count {
        let parent = rng.random_range(0..corpus.len());
        let input = mutate(&mut rng, &corpus[parent], &corpus);
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| target.run(&input)));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if ms > report.slowest_ms {
            report.slowest_ms = ms;
            report.slowest_input = input.clone();
        }
        report.inputs += 1;
        match outcome {
            Ok(Ok(())) => {
                report.accepted += 1;
                if corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                } else if rng.random_bool(0.05) {
                    let i = rng.random_range(0..corpus.len());
                    corpus[i] = input;
                }
            }
            Ok(Err(_)) => {}
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                report.panics.push(Finding { input, message });
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    std::panic::set_hook(hook);
    report.peak_rss_mib = peak_rss_mib();
    report
}

/// Peak resident set size of this process (`VmHWM` of `/proc/self/status`), MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

const INTERESTING: [u32; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0xffff_ffff,
    16385,
];

/// One mutant of `input`: 1 to 8 stacked edits, sometimes a splice with another corpus
/// entry, at most [`MAX_INPUT`] bytes; PNG chunk CRCs are repaired half of the time.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    let edits = 1 << rng.random_range(0..4u32);
    for _ in 0..edits {
        let len = out.len();
        match rng.random_range(0..9u32) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8u32);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 if len >= 4 => {
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let bytes = if rng.random_bool(0.5) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let width = [1usize, 2, 4][rng.random_range(0..3)];
                let i = rng.random_range(0..=len - width);
                let src = if rng.random_bool(0.5) {
                    &bytes[4 - width..]
                } else {
                    &bytes[..width]
                };
                out[i..i + width].copy_from_slice(src);
            }
            3 if len > 1 => {
                let a = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - a).min(64));
                out.drain(a..a + n);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - a).min(64));
                let chunk = out[a..a + n].to_vec();
                let at = rng.random_range(0..=len);
                out.splice(at..at, chunk);
            }
            5 => {
                let n = rng.random_range(1..=32);
                let at = rng.random_range(0..=len);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            6 if len > 1 => {
                out.truncate(rng.random_range(0..len));
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() && len > 0 {
                    let cut = rng.random_range(0..len);
                    let from = rng.random_range(0..other.len());
                    out.truncate(cut);
                    out.extend_from_slice(&other[from..]);
                }
            }
            8 if len > 0 => {
                // Text inputs: replace a byte by a JSON-significant one.
                let i = rng.random_range(0..len);
                out[i] = b"{}[]\",:-0123456789.eE naftu"[rng.random_range(0..27)];
            }
            _ => {}
        }
    }
    out.truncate(MAX_INPUT);
    if rng.random_bool(0.5) {
        repair_png_crcs(&mut out);
    }
    out
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Recomputes the CRC of every complete chunk of a PNG, so that a mutated chunk reaches the
/// decoder instead of failing its checksum.
pub fn repair_png_crcs(bytes: &mut [u8]) {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return;
    }
    let mut at = PNG_SIGNATURE.len();
    while at + 8 <= bytes.len() {
        let len =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= bytes.len()) else {
            return;
        };
        let crc = crc32fast::hash(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

mod seeds {
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    /// A throat-like sketch: an arch and two loops, dark ink on white.
    fn arch(size: u32) -> GrayImage {
        let mut img = GrayImage::from_pixel(size, size, Luma([255]));
        let c = size as f32 / 2.0;
        for i in 0..400 {
            let a = std::f32::consts::PI * i as f32 / 400.0;
            let (x, y) = (c + 0.4 * c * a.cos(), c - 0.5 * c * a.sin() + 0.2 * c);
            if x >= 0.0 && y >= 0.0 && (x as u32) < size && (y as u32) < size {
                img.put_pixel(x as u32, y as u32, Luma([0]));
            }
            let (x, y) = (
                0.5 * c + 0.1 * c * (2.0 * a).cos(),
                c + 0.15 * c * (2.0 * a).sin(),
            );
            if (x as u32) < size && (y as u32) < size {
                img.put_pixel(x as u32, y as u32, Luma([20]));
            }
        }
        img
    }

    fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encoding a seed");
        out.into_inner()
    }

    pub fn sketches() -> Vec<Vec<u8>> {
        use image::{DynamicImage, ImageFormat};
        let g = arch(64);
        let rgb = RgbImage::from_fn(48, 48, |x, y| {
            let v = g.get_pixel(x, y).0[0];
            Rgb([v, v, 255 - (x as u8)])
        });
        let rgba = RgbaImage::from_fn(40, 24, |x, y| Rgba([x as u8, y as u8, 200, 128]));
        vec![
            encode(DynamicImage::ImageLuma8(g.clone()), ImageFormat::Png),
            encode(DynamicImage::ImageLuma8(arch(16)), ImageFormat::Png),
            encode(DynamicImage::ImageRgb8(rgb.clone()), ImageFormat::Png),
            encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
            encode(
                DynamicImage::ImageLuma16(DynamicImage::ImageLuma8(g.clone()).to_luma16()),
                ImageFormat::Png,
            ),
            encode(DynamicImage::ImageLuma8(g), ImageFormat::Jpeg),
            encode(DynamicImage::ImageRgb8(rgb), ImageFormat::Jpeg),
        ]
    }

    pub fn manifests() -> Vec<Vec<u8>> {
        vec![
            include_bytes!("../../../weights/sketch2medi_phantom64/pipeline.json").to_vec(),
            br#"{"format": "sketch2medi-pipeline/1", "generator": "g.safetensors", "encoder": "e", "refiner": null, "steps": 0}"#.to_vec(),
        ]
    }

    pub fn checkpoints() -> Vec<Vec<u8>> {
        use candle_core::{Device, Tensor};
        use s2m_train::checkpoint::{Checkpoint, CheckpointMeta, RngState};
        let mut meta = CheckpointMeta::new(12, 3);
        meta.config = serde_json::json!({"batch": 8, "lr": 0.002, "model": {"size": 64}});
        meta.rng.insert(
            "train".into(),
            RngState::capture(&s2m_core::rng::rng_from_seed(5)),
        );
        meta.extra
            .insert("generator_sha256".into(), "ab".repeat(32).into());
        let mut ck = Checkpoint::new(meta);
        let w = Tensor::arange(0f32, 24.0, &Device::Cpu)
            .and_then(|t| t.reshape((2, 3, 4)))
            .expect("seed tensor");
        let b = Tensor::new(&[1u32, 2, 3], &Device::Cpu).expect("seed tensor");
        ck.add_tensors("g", [("conv.weight", &w), ("steps", &b)])
            .expect("seed checkpoint");
        vec![ck.to_bytes().expect("seed checkpoint")]
    }

    pub fn safetensors() -> Vec<Vec<u8>> {
        use candle_core::{DType, Device, Tensor};
        let dev = Device::Cpu;
        [DType::F32, DType::F16, DType::U8]
            .into_iter()
            .map(|dtype| {
                let t = Tensor::arange(0f32, 12.0, &dev)
                    .and_then(|t| t.reshape((3, 4)))
                    .and_then(|t| t.to_dtype(dtype))
                    .expect("seed tensor");
                safetensors::serialize([("layer.weight", &t)], None).expect("seed safetensors")
            })
            .collect()
    }
}
