//! Deterministic synthetic weights from a closed formula, for parity tests and benchmarks.
//!
//! `tools/backbones_fixtures.py` fills the PyTorch models with exactly this formula, so the Rust
//! tests rebuild identical weights by name and no weight file is committed. For a parameter
//! `name` of shape `s`, at flat C-order index `i` (all integer arithmetic wraps at 64 bits, so
//! both languages produce bit-identical values):
//!
//! ```text
//! seed = (sum_j (j + 1) * byte_j(name)) mod 9973              # j = 0-based byte position
//! z    = (i + 1) * 0x9E3779B97F4A7C15 + seed * 0xD1B54A32D192ED03
//! z    = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;  z = (z ^ z >> 27) * 0x94D049BB133111EB;  z ^= z >> 31
//! u    = 2 * (z >> 11) * 2^-53 - 1                            # uniform in [-1, 1)
//! last = part of name after the final '.'
//! running_mean : 0.1 * u          running_var : 1 + 0.25 * u          bias : 0.05 * u
//! other rank-1 (BN weight, PReLU slope) : 0.8 + 0.4 * u
//! rank >= 2 (conv, linear weights)      : sqrt(6 / fan_in) * u,  fan_in = prod(s[1..])
//! ```
//!
//! The rank>=2 rule is He-uniform (std sqrt(2 / fan_in)), so activations keep their scale
//! through plain conv-ReLU stacks (VGG, AlexNet). A hash rather than a smooth formula keeps the
//! filters uncorrelated with smooth test images (a sinusoid in the weight index cancels against
//! them and leaves only the biases).

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// The formula's per-name phase seed.
pub fn name_seed(name: &str) -> u64 {
    name.bytes()
        .enumerate()
        .map(|(j, b)| (j as u64 + 1) * b as u64)
        .sum::<u64>()
        % 9973
}

/// The formula's uniform stream in [-1, 1) for `name`, `n` values.
pub fn uniform_hash(name: &str, n: usize) -> Vec<f64> {
    let seed = name_seed(name);
    (0..n as u64)
        .map(|i| {
            let mut z = (i + 1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(seed.wrapping_mul(0xD1B5_4A32_D192_ED03));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            2.0 * ((z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)) - 1.0
        })
        .collect()
}

/// Values of parameter `name` with shape `dims` (see the module docs for the formula).
pub fn synthetic_values(name: &str, dims: &[usize]) -> Vec<f64> {
    let n: usize = dims.iter().product();
    let u = uniform_hash(name, n);
    let last = name.rsplit('.').next().unwrap_or(name);
    let (a, b) = match last {
        "running_mean" => (0.0, 0.1),
        "running_var" => (1.0, 0.25),
        "bias" => (0.0, 0.05),
        _ if dims.len() <= 1 => (0.8, 0.4),
        _ => {
            let fan_in: usize = dims[1..].iter().product();
            (0.0, (6.0 / fan_in.max(1) as f64).sqrt())
        }
    };
    u.into_iter().map(|v| a + b * v).collect()
}

/// The synthetic tensor for `name`.
pub fn synthetic_tensor(
    name: &str,
    shape: &Shape,
    dtype: DType,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let v = synthetic_values(name, shape.dims());
    Tensor::from_vec(v, shape.clone(), dev)?.to_dtype(dtype)
}

/// A `VarBuilder` backend that answers every request with the synthetic formula.
struct FormulaBackend;

impl SimpleBackend for FormulaBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        synthetic_tensor(name, &s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("synthetic weights need a shape; {name} was requested without one")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A `VarBuilder` whose every parameter is filled by the synthetic formula.
pub fn synthetic_var_builder(dtype: DType, dev: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(FormulaBackend), dtype, dev.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_is_stable() {
        // Pinned against numpy (tools/backbones_fixtures.py `synthetic_values`).
        assert_eq!(name_seed("conv1.weight"), 7796);
        let v = synthetic_values("conv1.weight", &[2, 3, 1, 1]);
        let want = [
            1.2673410871101338,
            -0.859363616263487,
            -0.3709357776803046,
            -1.2518730147798072,
            0.809645245051423,
            -0.9406598057526441,
        ];
        for (a, b) in v.iter().zip(want) {
            assert_eq!(*a, b);
        }
        let rv = synthetic_values("bn1.running_var", &[4]);
        assert!(rv.iter().all(|v| (0.75..1.25).contains(v)));
    }
}
