//! The embedder's typed errors. Every variant names the file, flag or value at fault.

use std::path::PathBuf;

/// Anything that can go wrong while loading a model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model directory {dir} does not exist (fetch one with `prag model fetch` or pass --model DIR)")]
    ModelDirMissing { dir: PathBuf },
    #[error("model file {path} is missing")]
    MissingFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {reason}")]
    InvalidFile { path: PathBuf, reason: String },
    #[error("tokenizer {path} does not match the model: {reason}")]
    TokenizerMismatch { path: PathBuf, reason: String },
    #[error("unsupported model in {path}: {reason}")]
    UnsupportedModel { path: PathBuf, reason: String },
    #[error("unknown device {0:?}: expected auto, cpu, cuda or cuda:N")]
    UnknownDevice(String),
    #[error("unknown dtype {0:?}: expected auto, f32, f16 or bf16")]
    UnknownDType(String),
    #[error(
        "device {0} was requested but this build has no CUDA support; build with `scripts/build-cuda` (cargo --features cuda)"
    )]
    CudaNotCompiled(String),
    #[error("CUDA device {ordinal} could not be opened: {reason}")]
    CudaUnavailable { ordinal: usize, reason: String },
    #[error("dtype {dtype} is not supported on {device}: {reason}")]
    UnsupportedDType { dtype: String, device: String, reason: String },
    #[error("tokenization failed: {0}")]
    Tokenize(String),
    #[error("model computation failed: {0}")]
    Compute(String),
    #[error("the embedder has shut down")]
    Closed,
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        EmbedError::Compute(e.to_string())
    }
}

pub type Result<T, E = EmbedError> = std::result::Result<T, E>;
