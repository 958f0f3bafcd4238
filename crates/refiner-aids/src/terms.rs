//! The aids as extra loss terms of the refiner's training ([`hyperstyle_refiner::ExtraLoss`]):
//! their settings ([`AidsConfig`], recorded in the run's checkpoints), the terms built from
//! them ([`AidsConfig::extra_terms`]), what `refiner.json` records about them ([`AidsRecord`])
//! and [`open_trainer`], which opens a phase-2 run with them.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use e4e_encoder::data::Pairs;
use e4e_encoder::generator::FrozenGenerator;
use hyperstyle_refiner::{
    BatchLoss, ExtraLoss, ExtraTerms, RefinerMeta, RefinerTrainConfig, RefinerTrainer, Result,
};
use losses::SimilarityLoss;
use s2m_train::TrainError;
use serde::{Deserialize, Serialize};
use stylegan2::{Discriminator, StyleGan2Config};

use crate::realism::{DISCRIMINATOR_GROUP, DiscriminatorRef, load_discriminator, realism_loss};
use crate::region::RegionWeights;
use crate::sketch_mse::{sketch_stroke_mask, sketch_weighted_mse};
use crate::structure::{
    FeatureTarget, StructureBundle, StructureNet, label_classes, one_hot, structure_loss,
};

/// The weights of the aids in the refiner's training and the frozen networks they need
/// (0 / None everywhere: the paper's L_sim alone). Recorded in the run's checkpoints as
/// top-level fields of the training config ([`RefinerTrainConfig::extra_terms`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AidsConfig {
    /// Weight of the sketch-weighted MSE ([`sketch_weighted_mse`]).
    pub sketch_l2_lambda: f64,
    /// Weight of the realism term [`realism_loss`] of the frozen `discriminator`.
    pub adv_lambda: f64,
    /// Weight of the region loss [`crate::region_colour_loss`] (needs the targets' label maps,
    /// [`Pairs::masks`]).
    pub region_lambda: f64,
    /// Weight of the structure loss [`structure_loss`] of the frozen `structure_net` on ŷ_t
    /// against the target's label map (needs [`Pairs::masks`]).
    pub structure_lambda: f64,
    /// Weight of the feature distance [`crate::structure::structure_feature_distance`] between
    /// ŷ_t and y through the frozen `structure_net`'s feature maps (a domain-trained stand-in
    /// for the unavailable MoCo trunk; the shipped H was fine-tuned with it).
    pub structure_features_lambda: f64,
    /// A structure-net export folder ([`StructureBundle`]); needed when `structure_lambda` or
    /// `structure_features_lambda` > 0.
    pub structure_net: Option<PathBuf>,
    /// The discriminator trained with the generator (see [`load_discriminator`]); needed when
    /// `adv_lambda` > 0.
    pub discriminator: Option<PathBuf>,
}

impl Default for AidsConfig {
    fn default() -> Self {
        Self {
            sketch_l2_lambda: 0.0,
            adv_lambda: 0.0,
            region_lambda: 0.0,
            structure_lambda: 0.0,
            structure_features_lambda: 0.0,
            structure_net: None,
            discriminator: None,
        }
    }
}

impl AidsConfig {
    /// Whether a structure term is on (and the structure net is needed).
    pub fn uses_structure_net(&self) -> bool {
        self.structure_lambda > 0.0 || self.structure_features_lambda > 0.0
    }

    /// Whether a term needs the targets' label maps ([`Pairs::masks`]).
    pub fn uses_label_maps(&self) -> bool {
        self.region_lambda > 0.0 || self.structure_lambda > 0.0
    }

    /// Checks the weights and the files they need, for training batches of `batch` pairs.
    pub fn validate(&self, batch: usize) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m).into());
        for (name, v) in [
            ("sketch_l2_lambda", self.sketch_l2_lambda),
            ("adv_lambda", self.adv_lambda),
            ("region_lambda", self.region_lambda),
            ("structure_lambda", self.structure_lambda),
            ("structure_features_lambda", self.structure_features_lambda),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
        }
        if self.uses_structure_net() && self.structure_net.is_none() {
            return bad(format!(
                "structure_lambda = {} / structure_features_lambda = {} need a structure-net \
                 export folder",
                self.structure_lambda, self.structure_features_lambda
            ));
        }
        if self.adv_lambda > 0.0 {
            if self.discriminator.is_none() {
                return bad(format!(
                    "adv_lambda = {} needs a discriminator file",
                    self.adv_lambda
                ));
            }
            // The discriminator's minibatch-stddev groups of min(batch, 4) must tile the batch.
            let group = batch.min(DISCRIMINATOR_GROUP);
            if !batch.is_multiple_of(group) {
                return bad(format!(
                    "batch {batch} with adv_lambda > 0: the discriminator needs a batch below {} \
                     or a multiple of it",
                    DISCRIMINATOR_GROUP
                ));
            }
        }
        Ok(())
    }

    /// The settings as the top-level config fields a checkpoint records.
    pub fn to_config_fields(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => unreachable!("AidsConfig serialises to an object"),
            Err(e) => Err(TrainError::Config(format!("cannot serialise the aids: {e}")).into()),
        }
    }

    /// The settings a run's config records (absent fields: 0 / None).
    pub fn from_config(cfg: &RefinerTrainConfig) -> Result<Self> {
        serde_json::from_value(serde_json::Value::Object(cfg.extra_terms.clone()))
            .map_err(|e| TrainError::Config(format!("unreadable aids settings: {e}")).into())
    }

    /// Loads the frozen networks (discriminator first, then the structure net) and builds the
    /// terms with a weight > 0, in the order of the log columns: sketch-weighted MSE, realism,
    /// region, structure, structure features. `gen_cfg` is the generator's config.
    pub fn extra_terms(&self, gen_cfg: &StyleGan2Config, device: &Device) -> Result<ExtraTerms> {
        let realism = match (&self.discriminator, self.adv_lambda > 0.0) {
            (Some(path), true) => Some(load_discriminator(path, gen_cfg, device)?),
            _ => None,
        };
        let structure = match (&self.structure_net, self.uses_structure_net()) {
            (Some(dir), true) => {
                let bundle = StructureBundle::load(dir, device)?;
                let r = StructureRef {
                    dir: dir.display().to_string(),
                    sha256: bundle.meta.weights_sha256.clone(),
                    lambda: self.structure_lambda,
                    features_lambda: self.structure_features_lambda,
                };
                Some((bundle.net, r))
            }
            _ => None,
        };
        let record = AidsRecord {
            sketch_l2: self.sketch_l2_lambda,
            discriminator: realism.as_ref().map(|(_, r)| r.clone()),
            region: self.region_lambda,
            structure: structure.as_ref().map(|(_, r)| r.clone()),
        };
        let mut terms: Vec<Box<dyn ExtraLoss>> = Vec::new();
        if self.sketch_l2_lambda > 0.0 {
            terms.push(Box::new(SketchL2Term(self.sketch_l2_lambda)));
        }
        if let Some((d, _)) = realism {
            terms.push(Box::new(RealismTerm {
                d,
                weight: self.adv_lambda,
            }));
        }
        if self.region_lambda > 0.0 {
            terms.push(Box::new(RegionTerm(self.region_lambda)));
        }
        if let Some((net, _)) = structure {
            if self.structure_lambda > 0.0 {
                terms.push(Box::new(StructureTerm {
                    net: net.clone(),
                    weight: self.structure_lambda,
                }));
            }
            if self.structure_features_lambda > 0.0 {
                terms.push(Box::new(StructureFeaturesTerm {
                    net,
                    weight: self.structure_features_lambda,
                }));
            }
        }
        Ok(ExtraTerms {
            terms,
            record: record.to_fields()?,
            adv_lambda: self.adv_lambda,
        })
    }
}

/// Opens a phase-2 run ([`RefinerTrainer::open_with_extras`]) with the aids of `aids` (checked
/// with the training config, then recorded in `cfg.extra_terms`).
pub fn open_trainer(
    mut cfg: RefinerTrainConfig,
    aids: &AidsConfig,
    generator: FrozenGenerator,
    encoder_dir: &Path,
    loss: SimilarityLoss,
    out: impl AsRef<Path>,
    device: &Device,
) -> Result<RefinerTrainer> {
    cfg.validate()?;
    aids.validate(cfg.batch)?;
    cfg.extra_terms = aids.to_config_fields()?;
    let extras = aids.extra_terms(generator.config(), device)?;
    RefinerTrainer::open_with_extras(cfg, extras, generator, encoder_dir, loss, out, device)
}

/// The structure net of a run's structure terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructureRef {
    /// Its export folder at training time.
    pub dir: String,
    /// sha256 of its `structure.safetensors`.
    pub sha256: String,
    /// The weight of the structure loss (0: not used).
    pub lambda: f64,
    /// The weight of the structure feature distance (0: not used).
    #[serde(default)]
    pub features_lambda: f64,
}

/// What `refiner.json` records about the aids ([`RefinerMeta::extra_terms`]; 0 / None: the
/// paper's loss; `losses.adv` holds the realism term's weight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AidsRecord {
    /// Weight of the sketch-weighted MSE.
    pub sketch_l2: f64,
    /// The frozen discriminator of the realism term.
    pub discriminator: Option<DiscriminatorRef>,
    /// Weight of the region loss.
    pub region: f64,
    /// The frozen structure net of the structure terms and their weights.
    pub structure: Option<StructureRef>,
}

impl Default for AidsRecord {
    fn default() -> Self {
        Self {
            sketch_l2: 0.0,
            discriminator: None,
            region: 0.0,
            structure: None,
        }
    }
}

impl AidsRecord {
    /// The record of a refiner export's metadata.
    pub fn of(meta: &RefinerMeta) -> Result<Self> {
        serde_json::from_value(serde_json::Value::Object(meta.extra_terms.clone())).map_err(|e| {
            TrainError::Config(format!(
                "unreadable training-aid fields in refiner.json: {e}"
            ))
            .into()
        })
    }

    fn to_fields(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => unreachable!("AidsRecord serialises to an object"),
            Err(e) => Err(TrainError::Config(format!("cannot serialise the aids: {e}")).into()),
        }
    }
}

/// The targets' label maps, which the region and structure terms need.
fn label_maps(batch: &Pairs) -> Result<&Tensor> {
    batch.masks.as_ref().ok_or_else(|| {
        TrainError::Data(
            "the region and structure losses need the targets' label maps (masks), and the data \
             has none"
                .into(),
        )
        .into()
    })
}

/// A per-batch term: a closure of ŷ_t.
struct Prepared<F: Fn(&Tensor) -> Result<Tensor>>(F);

impl<F: Fn(&Tensor) -> Result<Tensor>> BatchLoss for Prepared<F> {
    fn loss(&self, image: &Tensor) -> Result<Tensor> {
        (self.0)(image)
    }
}

struct SketchL2Term(f64);

impl ExtraLoss for SketchL2Term {
    fn name(&self) -> &str {
        "sketch_l2"
    }
    fn weight(&self) -> f64 {
        self.0
    }
    fn for_batch<'a>(
        &'a self,
        batch: &'a Pairs,
        image_size: usize,
    ) -> Result<Box<dyn BatchLoss + 'a>> {
        let mask = sketch_stroke_mask(&batch.sketches, image_size)?;
        Ok(Box::new(Prepared(move |image: &Tensor| {
            sketch_weighted_mse(image, &batch.images, &mask)
        })))
    }
}

struct RealismTerm {
    d: Discriminator,
    weight: f64,
}

impl ExtraLoss for RealismTerm {
    fn name(&self) -> &str {
        "adv"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    fn for_batch<'a>(&'a self, _: &'a Pairs, _: usize) -> Result<Box<dyn BatchLoss + 'a>> {
        Ok(Box::new(Prepared(|image: &Tensor| {
            realism_loss(&self.d, image)
        })))
    }
}

struct RegionTerm(f64);

impl ExtraLoss for RegionTerm {
    fn name(&self) -> &str {
        "region"
    }
    fn weight(&self) -> f64 {
        self.0
    }
    fn for_batch<'a>(&'a self, batch: &'a Pairs, _: usize) -> Result<Box<dyn BatchLoss + 'a>> {
        let regions = RegionWeights::new(label_maps(batch)?)?;
        Ok(Box::new(Prepared(move |image: &Tensor| {
            regions.loss(image, &batch.images)
        })))
    }
}

struct StructureTerm {
    net: StructureNet,
    weight: f64,
}

impl ExtraLoss for StructureTerm {
    fn name(&self) -> &str {
        "structure"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    fn for_batch<'a>(&'a self, batch: &'a Pairs, _: usize) -> Result<Box<dyn BatchLoss + 'a>> {
        let target = one_hot(&label_classes(label_maps(batch)?)?)?;
        Ok(Box::new(Prepared(move |image: &Tensor| {
            Ok(structure_loss(&self.net.forward(image)?, &target)?.total)
        })))
    }
}

struct StructureFeaturesTerm {
    net: StructureNet,
    weight: f64,
}

impl ExtraLoss for StructureFeaturesTerm {
    fn name(&self) -> &str {
        "structure_features"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    fn for_batch<'a>(&'a self, batch: &'a Pairs, _: usize) -> Result<Box<dyn BatchLoss + 'a>> {
        let target = FeatureTarget::new(&self.net, &batch.images)?;
        Ok(Box::new(Prepared(move |image: &Tensor| {
            target.distance(&self.net, image)
        })))
    }
}
