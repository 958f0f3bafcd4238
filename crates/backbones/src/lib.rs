//! ImageNet-style backbones under torchvision parameter names, returning the intermediate
//! feature maps their users need (LPIPS, DISTS, ST-LPIPS and FID in `metrics`/`losses`, MoCo
//! similarity and the pSp/e4e/HyperStyle encoders).
//!
//! - [`resnet`]: torchvision ResNet-18/34/50/101 (stem, C2..C5, pooled vector, optional fc).
//! - [`vgg`]: torchvision VGG16 `features` with LPIPS/DISTS taps (max or L2 pooling).
//! - [`alexnet`]: torchvision AlexNet `features` with LPIPS taps.
//! - [`irse`]: IR-SE-50 (pSp/e4e `input_layer`, `body.N`) with SE blocks and PReLU.
//! - [`inception`]: pytorch-fid's FID Inception-v3 (FIDInceptionA/C/E, resize to 299, pool3).
//! - [`ops`]: differentiable max/avg pooling (kernel != stride), L2 pooling, bilinear resize.
//! - [`norm`]: BatchNorm2d with frozen (eval) and batch (train) statistics.
//! - [`weights`]: safetensors loading with key/shape verification before building.
//! - [`synthetic`]: the deterministic weight formula shared with the PyTorch fixture generator.
//!
//! All models take NCHW tensors; no model normalises its input (callers apply the ImageNet or
//! LPIPS scaling they need). See `docs/BACKBONES.md` for parity errors against PyTorch.

pub mod alexnet;
pub mod error;
pub mod fast;
pub mod features;
pub mod inception;
pub mod irse;
pub mod norm;
pub mod ops;
pub mod resnet;
pub mod synthetic;
pub mod vgg;
pub mod weights;

pub use alexnet::AlexNetFeatures;
pub use error::{BackboneError, Result};
pub use features::FeatureMaps;
pub use inception::{FidInceptionConfig, FidInceptionV3};
pub use irse::{IR_SE_WIDTHS, IrSe, IrSeConfig};
pub use norm::BatchNorm2d;
pub use resnet::{ExtraChannelInit, ResNet, ResNetConfig, ResNetDepth};
pub use vgg::{Vgg16Config, Vgg16Features, VggPool};
