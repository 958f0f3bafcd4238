//! Seeded initialisation of fresh models with rosinality's init rules (weights N(0,1) or
//! N(0, 1/lr_mul²), modulation biases 1, other biases and noise strengths 0, noise buffers
//! N(0,1)). candle's CPU RNG cannot be seeded, so values come from `s2m_core::rng`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use s2m_core::rng::{Rng, randn_vec};

use crate::config::StyleGan2Config;
use crate::discriminator::Discriminator;
use crate::error::Result;
use crate::generator::Generator;
use crate::weights::{KeyKind, KeySpec, discriminator_keys, generator_keys, split_params};

/// Initial values for every key of `keys` (kernels included) in rosinality's init.
pub fn init_tensors(
    keys: &[KeySpec],
    taps: &[f32],
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for k in keys {
        let n: usize = k.shape.iter().product();
        let v: Vec<f32> = match k.kind {
            KeyKind::Randn { std } => randn_vec(rng, n)
                .into_iter()
                .map(|x| x * std as f32)
                .collect(),
            KeyKind::Const(c) => vec![c as f32; n],
            KeyKind::Noise => randn_vec(rng, n),
            KeyKind::Kernel { factor } => crate::ops::make_kernel(taps, factor),
        };
        out.insert(
            k.name.clone(),
            Tensor::from_vec(v, k.shape.as_slice(), dev)?.to_dtype(dtype)?,
        );
    }
    Ok(out)
}

/// A fresh generator whose parameters are `Var`s of the returned `VarMap` (for training).
pub fn init_generator(
    cfg: &StyleGan2Config,
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<(Generator, VarMap)> {
    let keys = generator_keys(cfg)?;
    let map = init_tensors(&keys, &cfg.blur_kernel, rng, dtype, dev)?;
    let (varmap, noises) = split_params(&keys, map)?;
    let g = Generator::new_with_noise_buffers(
        cfg,
        noises,
        VarBuilder::from_varmap(&varmap, dtype, dev),
    )?;
    Ok((g, varmap))
}

/// The same generator as [`init_generator`] (same `rng` draws) with plain, untracked tensors,
/// as a loaded checkpoint has: for inference and timing (it takes the CPU inference kernels of
/// [`crate::fast`]).
pub fn init_generator_frozen(
    cfg: &StyleGan2Config,
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<Generator> {
    let keys = generator_keys(cfg)?;
    let map = init_tensors(&keys, &cfg.blur_kernel, rng, dtype, dev)?;
    let (varmap, noises) = split_params(&keys, map)?;
    Generator::new_with_noise_buffers(
        cfg,
        noises,
        VarBuilder::from_tensors(s2m_train::optim::varmap_tensors(&varmap), dtype, dev),
    )
}

/// A fresh discriminator whose parameters are `Var`s of the returned `VarMap`.
pub fn init_discriminator(
    cfg: &StyleGan2Config,
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<(Discriminator, VarMap)> {
    let keys = discriminator_keys(cfg)?;
    let map = init_tensors(&keys, &cfg.blur_kernel, rng, dtype, dev)?;
    let (varmap, _) = split_params(&keys, map)?;
    let d = Discriminator::new(cfg, VarBuilder::from_varmap(&varmap, dtype, dev))?;
    Ok((d, varmap))
}

/// Number of trainable parameters of a `VarMap`.
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}
