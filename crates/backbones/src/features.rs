//! [`FeatureMaps`]: the named intermediate activations a backbone returns.

use candle_core::Tensor;

use crate::error::{BackboneError, Result};

/// Named taps in network order (shallow to deep). Names are the ones the callers use
/// (`"c2"`, `"relu3_3"`, `"pool3"`, ...); each backbone's docs list its names.
#[derive(Debug, Clone, Default)]
pub struct FeatureMaps {
    taps: Vec<(&'static str, Tensor)>,
}

impl FeatureMaps {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tap. Names are unique by construction inside this crate.
    pub fn push(&mut self, name: &'static str, t: Tensor) {
        self.taps.push((name, t));
    }

    /// The tap called `name`, or `None`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.taps.iter().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// The tap called `name`, or an error listing the names that exist.
    pub fn require(&self, name: &str) -> Result<&Tensor> {
        self.get(name).ok_or_else(|| {
            BackboneError::Config(format!(
                "no feature tap named {name:?}; available: {:?}",
                self.names()
            ))
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.taps.iter().map(|(n, _)| *n).collect()
    }

    pub fn len(&self) -> usize {
        self.taps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Taps in network order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Tensor)> {
        self.taps.iter().map(|(n, t)| (*n, t))
    }

    /// Consumes the maps, returning the tensors in network order.
    pub fn into_tensors(self) -> Vec<Tensor> {
        self.taps.into_iter().map(|(_, t)| t).collect()
    }
}
