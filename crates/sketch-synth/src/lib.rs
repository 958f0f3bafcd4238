//! Sketch synthesis for Sketch2MedI.
//!
//! Sketch2MedI turns a physician's free-hand sketch of a throat into a realistic image. Its
//! training sketches are the contours of instance masks (uvula, pharyngeal wall, tonsil,
//! tongue) drawn as dark anti-aliased strokes on white; at test time the sketches are human
//! free-hand drawings, misaligned and abstract. This crate makes both:
//!
//! - [`contour`]: training sketches from instance masks or label maps ([`render_sketch`],
//!   [`render_label_map`]), built on [`contour_strokes`] and the tiny-skia stroke rasteriser
//!   [`draw_strokes`];
//! - [`freehand`]: a free-hand sketch simulator ([`simulate_freehand`]) driven by a
//!   [`DrawerStyle`], with twelve calibrated built-in styles ([`drawer_styles`]) and five
//!   part-wise ones ([`partwise_styles`]);
//! - [`augment`]: seeded free-hand augmentation of training sketches ([`augment::augment_sketch`]);
//! - [`chamfer`]: chamfer distances between drawings, used to calibrate and check styles.
//!
//! All pixel parameters are given at 256 px and scaled by `size / 256`. Every function is
//! deterministic: the same inputs and the same seeded [`s2m_core::rng::Rng`] give
//! byte-identical output. See `docs/SKETCHES.md` for the styles and the chamfer definition.

pub mod augment;
pub mod chamfer;
pub mod contour;
#[doc(hidden)]
pub mod demo;
pub mod error;
pub mod freehand;
mod noise;
pub mod normalise;
mod polyline;
pub mod raster;
pub mod solov2;
pub mod stroke;
pub mod style;

pub use chamfer::{chamfer_distance, chamfer_to_true_contours, directed_chamfer, true_contours};
pub use contour::{
    MIN_PEN_PX, SketchConfig, contour_strokes, pen_width_px, render_label_map, render_sketch,
    resolution_scale,
};
pub use error::{Result, SketchError};
pub use freehand::{FreehandSketch, simulate_freehand, simulate_freehand_label_map};
pub use raster::{draw_strokes, is_blank};
pub use stroke::Stroke;
pub use style::{DrawerStyle, drawer_styles, partwise_styles};
