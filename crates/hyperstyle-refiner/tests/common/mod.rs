//! Fixture helpers shared by the integration tests (the generic parts live in
//! `s2m_core::testing`, shared with the other crates' parity tests).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;
pub use s2m_core::testing::{rel_err, torch_keys};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load(name: &str) -> HashMap<String, Tensor> {
    s2m_core::testing::load_fixture(fixture_path(name))
}

/// `__metadata__` of a fixture's safetensors header.
pub fn metadata(name: &str) -> HashMap<String, String> {
    s2m_core::testing::fixture_metadata(fixture_path(name))
}
