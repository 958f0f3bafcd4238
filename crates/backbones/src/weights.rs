//! Loading weights from safetensors under torchvision key names, verified before any layer is
//! built: every missing key and every mis-shaped key is reported by name with its expected shape.
//!
//! The expected keys and shapes come from building the model on a recording `VarBuilder`
//! backend (no memory is allocated for the weights), so the check can never drift from the
//! architecture code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::error::{BackboneError, Result, ShapeMismatch};

/// `(key, shape)` of every parameter an architecture reads, in construction order.
pub type ParamSpec = Vec<(String, Vec<usize>)>;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<ParamSpec>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut v) = self.0.lock() {
            v.push((name.to_string(), s.dims().to_vec()));
        }
        // A broadcast scalar: the right shape without allocating the weights.
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("recording backend: {name} requested without a shape")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// Runs `build` on a recording backend and returns the parameters it requested.
pub fn record_params<M>(build: impl FnOnce(VarBuilder) -> Result<M>) -> Result<ParamSpec> {
    let rec = Recorder::default();
    let vb = VarBuilder::from_backend(Box::new(rec.clone()), DType::F32, Device::Cpu);
    build(vb)?;
    let spec = rec
        .0
        .lock()
        .map(|v| v.clone())
        .map_err(|_| BackboneError::Config("recording backend poisoned".into()))?;
    Ok(spec)
}

/// Compares `tensors` with `expected`; extra keys (e.g. `num_batches_tracked`, a dropped `fc`)
/// are allowed. `source_name` names the file in the error.
pub fn check_tensors(
    source_name: &str,
    expected: &[(String, Vec<usize>)],
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for (k, shape) in expected {
        match tensors.get(k) {
            None => missing.push((k.clone(), shape.clone())),
            Some(t) if t.dims() != shape.as_slice() => mismatched.push(ShapeMismatch {
                key: k.clone(),
                expected: shape.clone(),
                found: t.dims().to_vec(),
            }),
            Some(_) => {}
        }
    }
    if missing.is_empty() && mismatched.is_empty() {
        Ok(())
    } else {
        Err(BackboneError::Weights {
            source_name: source_name.to_string(),
            missing,
            mismatched,
        })
    }
}

/// Reads every tensor of a safetensors file onto `device` (in its stored dtype).
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| BackboneError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Returns the tensors whose key starts with `prefix`, with the prefix removed (e.g. MoCo's
/// `module.encoder_q.`); keys without the prefix are dropped.
pub fn strip_prefix(tensors: HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v)))
        .collect()
}

/// Checks `tensors` against the parameters `build` reads, then builds the model from them in
/// `dtype`. `source_name` names the weights in errors.
pub fn build_verified<M>(
    source_name: &str,
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    build: impl Fn(VarBuilder) -> Result<M>,
) -> Result<M> {
    let spec = record_params(&build)?;
    check_tensors(source_name, &spec, &tensors)?;
    build(VarBuilder::from_tensors(tensors, dtype, device))
}

/// Reads a safetensors file and builds the model with [`build_verified`] (the file's path
/// names it in errors): the `load` of every backbone.
pub fn load_verified<M>(
    path: &Path,
    dtype: DType,
    device: &Device,
    build: impl Fn(VarBuilder) -> Result<M>,
) -> Result<M> {
    let tensors = read_safetensors(path, device)?;
    build_verified(&path.display().to_string(), tensors, dtype, device, build)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(vb: VarBuilder) -> Result<()> {
        vb.pp("a").get((2, 3), "weight")?;
        vb.pp("a").get(2, "bias")?;
        vb.get(4, "b")?;
        Ok(())
    }

    #[test]
    fn reports_missing_and_misshaped_keys_by_name() {
        let spec = record_params(build).unwrap();
        assert_eq!(spec[0], ("a.weight".to_string(), vec![2, 3]));
        let dev = Device::Cpu;
        let mut m = HashMap::new();
        m.insert(
            "a.weight".into(),
            Tensor::zeros((3, 2), DType::F32, &dev).unwrap(),
        );
        m.insert("b".into(), Tensor::zeros(4, DType::F32, &dev).unwrap());
        m.insert("extra".into(), Tensor::zeros(1, DType::F32, &dev).unwrap());
        let e = build_verified("test.safetensors", m, DType::F32, &dev, build).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("missing a.bias (expected [2])"), "{s}");
        assert!(
            s.contains("mis-shaped a.weight: expected [2, 3], found [3, 2]"),
            "{s}"
        );
        assert!(!s.contains("extra"), "{s}");
    }
}
