//! The similarity loss of the paper, `L_sim = l2 * L2 + lpips * LPIPS + cos * (1 - cos(C(y_hat), C(y)))`
//! with C the MoCo-v2 ResNet-50 (e4e/HyperStyle `calc_loss` for non-face domains).
//!
//! Default weights ([`SimilarityLoss::DEFAULT_L2`] etc.): the paper's lambdas could not be read
//! (the paper gives no values), so the defaults are
//! those of the code bases it builds on: `l2_lambda = 1.0` and `lpips_lambda = 0.8` (e4e
//! defaults, also pSp/HyperStyle), `moco_lambda = 0.5` (the value pSp/ReStyle/HyperStyle
//! recommend for non-face domains; e4e's `id_lambda`, which weights MoCo for non-face data, is
//! 0.1 by default and 0.5 in its cars example). ReStyle issue #50 reports collapse at 0.5 on
//! some data (1e-4 worked) and pSp #269 doubts MoCo helps on medical images: tune it.
//!
//! The perceptual term is LPIPS-alex (e4e's `lpips_type`) or ST-LPIPS ([`Perceptual`]).
//! [`SimilarityLoss::cpu_default`] works offline out of the box: it uses LPIPS-alex and MoCo
//! when their user-supplied trunk files are in the weights folder and otherwise falls back to
//! the shipped ST-LPIPS alex and leaves the MoCo term out. What it chose is listed by
//! [`SimilarityLoss::notes`] (the library prints nothing; the CLI prints the notes).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::checks::{RANGE_TOL, check_pair, check_range};
use crate::error::{LossError, Result};
use crate::l2::l2_loss;
use crate::lpips::{Lpips, LpipsNet};
use crate::moco::MocoLoss;
use crate::stlpips::StLpips;
use crate::weights;

/// The perceptual term of L_sim.
#[derive(Debug, Clone)]
pub enum Perceptual {
    Lpips(Lpips),
    StLpips(StLpips),
}

impl Perceptual {
    /// `"LPIPS-alex"`, `"ST-LPIPS-vgg"`, ...
    pub fn name(&self) -> String {
        match self {
            Perceptual::Lpips(m) => format!("LPIPS-{}", m.net().name()),
            Perceptual::StLpips(m) => format!("ST-LPIPS-{}", m.net().name()),
        }
    }

    /// Smallest image side the network accepts.
    pub fn min_size(&self) -> usize {
        match self {
            Perceptual::Lpips(m) => m.min_size(),
            Perceptual::StLpips(m) => m.min_size(),
        }
    }

    /// Distance `[B]` without input checks.
    pub fn distance_unchecked(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        match self {
            Perceptual::Lpips(m) => m.distance_unchecked(x0, x1),
            Perceptual::StLpips(m) => m.distance_unchecked(x0, x1),
        }
    }

    /// Distance `[B]` between batches in [-1, 1] (shapes and ranges checked).
    pub fn distance(&self, x0: &Tensor, x1: &Tensor) -> Result<Tensor> {
        match self {
            Perceptual::Lpips(m) => m.distance(x0, x1),
            Perceptual::StLpips(m) => m.distance(x0, x1),
        }
    }
}

/// The terms of one [`SimilarityLoss::forward`] call (scalar tensors).
#[derive(Debug, Clone)]
pub struct SimilarityTerms {
    /// The weighted sum, to call `backward()` on.
    pub total: Tensor,
    /// Unweighted MSE.
    pub l2: Tensor,
    /// Unweighted batch-mean perceptual distance.
    pub perceptual: Tensor,
    /// Unweighted batch-mean `1 - cos`, when the MoCo term is active.
    pub moco: Option<Tensor>,
}

impl SimilarityTerms {
    /// `(total, l2, perceptual, moco)` as host numbers, for logging.
    pub fn values(&self) -> Result<(f64, f64, f64, Option<f64>)> {
        let v = |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        Ok((
            v(&self.total)?,
            v(&self.l2)?,
            v(&self.perceptual)?,
            self.moco.as_ref().map(v).transpose()?,
        ))
    }
}

/// `L_sim` (see the module docs).
#[derive(Debug, Clone)]
pub struct SimilarityLoss {
    /// Weight of the MSE term.
    pub l2: f64,
    /// Weight of the perceptual (LPIPS or ST-LPIPS) term.
    pub lpips_weight: f64,
    /// Weight of the MoCo `1 - cos` term (ignored when no MoCo network is present).
    pub moco_weight: f64,
    perceptual: Perceptual,
    moco: Option<MocoLoss>,
    notes: Vec<String>,
}

impl SimilarityLoss {
    /// e4e `l2_lambda`.
    pub const DEFAULT_L2: f64 = 1.0;
    /// e4e `lpips_lambda`.
    pub const DEFAULT_LPIPS: f64 = 0.8;
    /// pSp/ReStyle/HyperStyle `moco_lambda` for non-face domains.
    pub const DEFAULT_MOCO: f64 = 0.5;

    /// `L_sim` with the default weights; `moco = None` leaves the MoCo term out (noted).
    pub fn new(perceptual: Perceptual, moco: Option<MocoLoss>) -> Self {
        let mut notes = Vec::new();
        if moco.is_none() {
            notes.push(format!(
                "no MoCo-v2 network: the MoCo term (weight {}) is left out of L_sim",
                Self::DEFAULT_MOCO
            ));
        }
        Self {
            l2: Self::DEFAULT_L2,
            lpips_weight: Self::DEFAULT_LPIPS,
            moco_weight: Self::DEFAULT_MOCO,
            perceptual,
            moco,
            notes,
        }
    }

    /// Sets the three weights (each finite and >= 0).
    pub fn with_weights(mut self, l2: f64, lpips: f64, moco: f64) -> Result<Self> {
        for (name, w) in [("l2", l2), ("lpips", lpips), ("moco", moco)] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(LossError::Config(format!(
                    "similarity weight {name} = {w} must be finite and >= 0"
                )));
            }
        }
        self.l2 = l2;
        self.lpips_weight = lpips;
        self.moco_weight = moco;
        Ok(self)
    }

    /// CPU, f32, from a weights folder (use [`weights::shipped_weights_dir`] for the repository's):
    /// LPIPS-alex if [`weights::ALEXNET_TRUNK`] is there (else the shipped
    /// [`weights::STLPIPS_ALEX`]), MoCo if [`weights::MOCO_V2`] is there (else left out). The
    /// choices are in [`Self::notes`].
    pub fn cpu_default(weights_dir: &Path) -> Result<Self> {
        Self::from_dir(weights_dir, DType::F32, &Device::Cpu)
    }

    /// [`Self::cpu_default`] on any device and dtype.
    pub fn from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let mut notes = Vec::new();
        let trunk = dir.join(weights::ALEXNET_TRUNK);
        let perceptual = if trunk.is_file() {
            Perceptual::Lpips(Lpips::from_dir(LpipsNet::Alex, dir, dtype, device)?)
        } else {
            notes.push(format!(
                "LPIPS-alex trunk {} not found: the perceptual term is ST-LPIPS-alex ({}). For \
                 LPIPS: {}",
                trunk.display(),
                dir.join(weights::STLPIPS_ALEX).display(),
                weights::how_to_get(weights::ALEXNET_TRUNK)
            ));
            Perceptual::StLpips(StLpips::from_dir(LpipsNet::Alex, dir, dtype, device)?)
        };
        let moco_path = dir.join(weights::MOCO_V2);
        let moco = if moco_path.is_file() {
            Some(MocoLoss::from_dir(dir, dtype, device)?)
        } else {
            notes.push(format!(
                "MoCo-v2 weights {} not found: the MoCo term (weight {}) is left out of L_sim. \
                 To enable it: {}",
                moco_path.display(),
                Self::DEFAULT_MOCO,
                weights::how_to_get(weights::MOCO_V2)
            ));
            None
        };
        let mut s = Self::new(perceptual, moco);
        s.notes = notes;
        Ok(s)
    }

    /// What the constructor decided (fallbacks, missing terms); empty when nothing was left out.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub fn perceptual(&self) -> &Perceptual {
        &self.perceptual
    }

    pub fn moco(&self) -> Option<&MocoLoss> {
        self.moco.as_ref()
    }

    /// `L_sim(y_hat, y)` for `[B, 3, H, W]` batches in [-1, 1]. Shapes and the target's range
    /// are checked; `y_hat` (an unclamped generator output) is not range-checked.
    pub fn forward(&self, y_hat: &Tensor, y: &Tensor) -> Result<SimilarityTerms> {
        check_pair("similarity loss", y_hat, y, 3, self.perceptual.min_size())?;
        check_range("similarity loss target", y, -1.0, 1.0, RANGE_TOL)?;
        let l2 = l2_loss(y_hat, y)?;
        let perceptual = self.perceptual.distance_unchecked(y_hat, y)?.mean_all()?;
        let mut total = ((&l2 * self.l2)? + (&perceptual * self.lpips_weight)?)?;
        let moco = match &self.moco {
            Some(m) if self.moco_weight > 0.0 => {
                let t = m
                    .similarity_unchecked(y_hat, y)?
                    .affine(-1.0, 1.0)?
                    .mean_all()?;
                total = (total + (&t * self.moco_weight)?)?;
                Some(t)
            }
            _ => None,
        };
        Ok(SimilarityTerms {
            total,
            l2,
            perceptual,
            moco,
        })
    }
}
