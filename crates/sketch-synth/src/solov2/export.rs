//! Trained weights of S as a folder: `solov2.safetensors` (every parameter and BatchNorm
//! buffer under mmdetection 3.x names, f32, or f16 after [`convert_export`]) and `solov2.json` ([`ExportInfo`]: config, input
//! size, classes, training data, steps, time). [`load_exported`] reads the folder back with
//! [`SoloV2::load`], which checks every key and shape against the config of the JSON.
//!
//! ```no_run
//! # fn main() -> sketch_synth::solov2::Result<()> {
//! let (model, info) = sketch_synth::solov2::load_exported(
//!     std::path::Path::new("weights/solov2_phantom"),
//!     &candle_core::Device::Cpu,
//! )?;
//! println!("{} steps on {}", info.steps, info.data);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarMap;
use s2m_core::anatomy::Class;
use serde::{Deserialize, Serialize};

use super::config::SoloV2Config;
use super::error::{Result, SoloError};
use super::model::SoloV2;

/// File name of the weights in an export folder.
pub const WEIGHTS_FILE: &str = "solov2.safetensors";
/// File name of the description in an export folder.
pub const INFO_FILE: &str = "solov2.json";
/// Value of [`ExportInfo::format`].
pub const EXPORT_FORMAT: &str = "sketch2medi-solov2/1";

/// `solov2.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportInfo {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The network configuration (load with it).
    pub config: SoloV2Config,
    /// Square network input size in pixels (also in `config`).
    pub input_size: usize,
    /// Output channel k is class `classes[k]`.
    pub classes: Vec<String>,
    /// The training data (folder and split).
    pub data: String,
    /// Optimisation steps.
    pub steps: u64,
    /// Training wall time in seconds (all resumed pieces of the run).
    pub train_seconds: f64,
    /// The full training configuration (JSON), for provenance.
    #[serde(default)]
    pub training: serde_json::Value,
    /// Storage type of the weights file (`f32`, or `f16` to halve the size); loading always
    /// computes in f32.
    #[serde(default = "default_weights_dtype")]
    pub weights_dtype: String,
}

fn default_weights_dtype() -> String {
    "f32".into()
}

impl ExportInfo {
    /// A description of a model trained `steps` steps on `data`.
    pub fn new(
        config: SoloV2Config,
        data: &str,
        steps: u64,
        train_seconds: f64,
        training: serde_json::Value,
    ) -> Self {
        Self {
            format: EXPORT_FORMAT.into(),
            input_size: config.input_size,
            classes: Class::ALL[..config.num_classes.min(4)]
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            config,
            data: data.into(),
            steps,
            train_seconds,
            training,
            weights_dtype: default_weights_dtype(),
        }
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SoloError {
    SoloError::Input(format!("{}: {e}", path.display()))
}

/// Writes the vars of a model (mmdet names) and `info` to `dir` (created; each file written to
/// a temporary sibling and renamed into place).
pub fn export_model(vars: &VarMap, info: &ExportInfo, dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    let tensors: HashMap<String, candle_core::Tensor> = s2m_train::optim::varmap_named_vars(vars)
        .into_iter()
        .map(|(n, v)| Ok((n, v.as_tensor().to_dtype(DType::F32)?.detach())))
        .collect::<Result<_>>()?;
    write_folder(dir, &tensors, info)
}

/// Writes the weights (temporary sibling renamed into place) and then the JSON.
fn write_folder(
    dir: &Path,
    tensors: &HashMap<String, candle_core::Tensor>,
    info: &ExportInfo,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let path = dir.join(WEIGHTS_FILE);
    let tmp = dir.join(format!("{WEIGHTS_FILE}.partial"));
    candle_core::safetensors::save(tensors, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
    let json = serde_json::to_string_pretty(info).map_err(|e| io_err(dir, e))?;
    s2m_core::fsio::atomic_write(dir.join(INFO_FILE), json.as_bytes())
        .map_err(|e| io_err(dir, e))?;
    Ok(())
}

/// Rewrites an export folder with its weights stored as `dtype` (f16 halves the file; f32 and
/// f16 are accepted) in `dst`; returns the new description.
pub fn convert_export(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    dtype: DType,
) -> Result<ExportInfo> {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let name = match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        other => {
            return Err(SoloError::Input(format!(
                "weights can be stored as f32 or f16, not {other:?}"
            )));
        }
    };
    let mut info = read_export_info(src)?;
    let path = src.join(WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)?
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(dtype)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    info.weights_dtype = name.into();
    write_folder(dst, &tensors, &info)?;
    Ok(info)
}

/// Reads `solov2.json` of an export folder.
pub fn read_export_info(dir: impl AsRef<Path>) -> Result<ExportInfo> {
    let path: PathBuf = dir.as_ref().join(INFO_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    let info: ExportInfo = serde_json::from_str(&text).map_err(|e| io_err(&path, e))?;
    if info.format != EXPORT_FORMAT {
        return Err(io_err(
            &path,
            format!("format `{}`, expected `{EXPORT_FORMAT}`", info.format),
        ));
    }
    info.config.validate()?;
    Ok(info)
}

/// Loads an export folder: the model (keys and shapes checked against the JSON's config) and
/// its description.
pub fn load_exported(dir: impl AsRef<Path>, device: &Device) -> Result<(SoloV2, ExportInfo)> {
    let dir = dir.as_ref();
    let info = read_export_info(dir)?;
    let model = SoloV2::load(
        &dir.join(WEIGHTS_FILE),
        info.config.clone(),
        DType::F32,
        device,
    )?;
    Ok((model, info))
}
