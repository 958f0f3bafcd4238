//! Non-saturating logistic GAN losses and the R1 penalty (StyleGAN2; rosinality `train.py`
//! `d_logistic_loss`, `g_nonsaturating_loss`, `d_r1_loss`), generic over the discriminator so
//! that e4e's latent discriminator and StyleGAN2's image discriminator share them.
//!
//! The implementations live in [`s2m_train::gan`]; these return [`LossError`]. R1 needs
//! second-order gradients, which candle only computes with `CANDLE_GRAD_DO_NOT_DETACH=1` set
//! before the process starts: [`r1_penalty`] runs
//! [`s2m_train::autograd::ensure_second_order_gradients`] first and refuses otherwise.

use candle_core::Tensor;
use s2m_train::gan::R1Error;
pub use s2m_train::gan::R1Output;

use crate::error::{LossError, Result};

/// D loss: `mean softplus(-D(real)) + mean softplus(D(fake))`.
pub fn d_logistic_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::d_logistic_loss(real_logits, fake_logits)?)
}

/// G loss: `mean softplus(-D(fake))`.
pub fn g_nonsaturating_loss(fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::g_nonsaturating_loss(fake_logits)?)
}

/// R1 = mean over the batch of `||d sum D(x) / dx||^2` at `x = real` (rosinality `d_r1_loss`),
/// for any discriminator `d` (image `[B, C, H, W]` or latent `[B, 512]`; the squared norm sums
/// all non-batch dims): [`s2m_train::gan::r1_penalty`] with a [`LossError`].
pub fn r1_penalty<F, E>(d: F, real: &Tensor) -> Result<R1Output>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    LossError: From<E>,
{
    s2m_train::gan::r1_penalty(d, real)
}

impl From<R1Error> for LossError {
    fn from(e: R1Error) -> Self {
        match e {
            R1Error::SecondOrder(e) => LossError::SecondOrder(e),
            R1Error::EmptyBatch(got) => LossError::Shape {
                what: "R1 real batch".into(),
                expected: "[B, ...] with B >= 1".into(),
                got,
            },
            R1Error::NoInputGradient => LossError::Config(
                "R1: the discriminator output does not depend on its input".into(),
            ),
        }
    }
}
