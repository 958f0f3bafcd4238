//! The CycleGAN objective (junyanz `CycleGANModel.backward_G` / `backward_D_basic`,
//! `--gan_mode lsgan`):
//!
//! - G: `MSE(D_A(G_A(A)), 1) + MSE(D_B(G_B(B)), 1) + lambda_A |G_B(G_A(A)) - A|_1
//!   + lambda_B |G_A(G_B(B)) - B|_1 + lambda_B lambda_idt |G_A(B) - B|_1
//!   + lambda_A lambda_idt |G_B(A) - A|_1`;
//! - each D: `0.5 [MSE(D(real), 1) + MSE(D(pool(fake).detach()), 0)]`.
//!
//! Every term is a mean over all elements (PyTorch `reduction='mean'`). The identity terms are
//! skipped (not computed) when `lambda_identity` is 0, as in the official code.

use candle_core::Tensor;

use crate::error::Result;
use crate::pix2pix::loss::l1;

/// `GANLoss('lsgan')(pred, real)`: `mean((pred - t)^2)` with the constant target `t` = 1 (real)
/// or 0 (fake).
pub fn lsgan(pred: &Tensor, real: bool) -> Result<Tensor> {
    let d = if real { (pred - 1.0)? } else { pred.clone() };
    Ok(d.sqr()?.mean_all()?)
}

/// `backward_D_basic`: `0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))`, from the two patch maps.
pub fn d_loss(pred_real: &Tensor, pred_fake: &Tensor) -> Result<Tensor> {
    let real = lsgan(pred_real, true)?;
    let fake = lsgan(pred_fake, false)?;
    Ok(((real + fake)? * 0.5)?)
}

/// The generator loss and its six terms, each already weighted (the official `loss_G_A`,
/// `loss_G_B`, `loss_cycle_A`, `loss_cycle_B`, `loss_idt_A`, `loss_idt_B`).
pub struct GLoss {
    /// The sum of the terms, what is differentiated.
    pub total: Tensor,
    /// `MSE(D_A(G_A(A)), 1)`.
    pub gan_a: Tensor,
    /// `MSE(D_B(G_B(B)), 1)`.
    pub gan_b: Tensor,
    /// `lambda_A |G_B(G_A(A)) - A|_1`.
    pub cycle_a: Tensor,
    /// `lambda_B |G_A(G_B(B)) - B|_1`.
    pub cycle_b: Tensor,
    /// `lambda_B lambda_idt |G_A(B) - B|_1` (`None` when lambda_idt is 0).
    pub idt_a: Option<Tensor>,
    /// `lambda_A lambda_idt |G_B(A) - A|_1` (`None` when lambda_idt is 0).
    pub idt_b: Option<Tensor>,
}

/// The images one generator step produces (needed again by the D step).
pub struct Translations {
    /// `G_A(A)`.
    pub fake_b: Tensor,
    /// `G_B(G_A(A))`.
    pub rec_a: Tensor,
    /// `G_B(B)`.
    pub fake_a: Tensor,
    /// `G_A(G_B(B))`.
    pub rec_b: Tensor,
    /// `G_A(B)` (identity, when lambda_idt > 0).
    pub idt_a: Option<Tensor>,
    /// `G_B(A)`.
    pub idt_b: Option<Tensor>,
}

/// The weighted sum of the official terms from the D outputs on the fakes and the
/// translations.
#[allow(clippy::too_many_arguments)]
pub fn g_loss(
    pred_fake_b: &Tensor,
    pred_fake_a: &Tensor,
    t: &Translations,
    real_a: &Tensor,
    real_b: &Tensor,
    lambda_a: f64,
    lambda_b: f64,
    lambda_identity: f64,
) -> Result<GLoss> {
    let gan_a = lsgan(pred_fake_b, true)?;
    let gan_b = lsgan(pred_fake_a, true)?;
    let cycle_a = (l1(&t.rec_a, real_a)? * lambda_a)?;
    let cycle_b = (l1(&t.rec_b, real_b)? * lambda_b)?;
    let mut total = ((&gan_a + &gan_b)? + (&cycle_a + &cycle_b)?)?;
    let (mut idt_a, mut idt_b) = (None, None);
    if lambda_identity > 0.0
        && let (Some(ia), Some(ib)) = (&t.idt_a, &t.idt_b)
    {
        let la = (l1(ia, real_b)? * (lambda_b * lambda_identity))?;
        let lb = (l1(ib, real_a)? * (lambda_a * lambda_identity))?;
        total = ((total + &la)? + &lb)?;
        idt_a = Some(la);
        idt_b = Some(lb);
    }
    Ok(GLoss {
        total,
        gan_a,
        gan_b,
        cycle_a,
        cycle_b,
        idt_a,
        idt_b,
    })
}
