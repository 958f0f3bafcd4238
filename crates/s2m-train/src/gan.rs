//! Non-saturating logistic GAN losses (rosinality `d_logistic_loss`, `g_nonsaturating_loss`)
//! and the stable softplus they are built from, shared by the StyleGAN2 loop, the latent
//! discriminator and the losses crate.

use candle_core::{Result, Tensor};

/// Stable `softplus(x) = log(1 + e^x) = relu(x) + log(1 + e^-|x|)`, from differentiable pieces
/// (candle's `binary_cross_entropy_with_logit` goes through `sigmoid` then `log` and
/// overflows), so it is differentiable again for R1-style second-order terms.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    x.relu()? + tail
}

/// D loss: `mean softplus(-D(real)) + mean softplus(D(fake))`.
pub fn d_logistic_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    let real = softplus(&real_logits.neg()?)?.mean_all()?;
    let fake = softplus(fake_logits)?.mean_all()?;
    real + fake
}

/// G loss: `mean softplus(-D(fake))`.
pub fn g_nonsaturating_loss(fake_logits: &Tensor) -> Result<Tensor> {
    softplus(&fake_logits.neg()?)?.mean_all()
}
