//! The realism term: the non-saturating GAN loss of the generator's own discriminator D,
//! frozen, on the refined images (NOTE: not in HyperStyle or the paper). It counters H's drift
//! towards blurred, average images at t >= 2 (docs/ENCODER_REFINER.md).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use hyperstyle_refiner::Result;
use s2m_train::TrainError;
use s2m_train::bundle::sha256_file;
use serde::{Deserialize, Serialize};
use stylegan2::{Discriminator, StyleGan2Config};

/// The minibatch-stddev group of rosinality's discriminator.
pub const DISCRIMINATOR_GROUP: usize = 4;

/// A frozen StyleGAN2 discriminator used as a realism prior ([`crate::AidsConfig::adv_lambda`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorRef {
    /// The file given (a `sketch2medi stylegan2 train` checkpoint, or a file of the
    /// discriminator's tensors alone).
    pub file: String,
    /// sha256 of that file.
    pub sha256: String,
}

/// Loads the discriminator of the generator config `gen_cfg` from `path`: a StyleGAN2
/// training checkpoint (its `d.*` tensors) or a safetensors file of the discriminator's
/// tensors under rosinality's names. Its weights are plain tensors (never trained here).
/// Errors name the file and, for a missing or mis-shaped tensor, the key.
pub fn load_discriminator(
    path: &Path,
    gen_cfg: &StyleGan2Config,
    device: &Device,
) -> Result<(Discriminator, DiscriminatorRef)> {
    let bad = |message: String| TrainError::Bundle {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(bad("the discriminator file does not exist".into()).into());
    }
    let sha256 = sha256_file(path)?;
    // Read on the CPU: a training checkpoint also holds G and the optimisers' states, and only
    // D's tensors go to `device`.
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| bad(format!("unreadable safetensors: {e}")))?;
    let prefix = if tensors.keys().any(|k| k.starts_with("d.")) {
        "d."
    } else {
        ""
    };
    let mut d_tensors = HashMap::new();
    for (k, v) in tensors {
        if let Some(name) = k.strip_prefix(prefix) {
            d_tensors.insert(name.to_string(), v.to_device(device)?);
        }
    }
    let vb = candle_nn::VarBuilder::from_tensors(d_tensors, DType::F32, device);
    let d = Discriminator::new(gen_cfg, vb).map_err(|e| {
        bad(format!(
            "not a discriminator for generator config {gen_cfg:?}: {e}"
        ))
    })?;
    Ok((
        d,
        DiscriminatorRef {
            file: path.display().to_string(),
            sha256,
        },
    ))
}

/// The non-saturating GAN loss `mean softplus(-D(image))` of a frozen discriminator: low when
/// `D` finds the images real. Its gradient reaches `image` only.
pub fn realism_loss(d: &Discriminator, image: &Tensor) -> Result<Tensor> {
    let logits = d.forward(image)?;
    Ok(s2m_train::gan::g_nonsaturating_loss(&logits)?)
}
