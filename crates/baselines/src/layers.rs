//! Building blocks shared by the four baselines (junyanz pix2pix/CycleGAN, UNIT, U-GAT-IT):
//! convolutions with zero or reflection padding, `ConvTranspose2d`, `BatchNorm2d` with running
//! statistics in train and eval mode, `InstanceNorm2d` (affine = false), dropout driven by the
//! workspace's seeded RNG, LeakyReLU 0.2 and Tanh.
//!
//! Each layer requests its tensors under the PyTorch names (`weight`, `bias`, `running_mean`,
//! `running_var`, `num_batches_tracked`), so a model built on `vb.pp("model.0")` has the
//! official state-dict keys. Every op used here has a backward in candle 0.11.1 that matches
//! finite differences on the CPU (`tests/layers.rs` checks each one in f64): conv2d,
//! conv_transpose2d (stride 2), index_select (reflection padding), the BatchNorm and
//! InstanceNorm arithmetic (plain tensor ops, no fused kernel), leaky_relu, tanh.
//!
//! NOTE: candle's `Dropout` and `Init` draw from the unseedable CPU RNG; dropout masks here come
//! from [`s2m_core::rng::Rng`] (or are given, for parity with masks recorded from PyTorch).

use std::collections::HashMap;

use candle_core::{D, DType, Tensor, Var};
use candle_nn::{Init, Module, VarBuilder};
use rand::Rng as _;
use s2m_core::rng::Rng;

use crate::error::{BaselinesError, Result};

/// The official junyanz initialisation (`init_weights(net, 'normal', 0.02)`): conv weights
/// N(0, 0.02), biases 0; BatchNorm weights N(1, 0.02), biases 0.
pub const NORMAL_002: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};

/// BatchNorm weight init of the junyanz code (N(1, 0.02)).
pub const BN_WEIGHT_NORMAL_002: Init = Init::Randn {
    mean: 1.0,
    stdev: 0.02,
};

/// PyTorch's default eps of BatchNorm2d / InstanceNorm2d.
pub const NORM_EPS: f64 = 1e-5;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Zero padding inside the conv (`nn.Conv2d(padding = n)`).
    Zero(usize),
    /// A `nn.ReflectionPad2d(n)` before a conv with no padding (the edge is not repeated).
    Reflect(usize),
}

/// `nn.Conv2d`, optionally preceded by a reflection pad. Keys: `weight` `[out, in, k, k]`,
/// `bias` `[out]` (when `bias`).
#[derive(Debug, Clone)]
pub struct Conv2d {
    conv: candle_nn::Conv2d,
    reflect: usize,
}

/// Refuses a convolution (`what`, at `vb`'s prefix) with a zero channel count, kernel or stride.
fn check_conv_dims(
    what: &str,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    vb: &VarBuilder,
) -> Result<()> {
    if c_in == 0 || c_out == 0 || kernel == 0 || stride == 0 {
        return Err(BaselinesError::Config(format!(
            "{what} at `{}`: channels {c_in}->{c_out}, kernel {kernel} and stride {stride} must be positive",
            vb.prefix()
        )));
    }
    Ok(())
}

/// The `bias` `[c_out]` of a convolution, initialised to 0, when it has one.
fn conv_bias(bias: bool, c_out: usize, vb: &VarBuilder) -> Result<Option<Tensor>> {
    Ok(if bias {
        Some(vb.get_with_hints(c_out, "bias", Init::Const(0.0))?)
    } else {
        None
    })
}

impl Conv2d {
    /// `c_in -> c_out`, square `kernel`, `stride`; weights from `weight_init`, bias 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        bias: bool,
        weight_init: Init,
        vb: VarBuilder,
    ) -> Result<Self> {
        check_conv_dims("conv2d", c_in, c_out, kernel, stride, &vb)?;
        let weight = vb.get_with_hints((c_out, c_in, kernel, kernel), "weight", weight_init)?;
        let bias = conv_bias(bias, c_out, &vb)?;
        let (zero, reflect) = match padding {
            Padding::Zero(p) => (p, 0),
            Padding::Reflect(p) => (0, p),
        };
        let cfg = candle_nn::Conv2dConfig {
            padding: zero,
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: candle_nn::Conv2d::new(weight, bias, cfg),
            reflect,
        })
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.reflect > 0 {
            let x = reflection_pad2d(x, self.reflect)?;
            self.conv.forward(&x)
        } else {
            self.conv.forward(x)
        }
    }
}

/// `nn.ConvTranspose2d` (no groups). Keys: `weight` `[in, out, k, k]` (PyTorch's layout),
/// `bias` `[out]` (when `bias`).
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    conv: candle_nn::ConvTranspose2d,
}

impl ConvTranspose2d {
    /// `c_in -> c_out`, square `kernel`, `stride`, zero `padding` and `output_padding` as in
    /// PyTorch; weights from `weight_init`, bias 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        bias: bool,
        weight_init: Init,
        vb: VarBuilder,
    ) -> Result<Self> {
        check_conv_dims("conv_transpose2d", c_in, c_out, kernel, stride, &vb)?;
        let weight = vb.get_with_hints((c_in, c_out, kernel, kernel), "weight", weight_init)?;
        let bias = conv_bias(bias, c_out, &vb)?;
        let cfg = candle_nn::ConvTranspose2dConfig {
            padding,
            output_padding,
            stride,
            dilation: 1,
        };
        Ok(Self {
            conv: candle_nn::ConvTranspose2d::new(weight, bias, cfg),
        })
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.conv.forward(x)
    }
}

/// `nn.ReflectionPad2d(p)` on `[B, C, H, W]`: mirrors without repeating the edge, so it needs
/// `p < H` and `p < W` (as PyTorch). Built from `index_select`, whose backward is `index_add`.
pub fn reflection_pad2d(x: &Tensor, p: usize) -> candle_core::Result<Tensor> {
    if p == 0 {
        return Ok(x.clone());
    }
    let (_, _, h, w) = x.dims4()?;
    if p >= h || p >= w {
        candle_core::bail!("reflection pad {p} needs a spatial size above {p}, got {h}x{w}");
    }
    let x = x.index_select(&reflect_indices(w, p, x.device())?, 3)?;
    x.index_select(&reflect_indices(h, p, x.device())?, 2)
}

/// `[p, p-1, .., 1, 0, 1, .., n-1, n-2, .., n-1-p]` as u32.
fn reflect_indices(n: usize, p: usize, dev: &candle_core::Device) -> candle_core::Result<Tensor> {
    let idx: Vec<u32> = (0..n + 2 * p)
        .map(|i| {
            let j = i as i64 - p as i64;
            let r = if j < 0 {
                -j
            } else if j >= n as i64 {
                2 * (n as i64 - 1) - j
            } else {
                j
            };
            r as u32
        })
        .collect();
    Tensor::new(idx, dev)
}

/// Whether normalisation layers use batch statistics (PyTorch `train()`) or running statistics
/// (`eval()`). InstanceNorm without running stats ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormMode {
    /// Batch statistics; BatchNorm updates its running statistics (momentum 0.1) and
    /// `num_batches_tracked`.
    Train,
    /// Running statistics; nothing is updated.
    Eval,
}

/// `nn.BatchNorm2d(C)` (affine, track_running_stats, eps 1e-5, momentum 0.1). Keys: `weight`,
/// `bias`, `running_mean`, `running_var` (f32, `[C]`), `num_batches_tracked` (i64 scalar).
///
/// The arithmetic is candle-nn's `BatchNorm` (plain tensor ops, differentiable; the running
/// variance is updated with the unbiased batch variance, as PyTorch). When the model is built on
/// a `VarMap`, the running statistics are its vars and train-mode forwards update them in place.
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    bn: candle_nn::BatchNorm,
    num_batches_tracked: Var,
    channels: usize,
}

impl BatchNorm2d {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", BN_WEIGHT_NORMAL_002)?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let nbt =
            vb.get_with_hints_dtype((), "num_batches_tracked", Init::Const(0.0), DType::I64)?;
        let bn =
            candle_nn::BatchNorm::new(channels, running_mean, running_var, weight, bias, NORM_EPS)?;
        Ok(Self {
            bn,
            num_batches_tracked: Var::from_tensor(&nbt)?,
            channels,
        })
    }

    /// The running mean (a view of the var when built on a `VarMap`).
    pub fn running_mean(&self) -> &Tensor {
        self.bn.running_mean()
    }

    /// The running variance.
    pub fn running_var(&self) -> &Tensor {
        self.bn.running_var()
    }

    /// How many train-mode batches this layer has seen.
    pub fn num_batches_tracked(&self) -> Result<i64> {
        Ok(self.num_batches_tracked.as_tensor().to_scalar::<i64>()?)
    }

    pub fn forward(&self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        let d = x.dims();
        if d.len() != 4 || d[1] != self.channels {
            return Err(BaselinesError::Shape {
                what: "BatchNorm2d input".into(),
                expected: format!("[B, {}, H, W]", self.channels),
                got: d.to_vec(),
            });
        }
        match mode {
            NormMode::Eval => Ok(candle_nn::ModuleT::forward_t(&self.bn, x, false)?),
            NormMode::Train => {
                // PyTorch refuses a batch-norm over one value per channel ("Expected more than 1
                // value per channel when training"); so do we, instead of returning NaN stats.
                if d[0] * d[2] * d[3] < 2 {
                    return Err(BaselinesError::Shape {
                        what: "BatchNorm2d input in train mode".into(),
                        expected: "more than one value per channel (B*H*W > 1)".into(),
                        got: d.to_vec(),
                    });
                }
                let y = candle_nn::ModuleT::forward_t(&self.bn, x, true)?;
                let n = self.num_batches_tracked.as_tensor();
                self.num_batches_tracked
                    .set(&(n + Tensor::ones((), DType::I64, n.device())?)?)?;
                Ok(y)
            }
        }
    }
}

/// `nn.InstanceNorm2d(C, affine=False, track_running_stats=False)`: per sample and channel,
/// `(x - mean) / sqrt(biased var + eps)` over H x W. No parameters, no keys.
pub fn instance_norm2d(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h * w < 2 {
        candle_core::bail!("instance norm needs more than one spatial value, got {h}x{w}");
    }
    let mean = x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?;
    xc.broadcast_div(&(var + NORM_EPS)?.sqrt()?)
}

/// The normalisation layer of a junyanz network (`--norm batch|instance`).
#[derive(Debug, Clone)]
pub enum Norm2d {
    Batch(BatchNorm2d),
    /// InstanceNorm2d without affine parameters or running statistics (no keys).
    Instance,
}

impl Norm2d {
    pub fn forward(&self, x: &Tensor, mode: NormMode) -> Result<Tensor> {
        match self {
            Self::Batch(bn) => bn.forward(x, mode),
            Self::Instance => Ok(instance_norm2d(x)?),
        }
    }
}

/// Where dropout masks come from in one forward pass.
pub enum DropoutMode<'a> {
    /// No dropout (PyTorch `eval()`).
    Off,
    /// Fresh Bernoulli(1 - p) keep-masks drawn from the seeded stream, in forward order.
    Seeded(&'a mut Rng),
    /// Given keep-masks (1 = keep, 0 = drop) by the dropout layer's state-dict path, e.g.
    /// `model.model.1.model.3.model.3.model.7` (recorded from PyTorch for parity tests).
    Given(&'a HashMap<String, Tensor>),
}

/// How one forward pass runs: normalisation statistics and dropout.
pub struct ForwardMode<'a> {
    pub norm: NormMode,
    pub dropout: DropoutMode<'a>,
}

impl<'a> ForwardMode<'a> {
    /// PyTorch `eval()`: running statistics, no dropout.
    pub fn eval() -> Self {
        Self {
            norm: NormMode::Eval,
            dropout: DropoutMode::Off,
        }
    }

    /// PyTorch `train()`: batch statistics, dropout masks from `rng`.
    pub fn train(rng: &'a mut Rng) -> Self {
        Self {
            norm: NormMode::Train,
            dropout: DropoutMode::Seeded(rng),
        }
    }

    /// PyTorch `train()` with dropout masks recorded elsewhere (see [`DropoutMode::Given`]).
    pub fn train_with_masks(masks: &'a HashMap<String, Tensor>) -> Self {
        Self {
            norm: NormMode::Train,
            dropout: DropoutMode::Given(masks),
        }
    }
}

/// `nn.Dropout(p)`: in train mode `x * mask / (1 - p)` with a Bernoulli(1 - p) keep-mask.
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
    /// The layer's state-dict path (it has no keys; the path names its mask).
    name: String,
}

impl Dropout {
    /// `p` in `[0, 1)`; `name` is the layer's path in the PyTorch module tree.
    pub fn new(p: f64, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if !(0.0..1.0).contains(&p) {
            return Err(BaselinesError::Config(format!(
                "dropout `{name}`: p = {p} is outside [0, 1)"
            )));
        }
        Ok(Self { p, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    pub fn forward(&self, x: &Tensor, mode: &mut DropoutMode<'_>) -> Result<Tensor> {
        let keep = match mode {
            DropoutMode::Off => return Ok(x.clone()),
            DropoutMode::Seeded(rng) => {
                let n = x.elem_count();
                let keep_p = 1.0 - self.p;
                let m: Vec<f32> = (0..n)
                    .map(|_| {
                        if rng.random::<f64>() < keep_p {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Tensor::from_vec(m, x.dims(), x.device())?.to_dtype(x.dtype())?
            }
            DropoutMode::Given(masks) => {
                let m = masks
                    .get(&self.name)
                    .ok_or_else(|| BaselinesError::MissingMask {
                        key: self.name.clone(),
                    })?;
                if m.dims() != x.dims() {
                    return Err(BaselinesError::Shape {
                        what: format!("dropout mask `{}`", self.name),
                        expected: format!("{:?} (the layer input)", x.dims()),
                        got: m.dims().to_vec(),
                    });
                }
                m.to_dtype(x.dtype())?.to_device(x.device())?
            }
        };
        Ok((x.mul(&keep)? * (1.0 / (1.0 - self.p)))?)
    }
}

/// `nn.LeakyReLU(0.2)`, the slope of every junyanz/UNIT/U-GAT-IT discriminator and U-Net encoder.
pub fn leaky_relu_02(x: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::leaky_relu(x, 0.2)
}

/// `nn.Tanh()`.
pub fn tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    x.tanh()
}
