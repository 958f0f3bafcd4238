//! `torch.nn.BatchNorm2d` with torchvision parameter names (`weight`, `bias`, `running_mean`,
//! `running_var`; the integer `num_batches_tracked` buffer is not needed and is ignored).
//!
//! Eval mode normalises with the frozen running statistics (how every backbone here is used as a
//! feature extractor or frozen loss network). Train mode normalises with batch statistics and
//! updates the running statistics like PyTorch (momentum 0.1, unbiased variance for the running
//! estimate), for fine-tuning a backbone inside an encoder.

use candle_core::{D, Module, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::error::{BackboneError, Result};

/// PyTorch's default BatchNorm eps.
pub const BN_EPS: f64 = 1e-5;

#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm2d {
    /// Loads `weight`, `bias`, `running_mean` and `running_var` (each `[channels]`) under `vb`.
    pub fn new(channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let rm = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let rv = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        // `from_tensor` shares storage when the builder hands out variables (VarMap), so train
        // mode's running-stat updates land in the VarMap and get saved with it.
        Ok(Self {
            weight,
            bias,
            running_mean: Var::from_tensor(&rm)?,
            running_var: Var::from_tensor(&rv)?,
            eps,
            momentum: 0.1,
        })
    }

    pub fn channels(&self) -> usize {
        self.weight.elem_count()
    }

    pub fn running_mean(&self) -> &Tensor {
        self.running_mean.as_tensor()
    }

    pub fn running_var(&self) -> &Tensor {
        self.running_var.as_tensor()
    }

    fn check(&self, x: &Tensor) -> Result<usize> {
        let c = self.channels();
        if x.rank() != 4 || x.dim(1)? != c {
            return Err(BackboneError::Shape {
                what: "BatchNorm2d input".into(),
                expected: format!("[B, {c}, H, W]"),
                got: x.dims().to_vec(),
            });
        }
        Ok(c)
    }

    /// Eval mode: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, folded into
    /// one per-channel scale and shift (computed per call so trained weights stay in the graph).
    pub fn forward_eval(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.check(x)?;
        let dt = x.dtype();
        let scale = (self.weight.to_dtype(dt)?
            / (self.running_var.as_tensor().to_dtype(dt)? + self.eps)?.sqrt()?)?;
        let shift =
            (self.bias.to_dtype(dt)? - (self.running_mean.as_tensor().to_dtype(dt)? * &scale)?)?;
        if crate::fast::applies(&[x, &self.weight, &self.bias]) {
            // Inference on the CPU: one pass (the running statistics are buffers).
            return Ok(crate::fast::scale_shift(x, &scale, &shift)?);
        }
        Ok(x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((1, c, 1, 1))?)?)
    }

    /// Train mode: batch statistics (biased variance) for the output; the running statistics
    /// are updated in place with momentum 0.1 and the unbiased variance, as PyTorch does.
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor> {
        let c = self.check(x)?;
        let (b, _, h, w) = x.dims4()?;
        let n = b * h * w;
        if n < 2 {
            return Err(BackboneError::Shape {
                what: "BatchNorm2d train-mode input".into(),
                expected: "more than one value per channel (B*H*W > 1)".into(),
                got: x.dims().to_vec(),
            });
        }
        // [B, C, H, W] -> [C, B*H*W] so the statistics are plain last-dim reductions.
        let flat = x.transpose(0, 1)?.reshape((c, n))?;
        let mean = flat.mean_keepdim(D::Minus1)?;
        let centred = flat.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (var.clone() + self.eps)?.sqrt()?.recip()?;
        let dt = x.dtype();
        let scale = inv.broadcast_mul(&self.weight.to_dtype(dt)?.reshape((c, 1))?)?;
        let shift = (self.bias.to_dtype(dt)?.reshape((c, 1))? - (&mean * &scale)?)?;
        let y = x
            .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((1, c, 1, 1))?)?;

        let rdt = self.running_mean.dtype();
        let m = self.momentum;
        let mean_d = mean.detach().flatten_all()?.to_dtype(rdt)?;
        let unbiased =
            (var.detach().flatten_all()? * (n as f64 / (n as f64 - 1.0)))?.to_dtype(rdt)?;
        let rm = ((self.running_mean.as_tensor() * (1.0 - m))? + (mean_d * m)?)?;
        let rv = ((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)?;
        Ok(y)
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            self.forward_train(x)
        } else {
            self.forward_eval(x)
        }
    }
}

/// `Module` is eval mode (candle's blanket `ModuleT` then ignores the train flag; call the
/// inherent [`BatchNorm2d::forward_t`] for train mode).
impl Module for BatchNorm2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_eval(x).map_err(to_candle)
    }
}

/// Converts a crate error back into a candle error for the `Module` trait.
pub(crate) fn to_candle(e: BackboneError) -> candle_core::Error {
    match e {
        BackboneError::Candle(e) => e,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn bn() -> BatchNorm2d {
        let dev = Device::Cpu;
        let mut m = HashMap::new();
        m.insert("weight".into(), Tensor::new(&[1.5f32, 0.5], &dev).unwrap());
        m.insert("bias".into(), Tensor::new(&[0.1f32, -0.2], &dev).unwrap());
        m.insert(
            "running_mean".into(),
            Tensor::new(&[0.3f32, -1.0], &dev).unwrap(),
        );
        m.insert(
            "running_var".into(),
            Tensor::new(&[4.0f32, 0.25], &dev).unwrap(),
        );
        BatchNorm2d::new(2, BN_EPS, VarBuilder::from_tensors(m, DType::F32, &dev)).unwrap()
    }

    #[test]
    fn eval_uses_running_stats() {
        let b = bn();
        let x = Tensor::new(&[2.0f32, 3.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 1, 1))
            .unwrap();
        let y = b
            .forward_eval(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want0 = (2.0 - 0.3) / (4.0f32 + 1e-5).sqrt() * 1.5 + 0.1;
        let want1 = (3.0 + 1.0) / (0.25f32 + 1e-5).sqrt() * 0.5 - 0.2;
        assert!(
            (y[0] - want0).abs() < 1e-5 && (y[1] - want1).abs() < 1e-5,
            "{y:?}"
        );
    }

    #[test]
    fn train_uses_batch_stats_and_updates_running_stats() {
        let b = bn();
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let x = Tensor::from_vec(v, (2, 2, 2, 2), &Device::Cpu).unwrap();
        let y = b.forward_train(&x).unwrap();
        // Channel 0 holds 0..4 and 8..12: mean 5.5, biased var 17.25.
        let y0 = y.narrow(1, 0, 1).unwrap();
        let m = y0.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((m - 0.1).abs() < 1e-5, "normalised mean {m}");
        let rm = b.running_mean().to_vec1::<f32>().unwrap();
        assert!((rm[0] - (0.9 * 0.3 + 0.1 * 5.5)).abs() < 1e-5);
        let rv = b.running_var().to_vec1::<f32>().unwrap();
        assert!(
            (rv[0] - (0.9 * 4.0 + 0.1 * 17.25 * 8.0 / 7.0)).abs() < 1e-4,
            "{rv:?}"
        );
    }

    #[test]
    fn wrong_channels_is_an_error() {
        let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
        let e = bn().forward_eval(&x).unwrap_err().to_string();
        assert!(e.contains("BatchNorm2d input"), "{e}");
    }
}
