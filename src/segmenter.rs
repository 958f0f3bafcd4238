//! The SOLOv2 synthesizer S wired to the data and the metrics (the facade is the only crate that
//! sees both `sketch-synth` and `metrics`/`pharynx-phantom`):
//!
//! - [`PhantomSegDataset`]: a phantom dataset split (`seg_train`, `seg_val`) as a
//!   [`SegDataset`] (images + label maps decoded in parallel and held in memory);
//! - [`SoloV2Segmenter`]: the trained S as a [`metrics::dice::SegmentationModel`], so that
//!   `sketch2medi evaluate --metrics dice --segmenter DIR` segments reference and generated
//!   images (instances with score >= 0.35, the sketch threshold, as label maps);
//! - [`evaluate_dice`]: S's validation DICE against the ground-truth masks, per class and mean
//!   (the `metrics::dice` protocol: per-class union of instances, classes empty in both masks
//!   skipped), with the count of images where S found nothing.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use metrics::dice::{ClassDice, DiceSummary, SegmentationModel, dice_per_class, summarize};
use metrics::features::error::MetricsError;
use pharynx_phantom::DatasetSource;
use pharynx_phantom::layout::Split;
use rayon::prelude::*;
use s2m_core::anatomy::LabelMap;
use serde::{Deserialize, Serialize};
use sketch_synth::SketchConfig;
use sketch_synth::solov2::{ExportInfo, SegDataset, SegSample, SoloError, SoloV2, load_exported};

/// A split of a phantom dataset folder, decoded into memory.
pub struct PhantomSegDataset {
    name: String,
    ids: Vec<String>,
    samples: Vec<SegSample>,
}

impl PhantomSegDataset {
    /// Reads every image and mask of `split` of the folder `root` (in parallel); errors name
    /// the file.
    pub fn open(root: &Path, split: Split) -> anyhow::Result<Self> {
        let source = DatasetSource::phantom(root, split)?;
        let name = format!("{} split {}", root.display(), split.name());
        let samples = source
            .items()
            .par_iter()
            .map(|item| -> anyhow::Result<SegSample> {
                let image = s2m_core::imageio::load_rgb(&item.image)?;
                let mask = item
                    .mask
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{}: no mask", item.id))?;
                let gray = s2m_core::imageio::load_gray(mask)?;
                let labels = LabelMap::from_gray(gray, &mask.display().to_string())?;
                let s = SegSample { image, labels };
                s.validate(&item.image.display().to_string())?;
                Ok(s)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!samples.is_empty(), "{name} is empty");
        let ids = source.items().iter().map(|i| i.id.clone()).collect();
        Ok(Self { name, ids, samples })
    }

    /// The ids, in sample order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

impl SegDataset for PhantomSegDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn sample(&self, index: usize) -> sketch_synth::solov2::Result<SegSample> {
        self.samples.get(index).cloned().ok_or_else(|| {
            SoloError::Input(format!("sample {index} of {} is out of range", self.name))
        })
    }
    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// The trained S behind [`SegmentationModel`].
pub struct SoloV2Segmenter {
    model: SoloV2,
    info: ExportInfo,
    name: String,
    threshold: f32,
}

impl SoloV2Segmenter {
    /// Loads an export folder (`solov2.safetensors` + `solov2.json`); instances with score >=
    /// `threshold` (0.35 in the paper) make the label maps.
    pub fn load(dir: &Path, threshold: f32, device: &Device) -> anyhow::Result<Self> {
        let (model, info) = load_exported(dir, device)?;
        Ok(Self {
            model,
            info,
            name: format!("SOLOv2 ({})", dir.display()),
            threshold,
        })
    }

    /// The default threshold: the paper's sketch threshold delta.
    pub fn default_threshold() -> f32 {
        SketchConfig::default().score_threshold
    }

    /// The model.
    pub fn model(&self) -> &SoloV2 {
        &self.model
    }

    /// Its export description.
    pub fn info(&self) -> &ExportInfo {
        &self.info
    }

    /// Label maps of RGB images (each at its own size).
    pub fn segment_images(
        &self,
        images: &[image::RgbImage],
    ) -> sketch_synth::solov2::Result<Vec<LabelMap>> {
        let preds = self.model.predict(images)?;
        preds
            .iter()
            .zip(images)
            .map(|(p, img)| p.to_label_map(img.width(), img.height(), self.threshold))
            .collect()
    }
}

impl SegmentationModel for SoloV2Segmenter {
    fn name(&self) -> &str {
        &self.name
    }

    fn segment(&self, images: &Tensor) -> metrics::features::error::Result<Vec<LabelMap>> {
        let d = images.dims();
        if d.len() != 4 || d[1] != 3 {
            return Err(MetricsError::Mismatch(format!(
                "{}: images must be [B, 3, H, W] in [-1, 1], got {d:?}",
                self.name
            )));
        }
        let rgb = s2m_core::imageio::tensor_to_rgb_batch(images)
            .map_err(|e| MetricsError::Invalid(e.to_string()))?;
        self.segment_images(&rgb)
            .map_err(|e| MetricsError::Invalid(format!("{}: {e}", self.name)))
    }
}

/// S's DICE on a validation set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationDice {
    /// Per class and mean (see [`metrics::dice`]).
    pub summary: DiceSummary,
    /// Images where S predicted no instance above the threshold.
    pub empty_predictions: usize,
    /// Ids of those images (at most 50).
    pub empty_ids: Vec<String>,
    /// Seconds per image (inference + label map), batch `batch`.
    pub seconds_per_image: f64,
    /// Batch size of the run.
    pub batch: usize,
}

/// Segments every sample of `data` in batches of `batch` and scores it against its label map.
/// `ids` names the samples in the report (sample indices when shorter). `on_batch` sees the
/// number of images done (progress bars).
pub fn evaluate_dice(
    seg: &SoloV2Segmenter,
    data: &dyn SegDataset,
    ids: &[String],
    batch: usize,
    mut on_batch: impl FnMut(usize),
) -> anyhow::Result<ValidationDice> {
    anyhow::ensure!(batch > 0, "batch must be at least 1");
    let start = std::time::Instant::now();
    let mut per_image: Vec<ClassDice> = Vec::with_capacity(data.len());
    let mut empty = Vec::new();
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch) {
        let samples = chunk
            .iter()
            .map(|&i| data.sample(i))
            .collect::<Result<Vec<_>, _>>()?;
        let images: Vec<_> = samples.iter().map(|s| s.image.clone()).collect();
        let maps = seg.segment_images(&images)?;
        for ((&i, s), m) in chunk.iter().zip(&samples).zip(&maps) {
            if m.instances().is_empty() {
                empty.push(ids.get(i).cloned().unwrap_or_else(|| i.to_string()));
            }
            per_image.push(dice_per_class(&s.labels, m)?);
        }
        on_batch(per_image.len());
    }
    let seconds_per_image = start.elapsed().as_secs_f64() / data.len().max(1) as f64;
    let empty_predictions = empty.len();
    empty.truncate(50);
    Ok(ValidationDice {
        summary: summarize(&per_image)?,
        empty_predictions,
        empty_ids: empty,
        seconds_per_image,
        batch,
    })
}

/// `<dir>/<id>.png` for a sketch output folder.
pub fn sketch_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.png"))
}
