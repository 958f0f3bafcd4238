//! Seeded initialisation of fresh models: [`seeded_var_map`] is `s2m_core::init`'s (shared
//! by every trainer in the workspace), re-exported here where E, D_w and H use it.
//!
//! candle's CPU RNG cannot be seeded, so a model built on a `VarMap` gets different weights in
//! every run; `seeded_var_map` builds any model through a `VarBuilder` that honours the same
//! `Init` hints but draws from the workspace's ChaCha8 stream.

pub use s2m_core::init::seeded_var_map;
