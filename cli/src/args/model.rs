//! The flags of every command that runs the model.

use std::path::PathBuf;

use clap::Args;
use prag_embedder::{BatchLimits, DTypeSpec, DeviceSpec};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json).
    /// Default: the cache, filled by `prag model fetch`.
    #[arg(long = "model", env = "PRAG_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Where the model runs: auto, cpu, cuda or cuda:N.
    #[arg(long, env = "PRAG_DEVICE", default_value = "auto")]
    pub device: DeviceSpec,
    /// Number format: auto (f32 on CPU, f16 on CUDA), f32, f16, bf16, or int8 (CPU only: linear
    /// layers in 8-bit integers, faster, slightly less exact; see the README).
    #[arg(long, env = "PRAG_DTYPE", default_value = "auto")]
    pub dtype: DTypeSpec,
    /// Model worker threads (default: one per core on CPU, one on CUDA).
    #[arg(long, env = "PRAG_EMBED_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub embed_workers: Option<u16>,
    /// Padded tokens per forward pass.
    #[arg(long, env = "PRAG_TOKEN_BUDGET", default_value_t = BatchLimits::default().token_budget as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub token_budget: u32,
    /// Texts per forward pass.
    #[arg(long, env = "PRAG_MAX_BATCH", default_value_t = BatchLimits::default().max_batch as u32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_batch: u32,
}
