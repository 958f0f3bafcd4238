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
    Ok(sha256_bytes(&bytes))
}

/// Lower-case hex sha256 of `bytes` (a file already read).
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Refuses weights holding NaN or infinity: the error names `path` (the file the tensors came
/// from), the first such tensor (by name) and the value. Integer tensors are not looked at.
/// A trained model never holds such values; a file that does was written by a diverged run or
/// damaged, and would turn every output into NaN.
pub fn check_finite(path: &Path, tensors: &HashMap<String, Tensor>) -> TrainResult<()> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if !t.dtype().is_float() {
            continue;
        }
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(TrainError::bundle(
                path,
                format!(
                    "tensor `{name}` holds a non-finite value ({} at flat index {i} of {:?})",
                    values[i],
                    t.dims()
                ),
            ));
        }
    }
    Ok(())
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
        // Serialised here and written like every other file (mode from the umask; candle's
        // `save` left exported weights at 0600).
        let mut entries: Vec<(&String, &Tensor)> = tensors.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let bytes = safetensors::serialize(entries, None)
            .map_err(|e| TrainError::Config(format!("cannot serialise {file}: {e}")))?;
        s2m_core::fsio::atomic_write(stage.join(file), &bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn bundle_weights_round_trip_with_the_mode_of_the_json() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let t: HashMap<String, Tensor> = [
            ("b".to_string(), Tensor::new(&[1f32, 2.0], &dev).unwrap()),
            ("a".to_string(), Tensor::new(&[3f32], &dev).unwrap()),
        ]
        .into_iter()
        .collect();
        let out = dir.path().join("export");
        write_bundle(&out, &[("w.safetensors", &t)], "m.json", |_| Ok(1u32)).unwrap();
        let back = candle_core::safetensors::load(out.join("w.safetensors"), &dev).unwrap();
        assert_eq!(back["b"].to_vec1::<f32>().unwrap(), vec![1.0, 2.0]);
        assert_eq!(back["a"].to_vec1::<f32>().unwrap(), vec![3.0]);
        let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("w.safetensors"), mode("m.json"));
    }

    #[test]
    fn check_finite_names_the_file_and_the_first_bad_tensor() {
        let dev = Device::Cpu;
        let ok = Tensor::new(&[1f32, -2.0, 0.0], &dev).unwrap();
        let nan = Tensor::new(&[1f32, f32::NAN], &dev).unwrap();
        let inf = Tensor::new(&[f32::INFINITY], &dev).unwrap();
        let ints = Tensor::new(&[3u32, 4], &dev).unwrap();
        let path = Path::new("dir/weights.safetensors");
        let good: HashMap<String, Tensor> = [("a".to_string(), ok.clone()), ("n".into(), ints)]
            .into_iter()
            .collect();
        check_finite(path, &good).unwrap();
        let bad: HashMap<String, Tensor> = [
            ("a".to_string(), ok),
            ("layer.weight".into(), nan),
            ("z.bias".into(), inf),
        ]
        .into_iter()
        .collect();
        let e = check_finite(path, &bad).unwrap_err().to_string();
        assert!(
            e.contains("weights.safetensors") && e.contains("`layer.weight`") && e.contains("NaN"),
            "{e}"
        );
        let only_inf: HashMap<String, Tensor> = [("z.bias".to_string(), bad["z.bias"].clone())]
            .into_iter()
            .collect();
        let e = check_finite(path, &only_inf).unwrap_err().to_string();
        assert!(e.contains("`z.bias`") && e.contains("inf"), "{e}");
    }
}
