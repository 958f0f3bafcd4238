//! Errors of the phantom generator and dataset writer.

use std::path::PathBuf;

/// Errors raised by the phantom crate. Each names the argument or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {
    #[error(
        "invalid image size {0}: it must be a multiple of 8 from 32 to {max}",
        max = crate::render::MAX_SIZE
    )]
    BadSize(u32),
    #[error("invalid argument {name}: {message}")]
    BadArgument { name: &'static str, message: String },
    #[error(
        "output folder {0} exists and is not empty; choose another folder or pass --force to replace it"
    )]
    OutputNotEmpty(PathBuf),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] s2m_core::CoreError),
    #[error(transparent)]
    Sketch(#[from] sketch_synth::SketchError),
    #[error("cannot parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl PhantomError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = PhantomError> = std::result::Result<T, E>;
