//! SOLOv2 configuration (serde) with the reference presets.
//!
//! Values follow mmdetection's `configs/solov2/solov2_r50_fpn_*.py` (standard) and
//! `solov2-light_r18_fpn_*.py` (light-448) in mmdetection 3.3.0.

use backbones::ResNetDepth;
use serde::{Deserialize, Serialize};

use super::error::{Result, SoloError};
use crate::contour::SketchConfig;

/// Matrix NMS decay kernel (reference A9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NmsKernel {
    /// `exp(-sigma * iou^2)` (mmdet's form; the default).
    Gaussian,
    /// `1 - iou`.
    Linear,
}

/// Inference settings (mmdet `test_cfg`, reference A8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestConfig {
    /// Masks kept (by score) before Matrix NMS (500).
    pub nms_pre: usize,
    /// Category score threshold after point NMS (0.1).
    pub score_thr: f32,
    /// Soft-mask binarisation threshold (0.5).
    pub mask_thr: f32,
    /// Score threshold after the Matrix NMS decay (`filter_thr` / `update_thr`, 0.05).
    pub filter_thr: f32,
    /// Matrix NMS kernel (Gaussian).
    pub kernel: NmsKernel,
    /// Gaussian sigma (2.0).
    pub sigma: f32,
    /// Instances kept per image (100).
    pub max_per_img: usize,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            nms_pre: 500,
            score_thr: 0.1,
            mask_thr: 0.5,
            filter_thr: 0.05,
            kernel: NmsKernel::Gaussian,
            sigma: 2.0,
            max_per_img: 100,
        }
    }
}

/// Loss settings (reference A7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Focal loss alpha (0.25).
    pub focal_alpha: f32,
    /// Focal loss gamma (2.0).
    pub focal_gamma: f32,
    /// Focal loss weight (1.0).
    pub cls_weight: f32,
    /// Dice loss weight (3.0).
    pub dice_weight: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            focal_alpha: 0.25,
            focal_gamma: 2.0,
            cls_weight: 1.0,
            dice_weight: 3.0,
        }
    }
}

/// The whole SOLOv2 configuration. Names follow mmdetection 3.x (`SOLOV2Head`,
/// `MaskFeatModule`, `FPN`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoloV2Config {
    /// ResNet depth of `backbone.*` (torchvision names, no `fc`).
    pub backbone: ResNetDepth,
    /// Image channels (3, RGB).
    pub in_channels: usize,
    /// Foreground classes (4: uvula, pharyngeal wall, tonsil, tongue; no background channel).
    pub num_classes: usize,
    /// FPN output width and head input width (`neck.out_channels` = `mask_head.in_channels`, 256).
    pub fpn_channels: usize,
    /// Convs in each head tower (`stacked_convs`: 4 standard, 2 light).
    pub stacked_convs: usize,
    /// Width of the head towers (`feat_channels`: 512 standard, 256 light).
    pub feat_channels: usize,
    /// Mask-feature width E = dynamic kernel length (`mask_feature_head.out_channels`: 256 / 128).
    pub mask_channels: usize,
    /// Hidden width of the mask-feature branch (`mask_feature_head.feat_channels`, 128).
    pub mask_feat_channels: usize,
    /// GroupNorm groups (32).
    pub gn_groups: usize,
    /// Grid numbers S per level ([40, 36, 24, 16, 12]).
    pub num_grids: Vec<usize>,
    /// Level strides used by inference's minimum-area filter ([8, 8, 16, 32, 32]).
    pub strides: Vec<usize>,
    /// Instance scale ranges sqrt(w*h) per level, in input pixels.
    pub scale_ranges: Vec<(f32, f32)>,
    /// Centre-region scale sigma (`pos_scale`, 0.2).
    pub pos_scale: f32,
    /// Square network input size in pixels (multiple of 32); images are resized to it.
    pub input_size: usize,
    /// Per-channel mean on the 0-255 scale (ImageNet RGB).
    pub pixel_mean: [f32; 3],
    /// Per-channel std on the 0-255 scale (ImageNet RGB).
    pub pixel_std: [f32; 3],
    /// Inference settings.
    pub test: TestConfig,
    /// Loss settings.
    pub loss: LossConfig,
}

/// Number of FPN levels the head uses (P2..P6).
pub const NUM_LEVELS: usize = 5;
/// Mask-feature stride (F is at 1/4 of the input).
pub const MASK_STRIDE: usize = 4;

impl SoloV2Config {
    /// Standard SOLOv2 R50-FPN (mmdet `solov2_r50_fpn_3x_coco`), 4 classes. NOTE: the input
    /// is a square `input_size` = 800 (the reference keeps the aspect ratio at 1333x800).
    pub fn default_r50() -> Self {
        Self {
            backbone: ResNetDepth::R50,
            in_channels: 3,
            num_classes: 4,
            fpn_channels: 256,
            stacked_convs: 4,
            feat_channels: 512,
            mask_channels: 256,
            mask_feat_channels: 128,
            gn_groups: 32,
            num_grids: vec![40, 36, 24, 16, 12],
            strides: vec![8, 8, 16, 32, 32],
            scale_ranges: vec![
                (1.0, 96.0),
                (48.0, 192.0),
                (96.0, 384.0),
                (192.0, 768.0),
                (384.0, 2048.0),
            ],
            pos_scale: 0.2,
            input_size: 800,
            pixel_mean: [123.675, 116.28, 103.53],
            pixel_std: [58.395, 57.12, 57.375],
            test: TestConfig::default(),
            loss: LossConfig::default(),
        }
    }

    /// SOLOv2-light-448 with ResNet-18 (mmdet `solov2-light_r18_fpn_ms-3x_coco`, no DCN): 2
    /// tower convs of width 256, E = 128, light scale ranges, 448 px square input.
    pub fn light_r18() -> Self {
        Self {
            backbone: ResNetDepth::R18,
            stacked_convs: 2,
            feat_channels: 256,
            mask_channels: 128,
            scale_ranges: vec![
                (1.0, 56.0),
                (28.0, 112.0),
                (56.0, 224.0),
                (112.0, 448.0),
                (224.0, 896.0),
            ],
            input_size: 448,
            ..Self::default_r50()
        }
    }

    /// A tiny CPU preset for tests: ResNet-18, 32-wide FPN and towers, E = 16, GN(8), grids
    /// [12, 10, 8, 6, 4], 64 px input, light scale ranges scaled by 64/448.
    pub fn tiny_r18() -> Self {
        let s = 64.0 / 448.0;
        Self {
            fpn_channels: 32,
            feat_channels: 32,
            mask_channels: 16,
            mask_feat_channels: 16,
            gn_groups: 8,
            num_grids: vec![12, 10, 8, 6, 4],
            scale_ranges: Self::light_r18()
                .scale_ranges
                .iter()
                .map(|&(a, b)| (a * s, b * s))
                .collect(),
            input_size: 64,
            ..Self::light_r18()
        }
    }

    /// The CPU preset S is trained with on the phantom (2 cores, <= 40 minutes): ResNet-18,
    /// the light head at half width (FPN and towers 128, E = 64, mask-feature hidden width 64),
    /// 2 tower convs, grids [20, 16, 12, 8, 6] (1/4 of the reference's cells: the head's cost
    /// grows with the cells, not with the image), light scale ranges scaled by 128/448, 128 px.
    /// NOTE: not a reference config; chosen for CPU time (docs/SOLOV2.md, "Training").
    pub fn phantom_r18() -> Self {
        Self {
            fpn_channels: 64,
            feat_channels: 64,
            mask_channels: 32,
            mask_feat_channels: 32,
            gn_groups: 16,
            num_grids: vec![16, 12, 8, 6, 4],
            ..Self::light_r18()
        }
        .with_input_size(128)
    }

    /// The same network at another square input size (multiple of 32): the scale ranges are
    /// rescaled by `size / input_size` so instances keep their levels.
    pub fn with_input_size(mut self, size: usize) -> Self {
        let f = size as f32 / self.input_size.max(1) as f32;
        for r in &mut self.scale_ranges {
            *r = (r.0 * f, r.1 * f);
        }
        self.input_size = size;
        self
    }

    /// A preset by name: `default_r50`, `light_r18`, `phantom_r18`, `tiny_r18`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "default_r50" => Ok(Self::default_r50()),
            "light_r18" => Ok(Self::light_r18()),
            "phantom_r18" => Ok(Self::phantom_r18()),
            "tiny_r18" => Ok(Self::tiny_r18()),
            other => Err(SoloError::Config(format!(
                "unknown preset `{other}` (default_r50, light_r18, phantom_r18, tiny_r18)"
            ))),
        }
    }

    /// Backbone stage channels C2..C5.
    pub fn backbone_channels(&self) -> [usize; 4] {
        self.backbone.stage_channels()
    }

    /// Total number of grid cells over all levels (3872 for the reference grids).
    pub fn num_cells(&self) -> usize {
        self.num_grids.iter().map(|s| s * s).sum()
    }

    /// The sketch settings of the paper: contours of instances with score >= 0.35.
    pub fn sketch_config() -> SketchConfig {
        SketchConfig::default()
    }

    /// Checks every value; called by the model constructor.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(SoloError::Config(m));
        for (name, v) in [
            ("in_channels", self.in_channels),
            ("num_classes", self.num_classes),
            ("fpn_channels", self.fpn_channels),
            ("stacked_convs", self.stacked_convs),
            ("feat_channels", self.feat_channels),
            ("mask_channels", self.mask_channels),
            ("mask_feat_channels", self.mask_feat_channels),
            ("gn_groups", self.gn_groups),
        ] {
            if v == 0 {
                return err(format!("{name} must be positive"));
            }
        }
        for (name, v) in [
            ("feat_channels", self.feat_channels),
            ("mask_channels", self.mask_channels),
            ("mask_feat_channels", self.mask_feat_channels),
        ] {
            if !v.is_multiple_of(self.gn_groups) {
                return err(format!(
                    "{name} = {v} is not divisible by gn_groups = {}",
                    self.gn_groups
                ));
            }
        }
        if self.num_grids.len() != NUM_LEVELS
            || self.strides.len() != NUM_LEVELS
            || self.scale_ranges.len() != NUM_LEVELS
        {
            return err(format!(
                "num_grids ({}), strides ({}) and scale_ranges ({}) must each have {NUM_LEVELS} levels",
                self.num_grids.len(),
                self.strides.len(),
                self.scale_ranges.len()
            ));
        }
        if self.num_grids.contains(&0) {
            return err("grid numbers must be positive".into());
        }
        if self.input_size == 0 || !self.input_size.is_multiple_of(32) {
            return err(format!(
                "input_size = {} must be a positive multiple of 32",
                self.input_size
            ));
        }
        if self.pixel_std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return err("pixel_std must be finite and positive".into());
        }
        let t = &self.test;
        for (name, v) in [
            ("score_thr", t.score_thr),
            ("mask_thr", t.mask_thr),
            ("filter_thr", t.filter_thr),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return err(format!("test.{name} = {v} must lie in [0, 1]"));
            }
        }
        if !t.sigma.is_finite() || t.sigma <= 0.0 {
            return err(format!("test.sigma = {} must be positive", t.sigma));
        }
        Ok(())
    }
}
