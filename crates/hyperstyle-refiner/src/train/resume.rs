//! Resuming a run from its checkpoint, and the warm start from another refiner's export.

use std::path::Path;

use candle_core::Device;
use candle_nn::VarMap;
use s2m_train::TrainError;
use s2m_train::bundle::verify_sha256;
use s2m_train::checkpoint::Checkpoint;
use s2m_train::optim::Adam;

use super::config::RefinerTrainConfig;
use crate::bundle::{InitRef, REFINER_JSON, read_export};
use crate::config::HyperConfig;
use crate::error::Result;

/// Checkpoint `extra` key of the warm start ([`InitRef`]).
pub(super) const INIT_KEY: &str = "init_from";

/// Restores H (`h_vars`), Adam (`opt`) and the step from the checkpoint `ck` (read from `path`)
/// after checking that it belongs to the run: the same training config as `cfg` but for the
/// reporting cadences ([`s2m_train::resume::MAY_CHANGE`]), and the frozen networks' `hashes`
/// (checkpoint `extra` key, expected sha256). Returns the step and the warm start the
/// run recorded.
pub(super) fn restore_checkpoint(
    path: &Path,
    ck: &Checkpoint,
    cfg: &RefinerTrainConfig,
    hashes: [(&str, &str); 2],
    h_vars: &VarMap,
    opt: &mut Adam,
) -> Result<(u64, Option<InitRef>)> {
    let resume_err = |message: String| TrainError::Resume {
        path: path.to_path_buf(),
        message,
    };
    // The warm start only applies when a run starts; a resumed run has its weights already.
    let mut may_change = s2m_train::resume::MAY_CHANGE.to_vec();
    may_change.push("init_from");
    s2m_train::resume::check_run_config(path, ck, cfg, &may_change)?;
    for (key, want) in hashes {
        let got = ck.meta.extra.get(key).and_then(|v| v.as_str());
        if got != Some(want) {
            return Err(resume_err(format!(
                "the run was trained with {key} {got:?}, the given one is {want}"
            ))
            .into());
        }
    }
    ck.restore_varmap("h", h_vars)?;
    ck.restore_optimizer("opt", opt)?;
    let init = match ck.meta.extra.get(INIT_KEY) {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| resume_err(format!("unreadable `{INIT_KEY}`: {e}")))?,
        ),
        None => None,
    };
    Ok((ck.meta.step, init))
}

/// Loads H's weights from the refiner export `dir` into `h_vars`: the folder must hold a
/// refiner with the same `hyper` config, trained for the generator with sha256 `gen_sha`.
pub(super) fn load_init(
    dir: &Path,
    hyper: &HyperConfig,
    gen_sha: &str,
    h_vars: &VarMap,
) -> Result<InitRef> {
    let (meta, weights) = read_export(dir)?;
    let bad = |message: String| TrainError::Bundle {
        path: dir.join(REFINER_JSON),
        message,
    };
    if &meta.hyper != hyper {
        return Err(bad(format!(
            "init_from: the refiner's config {:?} differs from the requested {hyper:?}",
            meta.hyper
        ))
        .into());
    }
    if meta.generator.sha256 != gen_sha {
        return Err(bad(format!(
            "init_from: the refiner was trained with generator sha256 {}, the given one is \
             {gen_sha}",
            meta.generator.sha256
        ))
        .into());
    }
    verify_sha256(&weights, &meta.refiner_sha256)?;
    let tensors =
        candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| TrainError::Bundle {
            path: weights.clone(),
            message: format!("unreadable safetensors: {e}"),
        })?;
    s2m_train::optim::load_varmap(&tensors, h_vars, "init_from refiner", "")
        .map_err(|e| e.in_file(&weights))?;
    Ok(InitRef {
        dir: dir.display().to_string(),
        sha256: meta.refiner_sha256,
        steps: meta.steps,
    })
}
