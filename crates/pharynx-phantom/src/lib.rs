//! The procedural pharynx phantom: a seeded generator of photo-like throat images as seen by a
//! pharyngeal camera through the open mouth, with instance masks of the paper's four classes
//! (uvula, pharyngeal wall, tonsils, tongue), dataset folders with the paper's splits, and a
//! loader that turns them into batched candle tensors.
//!
//! It stands in for the private data of Sketch2MedI (Cap & Fukuda): 60,000 photographs, 2,000
//! with expert masks, and 495 human free-hand sketches. See `docs/DATASET.md`.
//!
//! ```no_run
//! use pharynx_phantom::{PhantomParams, render};
//! let mut rng = s2m_core::rng::rng_from_seed(42);
//! let phantom = render(&PhantomParams::sample(&mut rng), 256).unwrap();
//! phantom.image.save("throat.png").unwrap();
//! ```

pub mod contact;
pub mod error;
pub mod export;
pub mod layout;
pub mod loader;
pub mod manifest;
pub mod params;
pub mod render;
pub mod sample;
pub mod scene;
pub mod texture;

pub use contact::contact_sheet;
pub use error::{PhantomError, Result};
pub use export::{BuildConfig, BuildReport, Counts, MAX_SCALE, build_dataset};
pub use loader::{Batch, DatasetSource, Loader, LoaderConfig, LoaderError};
pub use params::PhantomParams;
pub use render::{MAX_SIZE, Phantom, check_size, render};
pub use sample::{Sample, Stream, generate};
