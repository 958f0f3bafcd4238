//! GAN losses and regularisers of rosinality `train.py`: non-saturating logistic losses
//! (`d_logistic_loss`, `g_nonsaturating_loss`), R1 (`d_r1_loss`) and the path-length penalty
//! (`g_path_regularize`). The logistic losses and R1 are [`s2m_train::gan`]'s, shared with the
//! latent discriminator; the path-length penalty is StyleGAN2's own.
//!
//! candle has no `create_graph`: the gradient of a gradient works only when the process runs
//! with `CANDLE_GRAD_DO_NOT_DETACH=1`, so R1 and path length call
//! [`s2m_train::autograd::ensure_second_order_gradients`] first and refuse otherwise.

use candle_core::{DType, Tensor, Var};
use s2m_core::rng::{Rng, randn_vec};
use s2m_train::autograd::ensure_second_order_gradients;
use s2m_train::gan::R1Error;
pub use s2m_train::gan::R1Output;

use crate::discriminator::Discriminator;
use crate::error::{Result, StyleGan2Error};
use crate::generator::{Generator, GeneratorInput, GeneratorOutput};

/// D loss: `mean softplus(−D(real)) + mean softplus(D(fake))`.
pub fn d_logistic_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::d_logistic_loss(real_logits, fake_logits)?)
}

/// G loss: `mean softplus(−D(fake))`.
pub fn g_nonsaturating_loss(fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::g_nonsaturating_loss(fake_logits)?)
}

/// R1 = mean over the batch of ‖∂ΣD(x)/∂x‖² at `x = real` (rosinality `d_r1_loss`):
/// [`s2m_train::gan::r1_penalty`] with this crate's discriminator and error type.
///
/// The input gradient comes from a first `backward()` with the gradient graph kept, so a second
/// `backward()` of the penalty reaches D's weights (a second-order gradient).
pub fn r1_penalty(d: &Discriminator, real: &Tensor) -> Result<R1Output> {
    s2m_train::gan::r1_penalty(|x: &Tensor| d.forward(x), real)
}

impl From<R1Error> for StyleGan2Error {
    fn from(e: R1Error) -> Self {
        match e {
            R1Error::SecondOrder(e) => StyleGan2Error::SecondOrder(e),
            R1Error::EmptyBatch(got) => StyleGan2Error::Shape {
                what: "R1 real batch".into(),
                expected: "[B, ...] with B >= 1".into(),
                got,
            },
            R1Error::NoInputGradient => StyleGan2Error::Input(
                "R1: the discriminator output does not depend on its input".into(),
            ),
        }
    }
}

/// Result of [`path_length_penalty`].
#[derive(Debug, Clone)]
pub struct PathLengthOutput {
    /// Scalar `mean_b (ℓ_b − a)²`, differentiable w.r.t. G (mapping included).
    pub penalty: Tensor,
    /// Updated running mean `a` (detached), to pass to the next call.
    pub mean_path_length: f64,
    /// Per-sample path lengths ℓ `[B]`.
    pub path_lengths: Tensor,
    /// The generator output used.
    pub output: GeneratorOutput,
}

/// rosinality `g_path_regularize`: ℓ_b = √(mean_latents Σ_dim (∂Σ(img·y)/∂w)²) with
/// y ~ N(0,1)/√(HW) (seeded), a ← a + decay·(mean ℓ − a), penalty = mean (ℓ − a)².
///
/// candle keeps gradients only for variables, so a zero `Var` is added to the W+ latents; its
/// gradient is the gradient w.r.t. the latents, and the graph still reaches the mapping network.
pub fn path_length_penalty(
    g: &Generator,
    input: &GeneratorInput,
    mean_path_length: f64,
    decay: f64,
    rng: &mut Rng,
) -> Result<PathLengthOutput> {
    ensure_second_order_gradients()?;
    let w = g.resolve_latents(input)?;
    let zero = Var::zeros(w.shape(), w.dtype(), w.device())?;
    let latents = (&w + zero.as_tensor())?;
    let image = g.synthesis(&latents, &input.noise, input.offsets)?;
    let (b, c, h, wd) = image.dims4()?;
    let y = Tensor::from_vec(
        randn_vec(rng, b * c * h * wd),
        (b, c, h, wd),
        image.device(),
    )?
    .to_dtype(image.dtype())?;
    let y = (y / ((h * wd) as f64).sqrt())?;
    let grads = (&image * y)?.sum_all()?.backward()?;
    let gl = grads.get(zero.as_tensor()).ok_or_else(|| {
        StyleGan2Error::Input("path length: the image does not depend on the latents".into())
    })?;
    // [B,n,S] -> Σ over S -> mean over n -> sqrt: [B]
    let path_lengths = gl.sqr()?.sum(2)?.mean(1)?.sqrt()?;
    let mean_now = path_lengths
        .detach()
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    let a = mean_path_length + decay * (mean_now - mean_path_length);
    let penalty = (&path_lengths - a)?.sqr()?.mean_all()?;
    Ok(PathLengthOutput {
        penalty,
        mean_path_length: a,
        path_lengths,
        output: GeneratorOutput { image, latents: w },
    })
}
