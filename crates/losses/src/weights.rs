//! Weight files of the perceptual networks: their names in a weights folder, where each one
//! comes from, and loading with a clear error when one is missing.
//!
//! Shipped with the repository (converted from PyPI wheels by
//! `tools/convert_perceptual_weights.py`, licences in `weights/licenses/`, see `weights/README.md`):
//! [`LPIPS_ALEX_LIN`], [`LPIPS_VGG_LIN`], [`STLPIPS_ALEX`], [`DISTS_ALPHA_BETA`].
//! Supplied by the user (not redistributable or too large): [`ALEXNET_TRUNK`], [`VGG16_TRUNK`],
//! [`MOCO_V2`], [`STLPIPS_VGG`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{LossError, Result};

/// LPIPS v0.1 alex linear layers (`lin0..lin4.model.1.weight`), from the `lpips` 0.1.4 wheel.
pub const LPIPS_ALEX_LIN: &str = "lpips_v0.1_alex_lin.safetensors";
/// LPIPS v0.1 vgg linear layers, from the `lpips` 0.1.4 wheel.
pub const LPIPS_VGG_LIN: &str = "lpips_v0.1_vgg_lin.safetensors";
/// The complete ST-LPIPS alex network, from the `stlpips-pytorch` 0.0.2 wheel.
pub const STLPIPS_ALEX: &str = "stlpips_alex.safetensors";
/// The complete ST-LPIPS vgg network (59 MB, not committed; converter writes it on request).
pub const STLPIPS_VGG: &str = "stlpips_vgg.safetensors";
/// DISTS `alpha` and `beta` (`[1, 1475, 1, 1]` each), from the `dists-pytorch` 0.1 wheel.
pub const DISTS_ALPHA_BETA: &str = "dists_alpha_beta.safetensors";
/// torchvision AlexNet IMAGENET1K_V1 (`alexnet-owt-7be5be79.pth`), converted.
pub const ALEXNET_TRUNK: &str = "alexnet.safetensors";
/// torchvision VGG16 IMAGENET1K_V1 (`vgg16-397923af.pth`), converted.
pub const VGG16_TRUNK: &str = "vgg16.safetensors";
/// MoCo-v2 ResNet-50 (`moco_v2_800ep_pretrain.pth.tar`), converted with `--moco`.
pub const MOCO_V2: &str = "moco_v2_resnet50.safetensors";

/// The repository's `weights/` folder (where the shipped files live), fixed at compile time.
pub fn shipped_weights_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../weights")
}

/// How to obtain the weight file called `file_name` (one of this module's constants).
pub fn how_to_get(file_name: &str) -> String {
    let torchvision = |src: &str, enum_name: &str| {
        format!(
            "download the torchvision ImageNet weights {src} ({enum_name}) and convert them with \
             `python3 tools/backbones_convert.py {src} weights/{file_name}` (needs torch + \
             safetensors; see docs/BACKBONES.md)"
        )
    };
    match file_name {
        LPIPS_ALEX_LIN | LPIPS_VGG_LIN | STLPIPS_ALEX | DISTS_ALPHA_BETA => {
            "it is shipped in the repository's weights/ folder; regenerate it with \
             `python3 tools/convert_perceptual_weights.py --out weights` after `pip install \
             torch safetensors lpips dists-pytorch stlpips-pytorch` (see weights/README.md)"
                .to_string()
        }
        STLPIPS_VGG => "not committed (59 MB): `pip install torch safetensors stlpips-pytorch`, \
             then `python3 tools/convert_perceptual_weights.py --out weights --stlpips-vgg`"
            .to_string(),
        ALEXNET_TRUNK => torchvision(
            "alexnet-owt-7be5be79.pth",
            "torchvision.models.AlexNet_Weights.IMAGENET1K_V1",
        ),
        VGG16_TRUNK => torchvision(
            "vgg16-397923af.pth",
            "torchvision.models.VGG16_Weights.IMAGENET1K_V1",
        ),
        MOCO_V2 => "download the official MoCo-v2 checkpoint moco_v2_800ep_pretrain.pth.tar \
             (facebookresearch/moco) and convert it with `python3 tools/backbones_convert.py \
             --moco moco_v2_800ep_pretrain.pth.tar weights/moco_v2_resnet50.safetensors`"
            .to_string(),
        _ => "see weights/README.md".to_string(),
    }
}

/// Errors with [`LossError::MissingWeights`] (naming the file and how to get it) unless `path`
/// is an existing file.
pub fn require_file(path: &Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Err(LossError::MissingWeights {
        path: path.to_path_buf(),
        how: how_to_get(&name),
    })
}

/// Reads every tensor of the safetensors file at `path` (missing file -> [`LossError::MissingWeights`]).
pub fn read(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    require_file(path)?;
    Ok(backbones::weights::read_safetensors(path, device)?)
}
