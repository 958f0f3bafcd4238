//! Training aids for the refiner H that are not HyperStyle (NOTE: none of them is in the paper
//! or in HyperStyle; `hyperstyle_refiner` is the paper's H and trains it with L_sim alone).
//! Each aid is an extra loss term added to L_sim at every refinement iteration through the
//! [`hyperstyle_refiner::ExtraLoss`] hook:
//!
//! - [`structure`]: a small U-Net ([`StructureNet`]) that segments an image into background
//!   and the four anatomical classes, its trainer ([`StructureTrainer`],
//!   `sketch2medi refiner structure-net`) and two terms of the frozen net: the structure
//!   feature distance ([`structure_feature_distance`], an LPIPS-style distance through the
//!   net's features; **the shipped H was fine-tuned with it**,
//!   `weights/sketch2medi_phantom64/refiner/refiner.json`) and the structure loss
//!   ([`structure_loss`], cross-entropy + soft Dice against the target's label map).
//! - [`region`]: the region colour loss ([`region_colour_loss`], [`RegionWeights`]): the mean
//!   colour of every labelled structure of the target.
//! - [`sketch_mse`]: the sketch-weighted MSE ([`sketch_weighted_mse`] on the
//!   [`sketch_stroke_mask`]): the squared error on the pixels the sketch draws.
//! - [`realism`]: the non-saturating GAN loss ([`realism_loss`]) of the generator's own
//!   discriminator, frozen ([`load_discriminator`], [`DiscriminatorRef`]).
//! - [`terms`]: their settings ([`AidsConfig`], the `refiner train` flags `--structure-features`,
//!   `--structure`, `--region`, `--sketch-l2`, `--adv`), the [`hyperstyle_refiner::ExtraLoss`]
//!   terms built from them, what `refiner.json` records ([`AidsRecord`]) and [`open_trainer`].
//!
//! ```text
//! sketch2medi refiner structure-net --data data/phantom64 --out runs/structure
//! sketch2medi refiner train ... --structure-features 1 --structure-net runs/structure/export
//! ```
//!
//! docs/ENCODER_REFINER.md ("Fine-tuning experiments", "Structure terms") has what each aid
//! does to H.

pub mod realism;
pub mod region;
pub mod sketch_mse;
pub mod structure;
pub mod terms;

pub use realism::{DiscriminatorRef, load_discriminator, realism_loss};
pub use region::{RegionWeights, region_colour_loss};
pub use sketch_mse::{sketch_stroke_mask, sketch_weighted_mse};
pub use structure::{
    HeldOutDice, StructureBundle, StructureNet, StructureNetConfig, StructureTrainConfig,
    StructureTrainer, structure_feature_distance, structure_loss,
};
pub use terms::{AidsConfig, AidsRecord, StructureRef, open_trainer};
