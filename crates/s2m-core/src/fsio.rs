//! Atomic file writes: write to a temporary file in the same folder, flush, then rename.
//!
//! A crash or an error mid-write therefore never leaves a truncated file under the final name,
//! which matters for checkpoints, manifests and dataset folders.

use crate::error::{CoreError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling used while writing `path` (same folder, so the rename is atomic).
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Writes to `path` atomically through a closure that receives a buffered writer.
/// On any error the temporary file is removed and `path` is left untouched.
pub fn atomic_write_with(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let tmp = temp_sibling(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CoreError::io(path, e));
    }
    Ok(())
}

/// Removes what killed processes left in `dir`: the temporary files of [`atomic_write`]
/// (`.NAME.tmp-PID`) and the staging folders of dataset builds (`.NAME.partial-PID`,
/// `.NAME.old-PID`) whose process `PID` is no longer running; with `only_name`, only those of
/// that NAME. Only these patterns are touched, never this process's own, and nothing at all
/// where process liveness cannot be checked (outside Linux). A folder that does not exist has
/// none. Returns what was removed (sorted).
pub fn remove_stale_leftovers(
    dir: impl AsRef<Path>,
    only_name: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut removed = Vec::new();
    if !cfg!(target_os = "linux") {
        return Ok(removed);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(CoreError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let file_name = entry.file_name();
        let Some((name, pid)) = file_name.to_str().and_then(leftover_of) else {
            continue;
        };
        if only_name.is_some_and(|n| n != name) {
            continue;
        }
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| CoreError::io(&path, e))?;
        let result = if file_type.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(|e| CoreError::io(&path, e))?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

/// NAME and PID of a leftover's file name: `.NAME.tmp-PID`, `.NAME.partial-PID` or
/// `.NAME.old-PID` (NAME not empty, PID all digits).
fn leftover_of(file_name: &str) -> Option<(&str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    let (stem, pid) = rest.rsplit_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = [".tmp", ".partial", ".old"]
        .iter()
        .find_map(|k| stem.strip_suffix(k).filter(|n| !n.is_empty()))?;
    Some((name, pid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file may remain");
    }

    #[test]
    fn failed_write_leaves_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        atomic_write(&p, b"old").unwrap();
        let err = atomic_write_with(&p, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(err.to_string().contains("a.bin"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_path_is_an_error_naming_it() {
        let err = atomic_write("/nonexistent-dir/x/y.bin", b"z").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x/y.bin"),
            "{err}"
        );
    }

    #[test]
    fn only_dead_processes_leftovers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A PID that cannot be running (above Linux's largest pid_max, 2^22).
        let dead = 4_999_999u32;
        let me = std::process::id();
        std::fs::write(
            d.join(format!(".ckpt-000000009.safetensors.tmp-{dead}")),
            b"x",
        )
        .unwrap();
        std::fs::create_dir(d.join(format!(".data.partial-{dead}"))).unwrap();
        std::fs::write(d.join(format!(".data.partial-{dead}/f.png")), b"x").unwrap();
        std::fs::create_dir(d.join(format!(".other.partial-{dead}"))).unwrap();
        std::fs::write(d.join(format!(".log.csv.tmp-{me}")), b"x").unwrap();
        let keep = [
            "ckpt-000000009.safetensors",
            ".hidden",
            ".tmp-123",
            "notes.tmp-123",
            ".x.tmp-12a",
            ".x.backup-123",
        ];
        for k in keep {
            std::fs::write(d.join(k), b"x").unwrap();
        }
        // Only one name's leftovers.
        let removed = remove_stale_leftovers(d, Some("data")).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(removed, vec![d.join(format!(".data.partial-{dead}"))]);
        }
        assert!(d.join(format!(".other.partial-{dead}")).exists());
        // All of them.
        let removed = remove_stale_leftovers(d, None).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(removed.len(), 2, "{removed:?}");
        }
        assert!(d.join(format!(".log.csv.tmp-{me}")).exists());
        for k in keep {
            assert!(d.join(k).exists(), "{k}");
        }
        assert!(
            remove_stale_leftovers(d.join("missing"), None)
                .unwrap()
                .is_empty()
        );
    }
}
