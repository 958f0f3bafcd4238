//! Non-saturating logistic GAN losses and the R1 penalty (StyleGAN2; rosinality `train.py`
//! `d_logistic_loss`, `g_nonsaturating_loss`, `d_r1_loss`), generic over the discriminator so
//! that e4e's latent discriminator and StyleGAN2's image discriminator share them.
//!
//! The logistic losses and the stable softplus live in [`s2m_train::gan`]. R1 needs
//! second-order gradients, which candle only computes with `CANDLE_GRAD_DO_NOT_DETACH=1` set
//! before the process starts: [`r1_penalty`] runs
//! [`s2m_train::autograd::ensure_second_order_gradients`] first and refuses otherwise.

use candle_core::{Tensor, Var};
use s2m_train::autograd::ensure_second_order_gradients;

use crate::error::{LossError, Result};

/// D loss: `mean softplus(-D(real)) + mean softplus(D(fake))`.
pub fn d_logistic_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::d_logistic_loss(real_logits, fake_logits)?)
}

/// G loss: `mean softplus(-D(fake))`.
pub fn g_nonsaturating_loss(fake_logits: &Tensor) -> Result<Tensor> {
    Ok(s2m_train::gan::g_nonsaturating_loss(fake_logits)?)
}

/// Result of [`r1_penalty`].
#[derive(Debug, Clone)]
pub struct R1Output {
    /// Scalar `mean_b ||dD/dx_b||^2`, differentiable w.r.t. D's parameters. The training term is
    /// `gamma / 2 * penalty * d_reg_every` (rosinality) or `gamma / 2 * penalty` (e4e's latent D).
    pub penalty: Tensor,
    /// `D(real)` from the same forward pass.
    pub logits: Tensor,
}

/// R1 = mean over the batch of `||d sum D(x) / dx||^2` at `x = real` (rosinality `d_r1_loss`),
/// for any discriminator `d` (image `[B, C, H, W]` or latent `[B, 512]`; the squared norm sums
/// all non-batch dims).
///
/// The input gradient comes from a first `backward()` with the gradient graph kept, so the
/// penalty's own `backward()` reaches D's parameters. `real` is detached first.
pub fn r1_penalty<F, E>(d: F, real: &Tensor) -> Result<R1Output>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    LossError: From<E>,
{
    ensure_second_order_gradients()?;
    if real.rank() < 1 || real.dim(0)? == 0 {
        return Err(LossError::Shape {
            what: "R1 real batch".into(),
            expected: "[B, ...] with B >= 1".into(),
            got: real.dims().to_vec(),
        });
    }
    let x = Var::from_tensor(&real.detach())?;
    let logits = d(x.as_tensor())?;
    let grads = logits.sum_all()?.backward()?;
    let g = grads.get(x.as_tensor()).ok_or_else(|| {
        LossError::Config("R1: the discriminator output does not depend on its input".into())
    })?;
    let penalty = if g.rank() > 1 {
        g.sqr()?.flatten_from(1)?.sum(1)?.mean_all()?
    } else {
        g.sqr()?.mean_all()?
    };
    Ok(R1Output { penalty, logits })
}
