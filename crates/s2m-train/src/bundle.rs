//! Exported bundle folders and hashes: an export folder is staged next to its final place and
//! renamed into it (a crash never leaves a half-written bundle under the final name); loading
//! names the missing or bad file; weight files carry their sha256 in the bundle's JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{TrainError, TrainResult};

/// Lower-case hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> TrainResult<String> {
    let bytes = std::fs::read(path).map_err(|e| s2m_core::CoreError::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 over sorted names, shapes and f32 little-endian values (for in-memory weights).
pub fn sha256_tensors(tensors: &HashMap<String, Tensor>) -> TrainResult<String> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut h = Sha256::new();
    for name in names {
        let t = &tensors[name];
        h.update(name.as_bytes());
        h.update(format!("{:?}", t.dims()).as_bytes());
        for v in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
            h.update(v.to_le_bytes());
        }
    }
    Ok(hex(&h.finalize()))
}

/// Writes an export folder: every `(file, tensors)` as safetensors, then `json_file` with the
/// metadata `meta(stage)` returns (it may hash the weight files written in `stage`), staged in
/// a sibling folder and renamed into `dir` (an existing `dir` is replaced), so a crash never
/// leaves a half-written bundle under the final name.
pub fn write_bundle<M: Serialize>(
    dir: &Path,
    files: &[(&str, &HashMap<String, Tensor>)],
    json_file: &str,
    meta: impl FnOnce(&Path) -> TrainResult<M>,
) -> TrainResult<M> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "export".into());
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| s2m_core::CoreError::io(parent, e))?;
    let stage = parent.join(format!(".{name}.partial"));
    if stage.exists() {
        std::fs::remove_dir_all(&stage).map_err(|e| s2m_core::CoreError::io(&stage, e))?;
    }
    std::fs::create_dir_all(&stage).map_err(|e| s2m_core::CoreError::io(&stage, e))?;
    for (file, tensors) in files {
        candle_core::safetensors::save(tensors, stage.join(file))?;
    }
    let meta = meta(&stage)?;
    let json = serde_json::to_string_pretty(&meta)
        .map_err(|e| TrainError::Config(format!("cannot serialise {json_file}: {e}")))?;
    s2m_core::fsio::atomic_write(stage.join(json_file), json.as_bytes())?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| s2m_core::CoreError::io(dir, e))?;
    }
    std::fs::rename(&stage, dir).map_err(|e| s2m_core::CoreError::io(dir, e))?;
    Ok(meta)
}

/// [`write_bundle`] of a single weights file whose sha256 goes into the metadata:
/// `meta(sha256 of weights_file)` is written as `json_file`.
pub fn write_weights_bundle<M: Serialize>(
    dir: &Path,
    weights_file: &str,
    tensors: &HashMap<String, Tensor>,
    json_file: &str,
    meta: impl FnOnce(String) -> M,
) -> TrainResult<M> {
    write_bundle(dir, &[(weights_file, tensors)], json_file, |stage| {
        Ok(meta(sha256_file(&stage.join(weights_file))?))
    })
}

/// A required file of a bundle folder; the error names it and the folder.
pub fn bundle_file(dir: &Path, file: &str, what: &str) -> TrainResult<PathBuf> {
    if !dir.is_dir() {
        return Err(TrainError::bundle(
            dir,
            format!("{what} bundle folder not found"),
        ));
    }
    let path = dir.join(file);
    if !path.is_file() {
        return Err(TrainError::bundle(
            &path,
            format!("missing {file} in the {what} bundle {}", dir.display()),
        ));
    }
    Ok(path)
}

/// Reads a bundle's JSON metadata and checks its `format` tag.
pub fn read_bundle_json<M: DeserializeOwned>(
    dir: &Path,
    file: &str,
    what: &str,
    format: &str,
) -> TrainResult<M> {
    let path = bundle_file(dir, file, what)?;
    let text = std::fs::read_to_string(&path).map_err(|e| s2m_core::CoreError::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::bundle(&path, format!("not valid JSON: {e}")))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(f) if f == format => {}
        other => {
            return Err(TrainError::bundle(
                &path,
                format!("format tag is {other:?}, expected {format:?}"),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| TrainError::bundle(&path, format!("unreadable {what} metadata: {e}")))
}

/// Checks a bundle file against the sha256 its metadata records.
pub fn verify_sha256(path: &Path, expected: &str) -> TrainResult<()> {
    let got = sha256_file(path)?;
    if got != expected {
        return Err(TrainError::bundle(
            path,
            format!("sha256 {got} differs from the {expected} recorded in the bundle metadata"),
        ));
    }
    Ok(())
}
