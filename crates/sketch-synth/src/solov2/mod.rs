//! The SOLOv2 sketch synthesizer S (Wang et al., "SOLOv2: Dynamic and Fast Instance
//! Segmentation", NeurIPS 2020), re-implemented in candle after mmdetection 3.x
//! (`SOLOV2Head`, `MaskFeatModule`, `mask_matrix_nms`) and the official WXinlong/SOLO code.
//!
//! In Sketch2MedI, S segments pharynx images into instances (uvula, pharyngeal wall, tonsil,
//! tongue); the contours of instances with score >= 0.35 are the training sketches.
//!
//! - [`config`]: [`SoloV2Config`] with the presets `default_r50`, `light_r18`, `tiny_r18`.
//! - [`model`]: [`SoloV2`] (ResNet + FPN + head), outputs per level and the mask features,
//!   [`dynamic_conv`].
//! - [`nms`]: [`matrix_nms`] (Gaussian and linear kernels).
//! - [`inference`]: [`postprocess`], `SoloV2::predict` -> instance masks, and
//!   [`sketch_from_image`] (contours of instances with score >= 0.35).
//! - [`targets`]: [`build_targets`] (scale ranges, centre sampling, 3 x 3 clip, 1/4 masks).
//! - [`loss`]: [`solo_loss`] = focal (categories) + 3 x Dice (masks).
//! - [`data`]: [`SegDataset`] (annotated images), augmentation, ground-truth instances.
//! - [`train`]: [`Trainer`] (AdamW with warm-up and step decays, checkpoints, exact resume,
//!   CSV log, loss curves, wall-clock budget).
//! - [`export`]: `solov2.safetensors` + `solov2.json` folders and [`load_exported`].
//!
//! See `docs/SOLOV2.md` for parameter names, parity errors and deviations.

pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod inference;
pub mod loss;
pub mod model;
pub mod nms;
pub mod targets;
pub mod train;

pub use config::{LossConfig, NmsKernel, SoloV2Config, TestConfig};
pub use data::{
    AugmentConfig, InMemorySegDataset, SegDataset, SegSample, augment, flip_sample, gt_instances,
    normalize_images, resize_sample, toy_sample,
};
pub use error::{Result, SoloError};
pub use export::{
    EXPORT_FORMAT, ExportInfo, INFO_FILE, WEIGHTS_FILE, convert_export, export_model,
    load_exported, read_export_info,
};
pub use inference::{
    Detection, EmptySketchCounter, InferenceStats, Prediction, SynthesizedSketch, postprocess,
    sketch_from_image, sketch_from_prediction,
};
pub use loss::{SoloLosses, dice_loss_rows, sigmoid_focal_loss_sum, solo_loss};
pub use model::{SoloV2, SoloV2Output, dynamic_conv};
pub use nms::{MatrixNmsParams, NmsOutput, matrix_nms};
pub use targets::{GtInstance, ImageTargets, LevelTargets, build_targets, rescale_mask};
pub use train::{
    BackboneNorm, StepStats, StopReason, TrainConfig, TrainError, Trainer, is_trainable,
};
