//! The image-to-image baselines of the paper's Table I, ported from their official PyTorch code
//! with the official state-dict keys (converted checkpoints load without remapping):
//!
//! - [`pix2pix`]: U-Net generator + PatchGAN on the (sketch, image) pair (junyanz
//!   `pytorch-CycleGAN-and-pix2pix`, `models/networks.py`, `models/pix2pix_model.py`);
//! - [`cyclegan`]: two ResNet generators (InstanceNorm, reflection padding) + two PatchGANs
//!   with InstanceNorm, LSGAN, cycle and identity losses, the 50-image pool (same repository,
//!   `models/cycle_gan_model.py`, `util/image_pool.py`);
//! - UNIT, U-GAT-IT: not yet (issue 18), they will reuse [`layers`].
//!
//! [`layers`] holds the building blocks (zero/reflection-padded conv, ConvTranspose2d,
//! BatchNorm2d with running statistics, InstanceNorm2d, seeded dropout, LeakyReLU 0.2, Tanh);
//! [`weights`] reads state-dict safetensors with errors naming the key. Parity numbers against
//! the official code and the converter command: `docs/BASELINES.md`.
//!
//! ```
//! use baselines::layers::ForwardMode;
//! use baselines::pix2pix::{Pix2Pix, Pix2PixConfig};
//! use candle_core::{Device, Tensor};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = Pix2Pix::seeded(&Pix2PixConfig::tiny_64(), 7, &Device::Cpu)?;
//! let sketch = Tensor::zeros((1, 1, 64, 64), candle_core::DType::F32, &Device::Cpu)?;
//! let image = model.generate(&sketch, &mut ForwardMode::eval())?;
//! assert_eq!(image.dims(), &[1, 3, 64, 64]);
//! # Ok(()) }
//! ```

pub mod cyclegan;
pub mod error;
pub mod layers;
pub mod pix2pix;
mod train_common;
pub mod weights;

pub use error::{BaselinesError, Result};
