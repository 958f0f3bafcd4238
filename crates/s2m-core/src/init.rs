//! Seeded initialisation of fresh models (shared by every training loop that builds a model
//! through a `VarBuilder`).
//!
//! candle's CPU RNG cannot be seeded, so a model built on a `VarMap` gets different weights in
//! every run. [`seeded_var_map`] builds any model through a `VarBuilder` whose backend honours
//! the same `Init` hints as `VarMap` (constant, normal, uniform, Kaiming) but draws the values
//! from the workspace's ChaCha8 stream, and stores them as `Var`s of a `VarMap` for training.
//! The values depend on the seed and on the order in which the model requests its parameters
//! (deterministic for a given config).

use std::sync::Mutex;

use crate::rng::{Rng, randn_vec, rng_from_seed};
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng as _;

struct SeededBackend {
    map: VarMap,
    rng: Mutex<Rng>,
}

fn draw(rng: &mut Rng, init: Init, shape: &Shape) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut Rng, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..=up) as f32).collect()
    };
    match init {
        Init::Const(c) => vec![c as f32; n],
        Init::Randn { mean, stdev } => randn_vec(rng, n)
            .into_iter()
            .map(|v| (mean + stdev * v as f64) as f32)
            .collect(),
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let b = 3f64.sqrt() * std;
                    uniform(rng, -b, b)
                }
                NormalOrUniform::Normal => randn_vec(rng, n)
                    .into_iter()
                    .map(|v| (std * v as f64) as f32)
                    .collect(),
            }
        }
    }
}

impl SimpleBackend for SeededBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("seeded init: var map poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "seeded init: {name} requested as {s:?} and as {:?}",
                    v.shape()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let vals = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("seeded init: rng poisoned".into()))?;
            draw(&mut rng, init, &s)
        };
        let t = Tensor::from_vec(vals, s, dev)?.to_dtype(dtype)?;
        let v = Var::from_tensor(&t)?;
        let out = v.as_tensor().clone();
        data.insert(name.to_string(), v);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("seeded init: {name} requested without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// Builds a model with seeded initial values; its parameters are the `Var`s of the returned
/// `VarMap` (names as the model requests them).
pub fn seeded_var_map<M, E>(
    seed: u64,
    dtype: DType,
    dev: &Device,
    build: impl FnOnce(VarBuilder) -> std::result::Result<M, E>,
) -> std::result::Result<(M, VarMap), E> {
    let map = VarMap::new();
    let backend = SeededBackend {
        map: map.clone(),
        rng: Mutex::new(rng_from_seed(seed)),
    };
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, dev.clone());
    let m = build(vb)?;
    Ok((m, map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(seed: u64) -> Vec<f32> {
        let dev = Device::Cpu;
        let (t, _map) = seeded_var_map(seed, DType::F32, &dev, |vb| {
            vb.get_with_hints((3, 4), "w", candle_nn::init::DEFAULT_KAIMING_NORMAL)
        })
        .unwrap();
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_same_values_and_vars_are_trainable() {
        assert_eq!(build(1), build(1));
        assert_ne!(build(1), build(2));
        let (_, map) = seeded_var_map(0, DType::F32, &Device::Cpu, |vb| {
            vb.get_with_hints(2, "b", Init::Const(0.5))
        })
        .unwrap();
        let data = map.data().lock().unwrap();
        assert_eq!(
            data["b"].as_tensor().to_vec1::<f32>().unwrap(),
            vec![0.5, 0.5]
        );
    }
}
