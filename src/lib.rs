//! # sketch2medi
//!
//! A Rust/candle implementation of Sketch2MedI (Cap & Fukuda, "High-Quality Medical Image
//! Generation from Free-hand Sketch"): a physician's free-hand sketch of a throat in, a
//! realistic pharyngeal image out. This facade crate re-exports the workspace's crates and
//! holds the `sketch2medi` command line.
//!
//! What is here: the procedural pharynx phantom with instance masks, sketch synthesis and the
//! free-hand simulator, the SOLOv2 synthesizer S, the StyleGAN2 generator G, the encoder E, the
//! refiner H, the backbones, losses and Table I metrics, and the one-call pipeline
//! [`Sketch2MedI`]. See `docs/ARCHITECTURE.md` for the crates and the data flow.
//!
//! ```no_run
//! use sketch2medi::pharynx_phantom::{Stream, generate};
//! use sketch2medi::sketch_synth::SketchConfig;
//! // Sample 7 of the generation set of seed 0, at 256 px, with its synthesized sketch.
//! let sample = generate(0, Stream::Train, 7, 256, &SketchConfig::default()).unwrap();
//! sample.phantom.image.save("throat.png").unwrap();
//! sample.sketch.save("sketch.png").unwrap();
//! ```

pub use e4e_encoder;
pub use hyperstyle_refiner;
pub use metrics;
pub use pharynx_phantom;
pub use s2m_core;
pub use sketch_synth;
pub use stylegan2;

pub mod allocator;
#[cfg(feature = "hub")]
pub mod hub;
pub mod pipeline;
pub mod segmenter;
pub mod threads;
pub mod timing;

pub use pipeline::{
    Generation, PipelineError, PipelineManifest, Sketch2MedI, SketchWarning, decode_sketch,
    load_sketch, prepare_sketch, prepare_sketch_with,
};
