//! The pix2pix objective (junyanz `Pix2PixModel.backward_D` / `backward_G`, `--gan_mode vanilla`).
//!
//! - D: `0.5 * [BCE(D(A, fake.detach()), 0) + BCE(D(A, B), 1)]`;
//! - G: `BCE(D(A, fake), 1) + lambda_L1 * |fake - B|_1`.
//!
//! BCE-with-logits is written with the stable softplus of `s2m_train::gan`
//! (`BCE(x, 1) = softplus(-x)`, `BCE(x, 0) = softplus(x)`); every term is a mean over all
//! elements, as PyTorch's `reduction='mean'`.

use candle_core::Tensor;
use s2m_train::gan::softplus;

use crate::error::{BaselinesError, Result};

/// `nn.BCEWithLogitsLoss()(logits, target)` with a constant target 1 (`real`) or 0.
pub fn bce_with_logits(logits: &Tensor, real: bool) -> Result<Tensor> {
    let x = if real { logits.neg()? } else { logits.clone() };
    Ok(softplus(&x)?.mean_all()?)
}

/// `nn.L1Loss()(a, b)`: mean absolute difference.
pub fn l1(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        return Err(BaselinesError::Shape {
            what: "L1 loss operands".into(),
            expected: format!("{:?} (the first operand)", a.dims()),
            got: b.dims().to_vec(),
        });
    }
    Ok((a - b)?.abs()?.mean_all()?)
}

/// `loss_D = 0.5 * (BCE(D(real pair), 1) + BCE(D(fake pair), 0))`.
pub fn d_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    let real = bce_with_logits(real_logits, true)?;
    let fake = bce_with_logits(fake_logits, false)?;
    Ok(((real + fake)? * 0.5)?)
}

/// The generator loss and its two terms.
pub struct GLoss {
    /// `gan + lambda_l1 * l1`, what is differentiated.
    pub total: Tensor,
    /// `BCE(D(fake pair), 1)`.
    pub gan: Tensor,
    /// `|fake - B|_1` (unweighted).
    pub l1: Tensor,
}

/// `loss_G = BCE(D(fake pair), 1) + lambda_l1 * |fake - real|_1`.
pub fn g_loss(fake_logits: &Tensor, fake: &Tensor, real: &Tensor, lambda_l1: f64) -> Result<GLoss> {
    let gan = bce_with_logits(fake_logits, true)?;
    let l1 = l1(fake, real)?;
    let total = (&gan + (&l1 * lambda_l1)?)?;
    Ok(GLoss { total, gan, l1 })
}
