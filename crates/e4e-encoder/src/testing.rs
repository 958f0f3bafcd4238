//! Tiny models and data for the training tests of both phases (this crate's and
//! `hyperstyle-refiner`'s). Test support, not model code: it returns errors like the rest of
//! the crate but its configs are far too small for real use.

use std::collections::{BTreeMap, HashMap};

use backbones::ResNetDepth;
use candle_core::{DType, Device, Tensor};
use s2m_core::rng::{randn_vec, rng_from_seed};
use stylegan2::{ChannelTable, StyleGan2Config};

use crate::config::{EncoderBackbone, EncoderConfig, EncoderHead};
use crate::data::TensorPairs;
use crate::generator::FrozenGenerator;
use s2m_train::TrainResult;

/// A 32 px generator: S = 32, 2 mapping layers, 16 channels (8 at 32 px).
pub fn tiny_generator_config() -> StyleGan2Config {
    StyleGan2Config {
        size: 32,
        style_dim: 32,
        n_mlp: 2,
        lr_mlp: 0.01,
        channels: ChannelTable::Explicit(BTreeMap::from([(4, 16), (8, 16), (16, 16), (32, 8)])),
        blur_kernel: vec![1.0, 3.0, 3.0, 1.0],
    }
}

/// A single-w ResNet-18 encoder with widths 8/8/16/16 on 32 px sketches, S = 32.
pub fn tiny_encoder_config() -> EncoderConfig {
    EncoderConfig {
        backbone: EncoderBackbone::ResNet {
            depth: ResNetDepth::R18,
            widths: [8, 8, 16, 16],
        },
        in_channels: 1,
        input_size: 32,
        style_dim: 32,
        head: EncoderHead::SingleW,
    }
}

/// Every tensor of the tiny generator (rosinality names, noise buffers and kernels included)
/// with rosinality's seeded init.
pub fn tiny_generator_tensors(seed: u64) -> TrainResult<HashMap<String, Tensor>> {
    let cfg = tiny_generator_config();
    let keys = stylegan2::weights::generator_keys(&cfg)?;
    Ok(stylegan2::init::init_tensors(
        &keys,
        &cfg.blur_kernel,
        &mut rng_from_seed(seed),
        DType::F32,
        &Device::Cpu,
    )?)
}

/// The tiny generator with rosinality's seeded init, frozen.
pub fn tiny_generator(seed: u64) -> TrainResult<FrozenGenerator> {
    let cfg = tiny_generator_config();
    let tensors = tiny_generator_tensors(seed)?;
    FrozenGenerator::from_tensors(
        &cfg,
        tensors,
        &format!("tiny generator seed {seed}"),
        &Device::Cpu,
    )
}

/// `n` pairs whose targets G can produce exactly (G(mapping(z_i)) clamped to [-1, 1]) and
/// whose sketches are fixed random patterns `[n, 1, sketch_size, sketch_size]` in [-1, 1].
pub fn reachable_pairs(
    g: &FrozenGenerator,
    n: usize,
    sketch_size: usize,
    seed: u64,
) -> TrainResult<TensorPairs> {
    let dev = Device::Cpu;
    let s = g.config().style_dim;
    let mut rng = rng_from_seed(seed);
    let z = Tensor::from_vec(randn_vec(&mut rng, n * s), (n, s), &dev)?;
    let w = g.generator().mapping(&z)?;
    let images = g.image(&w)?.clamp(-1f32, 1f32)?.detach();
    let sk: Vec<f32> = randn_vec(&mut rng, n * sketch_size * sketch_size)
        .into_iter()
        .map(|v| v.tanh())
        .collect();
    let sketches = Tensor::from_vec(sk, (n, 1, sketch_size, sketch_size), &dev)?;
    Ok(TensorPairs {
        images,
        sketches,
        masks: None,
        description: format!("{n} generated test pairs (seed {seed})"),
    })
}

/// max |a - b| over all elements (shapes must match).
pub use s2m_core::testing::max_abs_diff;

/// The tiny generator (seed `seed`) built from `Var`s, as a trainable G would hold them, and
/// those vars: [`FrozenGenerator`] must keep every gradient away from them.
pub fn tiny_generator_from_vars(
    seed: u64,
) -> TrainResult<(FrozenGenerator, Vec<(String, candle_core::Var)>)> {
    let mut vars = Vec::new();
    for (k, t) in tiny_generator_tensors(seed)? {
        vars.push((k, candle_core::Var::from_tensor(&t)?));
    }
    let tensors = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let g = FrozenGenerator::from_tensors(&tiny_generator_config(), tensors, "vars", &Device::Cpu)?;
    Ok((g, vars))
}
