//! Training losses of Sketch2MedI and the perceptual networks shared with `metrics`:
//!
//! - [`l2`]: MSE (`F.mse_loss`);
//! - [`lpips`]: LPIPS v0.1 alex/vgg (the `lpips` package) over `backbones` trunks;
//! - [`stlpips`]: ST-LPIPS alex/vgg (the `stlpips-pytorch` package), anti-aliased trunks;
//! - [`dists`]: DISTS (the `dists-pytorch` package), differentiable;
//! - [`moco`]: the MoCo-v2 cosine loss of pSp/e4e/HyperStyle (`criteria/moco_loss.py`);
//! - [`gan`]: non-saturating logistic GAN losses and a generic R1 penalty (rosinality);
//! - [`similarity`]: the paper's `L_sim = l2 L2 + lpips LPIPS + cos (1 - cos)`;
//! - [`weights`]: weight file names, the shipped `weights/` folder, how to obtain each file;
//! - [`checks`], [`ops`]: input validation and the differentiable pieces (reflection pad,
//!   BlurPool, channel normalisation).
//!
//! Images are NCHW in [-1, 1] (DISTS: [0, 1], as its reference). Every network runs in eval
//! mode with frozen weights; gradients flow to the inputs. See `docs/LOSSES.md` for parity
//! against the Python packages, gradient checks and speed.

pub mod checks;
pub mod dists;
pub mod error;
pub mod gan;
pub mod l2;
pub mod lpips;
pub mod moco;
pub mod ops;
pub mod similarity;
pub mod stlpips;
pub mod weights;

pub use dists::Dists;
pub use error::{LossError, Result};
pub use gan::{R1Output, d_logistic_loss, g_nonsaturating_loss, r1_penalty};
pub use l2::l2_loss;
pub use lpips::{LinLayers, Lpips, LpipsNet};
pub use moco::{MocoConfig, MocoLoss};
pub use similarity::{Perceptual, SimilarityLoss, SimilarityTerms};
pub use stlpips::{StAlexTrunk, StLpips, StVggTrunk};
