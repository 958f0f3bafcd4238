//! The GAN pieces every adversarial trainer shares (rosinality `train.py`): the stable
//! [`softplus`], the non-saturating logistic losses ([`d_logistic_loss`],
//! [`g_nonsaturating_loss`]) and the R1 penalty ([`r1_penalty`], `d_r1_loss`), generic over the
//! discriminator so that StyleGAN2's image discriminator and e4e's latent discriminator use the
//! same code. `losses` and `stylegan2` re-export them with their own error types.
//!
//! R1 needs second-order gradients, which candle only computes with
//! `CANDLE_GRAD_DO_NOT_DETACH=1` set before the process starts: [`r1_penalty`] runs
//! [`crate::autograd::ensure_second_order_gradients`] first and refuses otherwise.

use candle_core::{Result, Tensor, Var};

use crate::autograd::{SecondOrderError, ensure_second_order_gradients};

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

/// Why [`r1_penalty`] could not compute the penalty (callers map it into their own error type).
#[derive(Debug, thiserror::Error)]
pub enum R1Error {
    /// Second-order gradients do not work in this process.
    #[error(transparent)]
    SecondOrder(#[from] SecondOrderError),
    /// The real batch is empty or has no batch dimension (its shape).
    #[error("R1 real batch: expected [B, ...] with B >= 1, got shape {0:?}")]
    EmptyBatch(Vec<usize>),
    /// The discriminator's output does not depend on its input.
    #[error("R1: the discriminator output does not depend on its input")]
    NoInputGradient,
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
/// penalty's own `backward()` reaches D's parameters (a second-order gradient). `real` is
/// detached first: the penalty must not flow into whatever produced it.
pub fn r1_penalty<F, E, Out>(d: F, real: &Tensor) -> std::result::Result<R1Output, Out>
where
    F: Fn(&Tensor) -> std::result::Result<Tensor, E>,
    Out: From<E> + From<R1Error> + From<candle_core::Error>,
{
    ensure_second_order_gradients().map_err(R1Error::from)?;
    if real.rank() < 1 || real.dim(0)? == 0 {
        return Err(R1Error::EmptyBatch(real.dims().to_vec()).into());
    }
    let x = Var::from_tensor(&real.detach())?;
    let logits = d(x.as_tensor())?;
    let grads = logits.sum_all()?.backward()?;
    let g = grads.get(x.as_tensor()).ok_or(R1Error::NoInputGradient)?;
    // [B, ...] -> ||.||^2 per sample [B] -> mean.
    let penalty = if g.rank() > 1 {
        g.sqr()?.flatten_from(1)?.sum(1)?.mean_all()?
    } else {
        g.sqr()?.mean_all()?
    };
    Ok(R1Output { penalty, logits })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn softplus_is_stable_and_exact() {
        let x = Tensor::new(&[-1000f64, -3.0, 0.0, 2.5, 1000.0], &Device::Cpu).unwrap();
        let y = softplus(&x).unwrap().to_vec1::<f64>().unwrap();
        let want = [
            0.0,
            (1.0 + (-3f64).exp()).ln(),
            2f64.ln(),
            (1.0 + 2.5f64.exp()).ln(),
            1000.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn softplus_is_stable_and_correct() -> Result<()> {
        let dev = Device::Cpu;
        let xs = [-1000.0f64, -3.0, 0.0, 2.5, 1000.0];
        let y: Vec<f64> = softplus(&Tensor::from_vec(xs.to_vec(), 5, &dev)?)?.to_vec1()?;
        for (x, y) in xs.iter().zip(&y) {
            let r = if *x > 30.0 { *x } else { x.exp().ln_1p() };
            assert!((y - r).abs() < 1e-12, "{x}: {y} vs {r}");
        }
        // Central finite differences against candle's gradient (f64).
        let x0 = [-3.0f64, -0.2, 0.7, 4.0];
        let x = Var::from_tensor(&Tensor::from_vec(x0.to_vec(), 4, &dev)?)?;
        let g = softplus(x.as_tensor())?.sum_all()?.backward()?;
        let g: Vec<f64> = g
            .get(x.as_tensor())
            .expect("softplus has a gradient")
            .to_vec1()?;
        let eps = 1e-6;
        let f = |v: Vec<f64>| -> Result<f64> {
            softplus(&Tensor::from_vec(v, 4, &dev)?)?
                .sum_all()?
                .to_scalar()
        };
        for i in 0..x0.len() {
            let mut xp = x0.to_vec();
            xp[i] += eps;
            let mut xm = x0.to_vec();
            xm[i] -= eps;
            let fd = (f(xp)? - f(xm)?) / (2.0 * eps);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
                "idx {i}: fd {fd} vs {}",
                g[i]
            );
        }
        Ok(())
    }
}
