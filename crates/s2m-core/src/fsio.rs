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
}
