//! The noise inputs of the synthesis convs: the stored buffers `noises.noise_i`, fresh seeded
//! noise, none, or caller-provided tensors.

use candle_core::{DType, Device, Tensor};
use s2m_core::rng::{Rng, derive_seed, randn_vec, rng_from_seed};

use crate::config::StyleGan2Config;
use crate::error::{Result, StyleGan2Error, check_finite, check_shape};
use crate::generator::Generator;

/// Where the noise inputs of the synthesis convs come from.
#[derive(Debug, Clone, Default)]
pub enum NoiseMode {
    /// The stored buffers `noises.noise_i` `[1,1,r,r]` (rosinality `randomize_noise=False`,
    /// NVlabs `noise_mode='const'`). HyperStyle training and inference use this.
    #[default]
    Const,
    /// Fresh N(0,1) noise `[B,1,r,r]` per layer, drawn from a seeded stream (rosinality's
    /// default `randomize_noise=True`, used in GAN training). Layer i uses
    /// `derive_seed(seed, NOISE_STREAM, i)`.
    Random { seed: u64 },
    /// No noise at all (NVlabs `noise_mode='none'`).
    Zero,
    /// Caller-provided noise per layer, `[B or 1, 1, r, r]`, `num_noise_layers` entries.
    Explicit(Vec<Tensor>),
}

/// Stream id for [`NoiseMode::Random`] ("noise" in ASCII).
pub const NOISE_STREAM: u64 = 0x6e_6f_69_73_65;

/// Shape of noise buffer `i`: `[1,1,r,r]` with r = 2^((i+5)/2).
pub(crate) fn noise_resolution(i: usize) -> usize {
    1usize << ((i + 5) / 2)
}

/// Fresh N(0,1) noise buffers `noises.noise_i` from a seeded stream (rosinality registers
/// `torch.randn` buffers at construction).
pub fn random_noise_buffers(
    cfg: &StyleGan2Config,
    rng: &mut Rng,
    dtype: DType,
    dev: &Device,
) -> Result<Vec<Tensor>> {
    cfg.validate()?;
    (0..cfg.num_noise_layers())
        .map(|i| {
            let r = noise_resolution(i);
            Ok(Tensor::from_vec(randn_vec(rng, r * r), (1, 1, r, r), dev)?.to_dtype(dtype)?)
        })
        .collect()
}

impl Generator {
    /// Noise per layer for a batch of `b`, `None` where no noise is added.
    pub(super) fn noise_inputs(&self, mode: &NoiseMode, b: usize) -> Result<Vec<Option<Tensor>>> {
        let num = self.cfg.num_noise_layers();
        match mode {
            NoiseMode::Const => Ok(self.noises.iter().cloned().map(Some).collect()),
            NoiseMode::Zero => Ok(vec![None; num]),
            NoiseMode::Random { seed } => (0..num)
                .map(|i| {
                    let r = noise_resolution(i);
                    let mut rng = rng_from_seed(derive_seed(*seed, NOISE_STREAM, i as u64));
                    let v = randn_vec(&mut rng, b * r * r);
                    Ok(Some(
                        Tensor::from_vec(v, (b, 1, r, r), &self.device)?.to_dtype(self.dtype)?,
                    ))
                })
                .collect(),
            NoiseMode::Explicit(list) => {
                if list.len() != num {
                    return Err(StyleGan2Error::Input(format!(
                        "explicit noise needs {num} tensors, got {}",
                        list.len()
                    )));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let r = noise_resolution(i);
                        let name = format!("noise[{i}]");
                        check_shape(t, &name, &[None, Some(1), Some(r), Some(r)])?;
                        let tb = t.dim(0)?;
                        if tb != b && tb != 1 {
                            return Err(StyleGan2Error::Shape {
                                what: name,
                                expected: format!("[{b} or 1, 1, {r}, {r}]"),
                                got: t.dims().to_vec(),
                            });
                        }
                        check_finite(t, &name)?;
                        Ok(Some(t.clone()))
                    })
                    .collect()
            }
        }
    }
}
