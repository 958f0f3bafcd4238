//! Resuming a run safely: the newest checkpoint that loads (damaged newer ones are skipped and
//! reported, never deleted), a check that the resumed run trains what the checkpoint trained
//! (same data order, batch, seed, losses and model; only the cadences of logs, samples and
//! checkpoints may change), and the removal of what a killed process left behind.
//!
//! A trainer opens its run folder with [`open_run`] and checks the checkpoint it found with
//! [`check_run_config`]:
//!
//! ```ignore
//! let (found, report) = resume::open_run(&out)?;
//! if let Some((path, ck)) = &found {
//!     resume::check_run_config(path, ck, &cfg, resume::MAY_CHANGE)?;
//!     // restore the state from `ck`
//! }
//! // the CLI prints `report.notes()`
//! ```

use std::path::{Path, PathBuf};

use crate::checkpoint::{Checkpoint, list_checkpoints};
use crate::error::{TrainError, TrainResult};

/// The config keys a resumed run may change: how often it logs, samples and checkpoints, how
/// many checkpoints it keeps ([`crate::schedule::Schedule`], flattened into the configs) and
/// how many validation samples its sample strips show. Nothing that changes the trained
/// weights.
pub const MAY_CHANGE: &[&str] = &[
    "sample_every",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "val_samples",
];

/// A checkpoint that was passed over because it did not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCheckpoint {
    pub path: PathBuf,
    /// The loader's error message.
    pub reason: String,
}

impl std::fmt::Display for SkippedCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped checkpoint {} (it does not load: {})",
            self.path.display(),
            self.reason
        )
    }
}

/// What [`newest_loadable`] found.
#[derive(Debug, Default)]
pub struct Resumable {
    /// The newest checkpoint that loads and its path; `None` in a new run folder.
    pub checkpoint: Option<(PathBuf, Checkpoint)>,
    /// Newer checkpoints that did not load (newest first); left on disk untouched.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// The newest checkpoint of a run's checkpoint folder that loads. Damaged newer ones (a
/// truncated file, a flipped byte, a bad header) are skipped and listed; when checkpoints exist
/// but none loads the run is refused rather than silently restarted from step 0.
pub fn newest_loadable(dir: impl AsRef<Path>) -> TrainResult<Resumable> {
    let dir = dir.as_ref();
    let mut found = Resumable::default();
    for (_, path) in list_checkpoints(dir)?.into_iter().rev() {
        match Checkpoint::load(&path) {
            Ok(ck) => {
                found.checkpoint = Some((path, ck));
                return Ok(found);
            }
            Err(e) => found.skipped.push(SkippedCheckpoint {
                path,
                reason: e.to_string(),
            }),
        }
    }
    if let Some(newest) = found.skipped.first() {
        let reasons: Vec<String> = found.skipped.iter().map(|s| s.to_string()).collect();
        return Err(TrainError::Resume {
            path: newest.path.clone(),
            message: format!(
                "no checkpoint in {} loads ({}); move the folder aside to start again",
                dir.display(),
                reasons.join("; ")
            ),
        });
    }
    Ok(found)
}

/// What opening a run folder found and did: damaged checkpoints passed over, leftovers of
/// killed processes removed. The trainers keep it for the caller to show.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResumeReport {
    pub skipped: Vec<SkippedCheckpoint>,
    pub removed: Vec<PathBuf>,
}

impl ResumeReport {
    /// One line per skipped checkpoint and removed leftover.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.skipped.iter().map(|s| s.to_string()).collect();
        notes.extend(self.removed.iter().map(|p| {
            format!(
                "removed {} (left by a process that no longer runs)",
                p.display()
            )
        }));
        notes
    }
}

/// Opens the run folder `out` for training: removes the stale leftovers of killed processes in
/// `out`, `out/checkpoints` and `out/export` ([`s2m_core::fsio::remove_stale_leftovers`]) and finds the newest
/// checkpoint of `out/checkpoints` that loads ([`newest_loadable`]).
pub fn open_run(out: &Path) -> TrainResult<(Option<(PathBuf, Checkpoint)>, ResumeReport)> {
    let mut report = ResumeReport::default();
    for dir in [
        out.to_path_buf(),
        out.join("checkpoints"),
        out.join("export"),
    ] {
        report
            .removed
            .extend(s2m_core::fsio::remove_stale_leftovers(&dir, None)?);
    }
    let found = newest_loadable(out.join("checkpoints"))?;
    report.skipped = found.skipped;
    Ok((found.checkpoint, report))
}

/// The training config the checkpoint `ck` (read from `path`) was saved with, parsed as `C`
/// (keys added to the config since then take their defaults), after [`check_config`] against
/// the run's config `requested`.
pub fn check_run_config<C: serde::Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    ck: &Checkpoint,
    requested: &C,
    may_change: &[&str],
) -> TrainResult<C> {
    let saved: C =
        serde_json::from_value(ck.meta.config.clone()).map_err(|e| TrainError::Resume {
            path: path.to_path_buf(),
            message: format!("unreadable training config: {e}"),
        })?;
    let json = |c: &C| {
        serde_json::to_value(c)
            .map_err(|e| TrainError::Config(format!("cannot serialise the config: {e}")))
    };
    check_config(path, &json(&saved)?, &json(requested)?, may_change)?;
    Ok(saved)
}

/// Refuses to resume when the requested training config differs from the checkpoint's in any
/// key other than `may_change` (top-level keys). The message lists every differing key with
/// both values, so the user can repeat the original options or choose another run folder.
pub fn check_config(
    path: &Path,
    saved: &serde_json::Value,
    requested: &serde_json::Value,
    may_change: &[&str],
) -> TrainResult<()> {
    let mut diffs = Vec::new();
    diff("", saved, requested, may_change, &mut diffs);
    if diffs.is_empty() {
        return Ok(());
    }
    Err(TrainError::Resume {
        path: path.to_path_buf(),
        message: format!(
            "the run was trained with other settings ({}); resume with the same options or \
             use another output folder",
            diffs.join(", ")
        ),
    })
}

fn diff(
    prefix: &str,
    saved: &serde_json::Value,
    requested: &serde_json::Value,
    may_change: &[&str],
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (saved, requested) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if prefix.is_empty() && may_change.contains(&k.as_str()) {
                    continue;
                }
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let null = Value::Null;
                diff(
                    &name,
                    a.get(k).unwrap_or(&null),
                    b.get(k).unwrap_or(&null),
                    may_change,
                    out,
                );
            }
        }
        (a, b) if same_value(a, b) => {}
        (a, b) => out.push(format!("{prefix}: checkpoint {a}, now {b}")),
    }
}

/// JSON equality where numbers compare by value (`1` and `1.0` are the same setting).
fn same_value(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CheckpointMeta, checkpoint_path};
    use serde_json::json;

    fn save(dir: &Path, step: u64) -> PathBuf {
        let ck = Checkpoint::new(CheckpointMeta::new(step, 1));
        let path = checkpoint_path(dir, step);
        ck.save(&path).unwrap();
        path
    }

    #[test]
    fn damaged_newer_checkpoints_are_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(newest_loadable(dir.path()).unwrap().checkpoint.is_none());
        save(dir.path(), 10);
        let p20 = save(dir.path(), 20);
        let p30 = save(dir.path(), 30);
        // Truncate the newest, corrupt the header of the next.
        let bytes = std::fs::read(&p30).unwrap();
        std::fs::write(&p30, &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(&p20, b"not a checkpoint").unwrap();
        let found = newest_loadable(dir.path()).unwrap();
        let (path, ck) = found.checkpoint.unwrap();
        assert_eq!(ck.meta.step, 10);
        assert_eq!(path, checkpoint_path(dir.path(), 10));
        let skipped: Vec<&Path> = found.skipped.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(skipped, vec![p30.as_path(), p20.as_path()]);
        assert!(found.skipped[0].to_string().contains("skipped checkpoint"));
        // The damaged files are left for the user to inspect.
        assert!(p30.exists() && p20.exists());
        // When none loads, the run is refused instead of restarting from 0.
        std::fs::write(checkpoint_path(dir.path(), 10), b"x").unwrap();
        let err = newest_loadable(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("no checkpoint") && err.contains("000000030"),
            "{err}"
        );
    }

    #[test]
    fn config_changes_other_than_the_schedule_are_refused_and_listed() {
        let saved = json!({"batch": 8, "lr": 0.002, "seed": 1, "log_every": 10,
                           "model": {"size": 64, "channels": 32}});
        let p = Path::new("ck.safetensors");
        let same = json!({"batch": 8, "lr": 0.002, "seed": 1, "log_every": 50,
                          "model": {"size": 64, "channels": 32}});
        check_config(p, &saved, &same, MAY_CHANGE).unwrap();
        // 8 and 8.0 are the same number.
        let float = json!({"batch": 8.0, "lr": 0.002, "seed": 1, "log_every": 10,
                           "model": {"size": 64, "channels": 32}});
        check_config(p, &saved, &float, MAY_CHANGE).unwrap();
        let other = json!({"batch": 16, "lr": 0.002, "seed": 2, "log_every": 10,
                           "model": {"size": 64, "channels": 48}, "new_term": 1.0});
        let err = check_config(p, &saved, &other, MAY_CHANGE)
            .unwrap_err()
            .to_string();
        for needle in [
            "batch: checkpoint 8, now 16",
            "seed: checkpoint 1, now 2",
            "model.channels: checkpoint 32, now 48",
            "new_term: checkpoint null, now 1.0",
            "ck.safetensors",
        ] {
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(!err.contains("lr"), "{err}");
    }
}
