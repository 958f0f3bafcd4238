//! The export of a phase-2 run (the format of [`crate::bundle`]).

use std::path::Path;

use e4e_encoder::bundle::{DataInfo, GeneratorRef, LossInfo};
use s2m_train::bundle::write_weights_bundle;
use s2m_train::optim::varmap_tensors;
use s2m_train::run::unix_time;

use super::trainer::RefinerTrainer;
use crate::bundle::{EncoderRef, REFINER_FORMAT, REFINER_JSON, REFINER_WEIGHTS, RefinerMeta};
use crate::error::Result;

impl RefinerTrainer {
    /// Writes the refiner bundle ([`crate::bundle`]) to `dir`.
    pub fn export(&self, dir: &Path) -> Result<RefinerMeta> {
        let weights = varmap_tensors(&self.h_vars);
        let meta = self.export_meta();
        Ok(write_weights_bundle(
            dir,
            REFINER_WEIGHTS,
            &weights,
            REFINER_JSON,
            |sha256| RefinerMeta {
                refiner_sha256: sha256,
                ..meta
            },
        )?)
    }

    /// `refiner.json` of the run as it stands, without the weights' sha256.
    fn export_meta(&self) -> RefinerMeta {
        RefinerMeta {
            format: REFINER_FORMAT.into(),
            hyper: self.cfg.hyper.clone(),
            iterations: self.cfg.iterations,
            generator: GeneratorRef {
                file: self.g.source().to_string(),
                sha256: self.g.sha256().to_string(),
                config: self.g.config().clone(),
            },
            encoder: EncoderRef {
                dir: self.encoder_dir.clone(),
                sha256: self.encoder_sha256.clone(),
            },
            data: DataInfo {
                description: self.data_description.clone(),
                sketch_source: self.sketch_source.clone(),
            },
            losses: LossInfo::new(&self.loss, self.extras.adv_lambda),
            extra_terms: self.extras.record.clone(),
            init: self.init.clone(),
            optimizer: format!(
                "Adam(lr {}, betas 0.9/0.999), loss at each of T = {} iterations, one step per \
                 batch (HyperStyle used Ranger with lr 1e-4)",
                self.cfg.lr, self.cfg.iterations
            ),
            steps: self.step,
            batch: self.cfg.batch,
            seed: self.cfg.schedule.seed,
            created_unix_s: unix_time(),
            refiner_sha256: String::new(),
        }
    }
}
