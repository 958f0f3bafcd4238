//! Reading state-dict safetensors (the official keys, as `tools/baselines_convert.py` writes
//! them) into a model's `VarMap`, with errors that name the file and the key.
//!
//! The only remapping in this crate lives here: none for pix2pix, whose parameter paths are the
//! official ones; dropped keys (legacy InstanceNorm running stats) are listed by the converter.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::error::{BaselinesError, Result};

/// All tensors of a safetensors file on `dev` (errors name the file: missing, unreadable,
/// not safetensors).
pub fn read_safetensors(path: &Path, dev: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| BaselinesError::Weights {
        path: path.to_path_buf(),
        message: format!("cannot read: {e}"),
    })?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, dev).map_err(|e| {
        BaselinesError::Weights {
            path: path.to_path_buf(),
            message: format!("not a valid safetensors file: {e}"),
        }
    })?;
    Ok(tensors)
}

/// A model built by `build` (any seed: every var is overwritten) with the state dict of the
/// safetensors at `path` copied into its vars by [`load_into`]; `what` names it in errors.
pub(crate) fn load_model<M>(
    path: &Path,
    dev: &Device,
    what: &str,
    build: impl FnOnce() -> Result<(M, VarMap)>,
) -> Result<(M, VarMap)> {
    let tensors = read_safetensors(path, dev)?;
    let (model, vars) = build()?;
    load_into(&tensors, &vars, path, what)?;
    Ok((model, vars))
}

/// Copies `tensors` into the vars of `varmap`: every var must be present with its shape and no
/// other key may be present (the error names the key). Nothing changes unless all validate.
pub fn load_into(
    tensors: &HashMap<String, Tensor>,
    varmap: &VarMap,
    path: &Path,
    what: &str,
) -> Result<()> {
    s2m_train::optim::load_varmap(tensors, varmap, what, "").map_err(|e| BaselinesError::Weights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The vars an optimiser updates: all but BatchNorm buffers (`running_mean`, `running_var`,
/// `num_batches_tracked`), which train-mode forwards update and checkpoints save.
pub fn trainable_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    s2m_train::optim::varmap_named_vars(varmap)
        .into_iter()
        .filter(|(n, _)| !is_buffer(n))
        .collect()
}

/// Whether a state-dict key is a BatchNorm buffer rather than a parameter.
pub fn is_buffer(key: &str) -> bool {
    key.ends_with(".running_mean")
        || key.ends_with(".running_var")
        || key.ends_with(".num_batches_tracked")
}
