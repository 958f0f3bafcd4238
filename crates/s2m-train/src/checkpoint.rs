//! Training checkpoints: one safetensors file holding everything needed to resume exactly.
//!
//! A checkpoint is a flat map of named tensors plus a JSON header:
//! - tensors are grouped by a prefix: `<group>.<name>`. Model weights use one group per
//!   `VarMap` (e.g. `g.`, `d.`, `g_ema.`, or `model.`), optimiser states one group per
//!   optimiser (e.g. `opt_g.adam.m.<var>`, see [`crate::optim`]). Group names are non-empty
//!   and contain no `.`, so no group can shadow another;
//! - the safetensors `__metadata__` map holds `format` = [`FORMAT`] and `meta` = the JSON of
//!   [`CheckpointMeta`] (step, seed, training config, RNG positions, free-form extras). Any
//!   safetensors reader can list and load the tensors and read the header.
//!
//! Writing is atomic (temp file + rename, [`s2m_core::fsio`]): a crash mid-save leaves the previous
//! checkpoint intact. Loading validates the file (a garbage or truncated file is a
//! [`CoreError::BadCheckpoint`] naming it) and restoring validates every key and shape before
//! anything is changed: a missing or mis-shaped key is named together with the file.
//!
//! Files in a run folder are named `ckpt-<step, 9 digits>.safetensors`
//! ([`checkpoint_path`]); [`latest_checkpoint`] finds the newest by step number and
//! [`rotate_checkpoints`] keeps the last N.
//!
//! ```no_run
//! # use s2m_train::checkpoint::*;
//! # use s2m_train::optim::{Adam, AdamConfig};
//! # fn main() -> s2m_core::error::Result<()> {
//! let g = candle_nn::VarMap::new();
//! let mut opt_g = Adam::from_varmap(&g, AdamConfig::stylegan2(2e-3))?;
//! let mut rng = s2m_core::rng::rng_from_seed(0);
//! // save
//! let mut meta = CheckpointMeta::new(1000, 0);
//! meta.rng.insert("train".into(), RngState::capture(&rng));
//! let mut ck = Checkpoint::new(meta);
//! ck.add_varmap("g", &g)?;
//! ck.add_optimizer("opt_g", &opt_g)?;
//! ck.save_in("runs/a", 3)?; // runs/a/ckpt-000001000.safetensors, keeps the last 3
//! // resume
//! if let Some(path) = latest_checkpoint("runs/a")? {
//!     let ck = Checkpoint::load(&path)?;
//!     ck.restore_varmap("g", &g)?;
//!     ck.restore_optimizer("opt_g", &mut opt_g)?;
//!     rng = ck.rng("train")?;
//! }
//! # Ok(()) }
//! ```

use crate::optim::Adam;
use candle_core::safetensors::Load;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use s2m_core::error::{CoreError, Result};
use s2m_core::fsio::atomic_write;
use s2m_core::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Value of the `format` metadata entry of every checkpoint written here.
pub const FORMAT: &str = "sketch2medi-checkpoint/1";

/// File-name prefix of checkpoints in a run folder.
const FILE_PREFIX: &str = "ckpt-";
/// File-name suffix of checkpoints in a run folder.
const FILE_SUFFIX: &str = ".safetensors";

/// The position of a [`Rng`] (ChaCha8): seed, stream and word position, so a restored
/// generator continues with exactly the numbers the saved one would have produced.
///
/// Serialised as strings (hex seed, decimal position) so that JSON readers with 53-bit numbers
/// do not lose digits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    /// The 32-byte ChaCha key, hex.
    pub seed: String,
    /// The ChaCha stream id.
    pub stream: String,
    /// The position in 32-bit words from the start of the stream.
    pub word_pos: String,
}

impl RngState {
    /// Records where `rng` is.
    pub fn capture(rng: &Rng) -> Self {
        let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream().to_string(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator at the recorded position.
    pub fn restore(&self) -> Result<Rng> {
        let bad = |m: &str| CoreError::invalid("RNG state", format!("{m} in {self:?}"));
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad("seed is not 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .map_err(|_| bad("seed is not 64 hex digits"))?;
        }
        let stream: u64 = self.stream.parse().map_err(|_| bad("bad stream"))?;
        let word_pos: u128 = self.word_pos.parse().map_err(|_| bad("bad word_pos"))?;
        let mut rng = Rng::from_seed(seed);
        rng.set_stream(stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// The JSON header of a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    /// The training step (or iteration, or number of images seen: the training loop decides)
    /// at which the checkpoint was taken.
    pub step: u64,
    /// The base seed of the run.
    pub seed: u64,
    /// The training configuration (any JSON; `null` if none).
    #[serde(default)]
    pub config: serde_json::Value,
    /// Named RNG positions (data order, noise, augmentation, ...).
    #[serde(default)]
    pub rng: BTreeMap<String, RngState>,
    /// Free-form scalars or notes (best metric so far, wall time, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl CheckpointMeta {
    /// A header with a step and a seed, no config, no RNG positions, no extras.
    pub fn new(step: u64, seed: u64) -> Self {
        Self {
            step,
            seed,
            config: serde_json::Value::Null,
            rng: BTreeMap::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// A checkpoint in memory: named tensors and a header. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// All tensors, keyed `<group>.<name>`.
    pub tensors: HashMap<String, Tensor>,
    /// The header.
    pub meta: CheckpointMeta,
    /// The file it was loaded from (named in errors), if any.
    source: Option<PathBuf>,
}

/// Checks a group name: non-empty, no `.`.
fn check_group(group: &str) -> Result<()> {
    if group.is_empty() || group.contains('.') {
        return Err(CoreError::invalid(
            "checkpoint group name",
            format!("`{group}` must be non-empty and contain no `.`"),
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// An empty checkpoint with a header.
    pub fn new(meta: CheckpointMeta) -> Self {
        Self {
            tensors: HashMap::new(),
            meta,
            source: None,
        }
    }

    /// The file this checkpoint was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// Names the source file in front of an error.
    fn ctx(&self, e: CoreError) -> CoreError {
        match &self.source {
            Some(p) => e.in_file(p),
            None => e,
        }
    }

    /// What errors call this checkpoint.
    fn what(&self) -> String {
        "checkpoint".to_string()
    }

    /// Adds tensors under `group` (`<group>.<name>`); a key that already exists is an error.
    pub fn add_tensors<'a>(
        &mut self,
        group: &str,
        tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    ) -> Result<()> {
        check_group(group)?;
        let mut new = Vec::new();
        for (name, t) in tensors {
            let key = format!("{group}.{name}");
            if self.tensors.contains_key(&key) || new.iter().any(|(k, _)| k == &key) {
                return Err(CoreError::invalid(
                    "checkpoint",
                    format!("key `{key}` added twice"),
                ));
            }
            new.push((key, t.detach()));
        }
        self.tensors.extend(new);
        Ok(())
    }

    /// Adds every var of `varmap` under `group` (`<group>.<var name>`).
    pub fn add_varmap(&mut self, group: &str, varmap: &candle_nn::VarMap) -> Result<()> {
        let vars = crate::optim::varmap_named_vars(varmap);
        self.add_tensors(group, vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor())))
    }

    /// Adds an optimiser's state under `group` (`<group>.adam.m.<var>`, ...).
    pub fn add_optimizer(&mut self, group: &str, opt: &Adam) -> Result<()> {
        let state = opt.state_tensors()?;
        self.add_tensors(group, state.iter().map(|(k, t)| (k.as_str(), t)))
    }

    /// The tensors of `group`, with the `<group>.` prefix removed (empty if none).
    pub fn group(&self, group: &str) -> Result<HashMap<String, Tensor>> {
        check_group(group)?;
        let prefix = format!("{group}.");
        Ok(self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&prefix).map(|n| (n.to_string(), t.clone())))
            .collect())
    }

    /// One tensor by full key; a missing key is an error naming it (and the file).
    pub fn tensor(&self, key: &str) -> Result<&Tensor> {
        self.tensors.get(key).ok_or_else(|| {
            self.ctx(CoreError::MissingKey {
                what: self.what(),
                key: key.to_string(),
            })
        })
    }

    /// Copies the tensors of `group` into the vars of `varmap`, converting dtype and device to
    /// each var's. Every var must be present with its shape, and the group must hold no
    /// other key; errors name the key and the file. Nothing is changed unless all validate.
    pub fn restore_varmap(&self, group: &str, varmap: &candle_nn::VarMap) -> Result<()> {
        let stored = self.group(group)?;
        crate::optim::load_varmap(&stored, varmap, &self.what(), &format!("{group}."))
            .map_err(|e| self.ctx(e))
    }

    /// Restores an optimiser's state from `group` (see [`Adam::load_state`]); errors name the
    /// key (with the group) and the file.
    pub fn restore_optimizer(&self, group: &str, opt: &mut Adam) -> Result<()> {
        let state = self.group(group)?;
        opt.load_state(&state).map_err(|e| {
            let e = match e {
                CoreError::MissingKey { what, key } => CoreError::MissingKey {
                    what,
                    key: format!("{group}.{key}"),
                },
                CoreError::UnexpectedKey { what, key, hint } => CoreError::UnexpectedKey {
                    what,
                    key: format!("{group}.{key}"),
                    hint,
                },
                CoreError::Shape {
                    what,
                    expected,
                    got,
                } => CoreError::Shape {
                    what: format!("{what} in group `{group}`"),
                    expected,
                    got,
                },
                other => other,
            };
            self.ctx(e)
        })
    }

    /// The generator recorded under `name` in the header.
    pub fn rng(&self, name: &str) -> Result<Rng> {
        let state = self.meta.rng.get(name).ok_or_else(|| {
            self.ctx(CoreError::MissingKey {
                what: "checkpoint RNG states".into(),
                key: name.to_string(),
            })
        })?;
        state.restore().map_err(|e| self.ctx(e))
    }

    /// The file content: safetensors with `format` and `meta` in `__metadata__`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let meta = serde_json::to_string(&self.meta)
            .map_err(|e| CoreError::invalid("checkpoint header", e.to_string()))?;
        let header = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("meta".to_string(), meta),
        ]);
        let mut entries: Vec<(&String, &Tensor)> = self.tensors.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        safetensors::serialize(entries, Some(header))
            .map_err(|e| CoreError::invalid("checkpoint", format!("cannot serialise: {e}")))
    }

    /// Writes the checkpoint to `path` atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|e| e.in_file(path))?;
        atomic_write(path, &bytes)
    }

    /// Writes the checkpoint to [`checkpoint_path`]`(dir, meta.step)` (creating `dir`), then
    /// keeps only the newest `keep_last` checkpoints of `dir` ([`rotate_checkpoints`]).
    /// Returns the written path.
    pub fn save_in(&self, dir: impl AsRef<Path>, keep_last: usize) -> Result<PathBuf> {
        let dir = dir.as_ref();
        if keep_last == 0 {
            return Err(CoreError::invalid(
                "keep_last",
                "must be >= 1 (the checkpoint just written is kept)",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let path = checkpoint_path(dir, self.meta.step);
        self.save(&path)?;
        rotate_checkpoints(dir, keep_last)?;
        Ok(path)
    }

    /// Parses checkpoint bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |message: String| CoreError::BadCheckpoint {
            path: path.to_path_buf(),
            message,
        };
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let info = header.metadata().as_ref().ok_or_else(|| {
            bad(format!(
                "no `__metadata__` header (not written as a {FORMAT} file)"
            ))
        })?;
        match info.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => return Err(bad(format!("format `{f}`, expected `{FORMAT}`"))),
            None => return Err(bad(format!("no `format` entry (expected `{FORMAT}`)"))),
        }
        let meta_json = info
            .get("meta")
            .ok_or_else(|| bad("no `meta` entry in `__metadata__`".into()))?;
        let meta: CheckpointMeta =
            serde_json::from_str(meta_json).map_err(|e| bad(format!("bad `meta` JSON: {e}")))?;
        let mut tensors = HashMap::with_capacity(st.len());
        for (name, view) in st.tensors() {
            let t = view
                .load(&Device::Cpu)
                .map_err(|e| bad(format!("cannot load tensor `{name}`: {e}")))?;
            tensors.insert(name, t);
        }
        Ok(Self {
            tensors,
            meta,
            source: Some(path.to_path_buf()),
        })
    }

    /// Reads and validates a checkpoint file; tensors are loaded on the CPU (restoring moves
    /// them to each var's device).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}

/// The checkpoint file of `step` in a run folder: `dir/ckpt-<step, 9 digits>.safetensors`.
pub fn checkpoint_path(dir: impl AsRef<Path>, step: u64) -> PathBuf {
    dir.as_ref()
        .join(format!("{FILE_PREFIX}{step:09}{FILE_SUFFIX}"))
}

/// The step of a checkpoint file name, if it follows [`checkpoint_path`]'s pattern.
fn step_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoints of a run folder, `(step, path)` sorted by step (numerically). A folder that
/// does not exist has none. Other files (temporary files, logs) are ignored.
pub fn list_checkpoints(dir: impl AsRef<Path>) -> Result<Vec<(u64, PathBuf)>> {
    let dir = dir.as_ref();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CoreError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(step) = name.to_str().and_then(step_of) {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The checkpoint of a run folder with the highest step, if any.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(dir)?.pop().map(|(_, p)| p))
}

/// Deletes all but the `keep_last` newest checkpoints of a run folder (by step); returns the
/// deleted paths. `keep_last = 0` is an error (it would delete the run).
pub fn rotate_checkpoints(dir: impl AsRef<Path>, keep_last: usize) -> Result<Vec<PathBuf>> {
    if keep_last == 0 {
        return Err(CoreError::invalid("keep_last", "must be >= 1"));
    }
    let all = list_checkpoints(dir)?;
    let n_old = all.len().saturating_sub(keep_last);
    let mut removed = Vec::with_capacity(n_old);
    for (_, path) in all.into_iter().take(n_old) {
        std::fs::remove_file(&path).map_err(|e| CoreError::io(&path, e))?;
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::AdamConfig;
    use candle_core::DType;
    use candle_nn::{Init, VarMap};
    use rand::Rng as _;
    use s2m_core::rng::rng_from_seed;

    fn varmap(seed: f64) -> VarMap {
        let vm = VarMap::new();
        vm.get(
            (2, 3),
            "layer1.weight",
            Init::Const(seed),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        vm.get(
            3,
            "layer1.bias",
            Init::Const(seed + 1.0),
            DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        vm
    }

    fn values(vm: &VarMap, name: &str) -> Vec<f32> {
        let data = vm.data().lock().unwrap();
        data[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn train_step(vm: &VarMap, opt: &mut Adam) {
        let vars = crate::optim::varmap_named_vars(vm);
        let mut loss = Tensor::new(0f32, &Device::Cpu).unwrap();
        for (_, v) in &vars {
            loss = (loss + v.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        opt.step(&loss.backward().unwrap()).unwrap();
    }

    #[test]
    fn round_trip_restores_model_optimizer_rng_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let g = varmap(0.5);
        let mut opt = Adam::from_varmap(&g, AdamConfig::stylegan2(0.1)).unwrap();
        train_step(&g, &mut opt);
        let mut rng = rng_from_seed(42);
        let _: [u64; 5] = rng.random();
        let _: u32 = rng.random(); // an odd word position
        let mut meta = CheckpointMeta::new(1234, 42);
        meta.config = serde_json::json!({"lr": 0.1, "batch": 4});
        meta.rng.insert("train".into(), RngState::capture(&rng));
        meta.extra
            .insert("best_fid".into(), serde_json::json!(12.5));
        let mut ck = Checkpoint::new(meta.clone());
        ck.add_varmap("g", &g).unwrap();
        ck.add_optimizer("opt_g", &opt).unwrap();
        let path = ck.save_in(dir.path(), 2).unwrap();
        assert_eq!(path, dir.path().join("ckpt-000001234.safetensors"));

        // A fresh model and optimiser, different values.
        let g2 = varmap(-3.0);
        let mut opt2 = Adam::from_varmap(&g2, AdamConfig::stylegan2(0.1)).unwrap();
        let loaded = Checkpoint::load(&path).unwrap();
        assert_eq!(loaded.meta, meta);
        loaded.restore_varmap("g", &g2).unwrap();
        loaded.restore_optimizer("opt_g", &mut opt2).unwrap();
        assert_eq!(values(&g, "layer1.weight"), values(&g2, "layer1.weight"));
        assert_eq!(values(&g, "layer1.bias"), values(&g2, "layer1.bias"));
        assert_eq!(opt2.step_count(), 1);
        // Training continues identically.
        train_step(&g, &mut opt);
        train_step(&g2, &mut opt2);
        assert_eq!(values(&g, "layer1.weight"), values(&g2, "layer1.weight"));
        // The RNG continues where it was.
        let mut restored = loaded.rng("train").unwrap();
        let a: [u32; 7] = rng.random();
        let b: [u32; 7] = restored.random();
        assert_eq!(a, b);
        assert!(loaded.rng("nope").unwrap_err().to_string().contains("nope"));
        // The header is readable by any safetensors reader.
        let bytes = std::fs::read(&path).unwrap();
        let (_, h) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(h.metadata().as_ref().unwrap()["format"], FORMAT);
    }

    #[test]
    fn missing_extra_and_misshaped_keys_are_named_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let g = varmap(1.0);
        let mut ck = Checkpoint::new(CheckpointMeta::new(1, 0));
        ck.add_varmap("g", &g).unwrap();
        ck.save(&path).unwrap();
        let loaded = Checkpoint::load(&path).unwrap();

        // The model gained a var: missing key.
        let bigger = varmap(0.0);
        bigger
            .get(
                4,
                "layer2.weight",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let err = loaded.restore_varmap("g", &bigger).unwrap_err().to_string();
        assert!(
            err.contains("g.layer2.weight") && err.contains("c.safetensors"),
            "{err}"
        );
        assert!(err.contains("missing"), "{err}");
        assert_eq!(
            values(&bigger, "layer1.bias"),
            vec![1.0; 3],
            "nothing restored"
        );

        // The model lost a var: unexpected key.
        let smaller = VarMap::new();
        smaller
            .get(
                (2, 3),
                "layer1.weight",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        let err = loaded
            .restore_varmap("g", &smaller)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.layer1.bias") && err.contains("c.safetensors"),
            "{err}"
        );

        // A var changed shape.
        let reshaped = VarMap::new();
        reshaped
            .get(
                (3, 2),
                "layer1.weight",
                Init::Const(0.),
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
        reshaped
            .get(3, "layer1.bias", Init::Const(0.), DType::F32, &Device::Cpu)
            .unwrap();
        let err = loaded
            .restore_varmap("g", &reshaped)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.layer1.weight") && err.contains("[2, 3]"),
            "{err}"
        );

        // No optimiser state saved.
        let mut opt = Adam::from_varmap(&g, AdamConfig::default()).unwrap();
        let err = loaded
            .restore_optimizer("opt_g", &mut opt)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("opt_g.adam.step") && err.contains("c.safetensors"),
            "{err}"
        );
        let err = loaded.tensor("g.nope").unwrap_err().to_string();
        assert!(err.contains("g.nope"), "{err}");
    }

    #[test]
    fn garbage_truncated_and_foreign_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let g = varmap(1.0);
        let mut ck = Checkpoint::new(CheckpointMeta::new(1, 0));
        ck.add_varmap("g", &g).unwrap();
        let good = ck.to_bytes().unwrap();

        let garbage = dir.path().join("garbage.safetensors");
        std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
        let truncated = dir.path().join("truncated.safetensors");
        std::fs::write(&truncated, &good[..good.len() - 5]).unwrap();
        let empty = dir.path().join("empty.safetensors");
        std::fs::write(&empty, b"").unwrap();
        let foreign = dir.path().join("foreign.safetensors");
        candle_core::safetensors::save(&ck.tensors, &foreign).unwrap();
        let mut corrupt_meta = good.clone();
        // Damage the `meta` JSON (rename its `step` field) without breaking the file.
        let pos = corrupt_meta.windows(4).position(|w| w == b"step").unwrap();
        corrupt_meta[pos] = b'#';
        let corrupt = dir.path().join("corrupt.safetensors");
        std::fs::write(&corrupt, &corrupt_meta).unwrap();

        for p in [&garbage, &truncated, &empty, &foreign, &corrupt] {
            let err = Checkpoint::load(p).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, CoreError::BadCheckpoint { .. }),
                "{}: {msg}",
                p.display()
            );
            assert!(msg.contains(&*p.to_string_lossy()), "{msg}");
        }
        let missing = dir.path().join("missing.safetensors");
        let msg = Checkpoint::load(&missing).unwrap_err().to_string();
        assert!(msg.contains("missing.safetensors"), "{msg}");
        assert!(Checkpoint::from_bytes(&good, "x").is_ok());
    }

    #[test]
    fn latest_and_rotation_use_numeric_steps() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(latest_checkpoint(dir.path().join("none")).unwrap(), None);
        assert_eq!(latest_checkpoint(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        std::fs::write(dir.path().join(".ckpt-000000009.safetensors.tmp-1"), b"x").unwrap();
        let g = varmap(0.0);
        for step in [5u64, 1_000_000_000, 20, 300] {
            let mut ck = Checkpoint::new(CheckpointMeta::new(step, 0));
            ck.add_varmap("g", &g).unwrap();
            ck.save_in(dir.path(), 3).unwrap();
        }
        let steps: Vec<u64> = list_checkpoints(dir.path())
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(steps, vec![20, 300, 1_000_000_000]);
        let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(Checkpoint::load(&latest).unwrap().meta.step, 1_000_000_000);
        let removed = rotate_checkpoints(dir.path(), 1).unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(list_checkpoints(dir.path()).unwrap().len(), 1);
        assert!(dir.path().join("notes.txt").exists());
        assert!(rotate_checkpoints(dir.path(), 0).is_err());
    }

    #[test]
    fn groups_cannot_collide() {
        let t = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        let mut ck = Checkpoint::new(CheckpointMeta::new(0, 0));
        ck.add_tensors("a", [("x", &t)]).unwrap();
        assert!(ck.add_tensors("a", [("x", &t)]).is_err());
        assert!(ck.add_tensors("a.b", [("y", &t)]).is_err());
        assert!(ck.add_tensors("", [("y", &t)]).is_err());
        ck.add_tensors("ab", [("x", &t)]).unwrap();
        assert_eq!(ck.group("a").unwrap().len(), 1);
    }

    #[test]
    fn rng_state_rejects_garbage() {
        let mut s = RngState::capture(&rng_from_seed(1));
        s.seed = "zz".repeat(32);
        assert!(s.restore().is_err());
        let mut s = RngState::capture(&rng_from_seed(1));
        s.word_pos = "-1".into();
        assert!(s.restore().is_err());
    }
}
