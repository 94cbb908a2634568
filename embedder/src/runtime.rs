//! The embedder's threads: callers enqueue requests on a bounded queue; one batcher thread
//! tokenises them, merges requests that are waiting together, and plans token-budget batches;
//! model worker threads run the batches and hand each text's vector back to its request.
//!
//! ```text
//!  embed().await ──► [bounded request queue] ──► batcher ──► [bounded job queue] ──► worker × N ──► reply
//! ```
//! Async callers only await a channel: the model never runs on a tokio thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, PaddedBatch};
use crate::batching::{BatchLimits, plan_batches};
use crate::error::{EmbedError, Result};
use crate::tokenize::TextTokenizer;

pub(crate) type Reply = oneshot::Sender<Result<Vec<Vec<f32>>>>;

pub(crate) struct Request {
    pub texts: Vec<String>,
    pub reply: Reply,
}

/// Counters the node exports as metrics. All monotonic except `queue_depth`.
#[derive(Debug, Default)]
pub struct EmbedStats {
    pub texts: AtomicU64,
    pub tokens: AtomicU64,
    pub batches: AtomicU64,
    /// Time workers spent in forward passes, in microseconds (summed over workers).
    pub busy_micros: AtomicU64,
    /// Texts in the most recent batch.
    pub last_batch_size: AtomicUsize,
    /// Requests accepted but not yet tokenised.
    pub queue_depth: AtomicUsize,
    pub errors: AtomicU64,
}

/// A snapshot of [`EmbedStats`].
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    pub texts: u64,
    pub tokens: u64,
    pub batches: u64,
    pub busy_seconds: f64,
    pub last_batch_size: usize,
    pub queue_depth: usize,
    pub errors: u64,
}

impl EmbedStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            texts: self.texts.load(Ordering::Relaxed),
            tokens: self.tokens.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            busy_seconds: self.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
            last_batch_size: self.last_batch_size.load(Ordering::Relaxed),
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A request being assembled from the results of several batches.
struct Pending {
    slots: Mutex<Vec<Option<Vec<f32>>>>,
    remaining: AtomicUsize,
    reply: Mutex<Option<Reply>>,
}

impl Pending {
    fn new(n: usize, reply: Reply) -> Arc<Self> {
        Arc::new(Pending {
            slots: Mutex::new(vec![None; n]),
            remaining: AtomicUsize::new(n),
            reply: Mutex::new(Some(reply)),
        })
    }

    fn take_reply(&self) -> Option<Reply> {
        self.reply.lock().ok().and_then(|mut r| r.take())
    }

    fn fail(&self, err: EmbedError) {
        if let Some(reply) = self.take_reply() {
            let _ = reply.send(Err(err));
        }
    }

    fn fill(&self, slot: usize, vector: Vec<f32>) {
        if let Ok(mut slots) = self.slots.lock()
            && let Some(s) = slots.get_mut(slot)
        {
            *s = Some(vector);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let vectors: Option<Vec<Vec<f32>>> =
                self.slots.lock().ok().map(|mut s| std::mem::take(&mut *s).into_iter().flatten().collect());
            if let (Some(reply), Some(vectors)) = (self.take_reply(), vectors) {
                let _ = reply.send(Ok(vectors));
            }
        }
    }
}

struct Job {
    batch: PaddedBatch,
    targets: Vec<(Arc<Pending>, usize)>,
}

pub(crate) struct RuntimeConfig {
    pub limits: BatchLimits,
    pub workers: usize,
    pub pad_id: u32,
}

/// Starts the batcher and worker threads; returns the request queue's sender.
pub(crate) fn start(
    tokenizer: Arc<TextTokenizer>,
    backend: Arc<dyn Backend>,
    config: RuntimeConfig,
    queue_capacity: usize,
    stats: Arc<EmbedStats>,
) -> Result<mpsc::Sender<Request>> {
    let (req_tx, req_rx) = mpsc::channel::<Request>(queue_capacity.max(1));
    let workers = config.workers.max(1);
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<Job>(workers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    for i in 0..workers {
        let rx = Arc::clone(&job_rx);
        let backend = Arc::clone(&backend);
        let stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name(format!("prag-embed-{i}"))
            .spawn(move || worker_loop(&rx, backend.as_ref(), &stats))
            .map_err(|e| EmbedError::Compute(format!("cannot start embedder worker thread: {e}")))?;
    }
    std::thread::Builder::new()
        .name("prag-embed-batcher".into())
        .spawn(move || batcher_loop(req_rx, job_tx, &tokenizer, &config, workers, &stats))
        .map_err(|e| EmbedError::Compute(format!("cannot start embedder batcher thread: {e}")))?;
    Ok(req_tx)
}

fn batcher_loop(
    mut rx: mpsc::Receiver<Request>,
    jobs: SyncSender<Job>,
    tokenizer: &TextTokenizer,
    config: &RuntimeConfig,
    workers: usize,
    stats: &EmbedStats,
) {
    while let Some(first) = rx.blocking_recv() {
        stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        // Merge the requests that are already waiting, up to about one token budget of texts.
        let mut requests = vec![first];
        let mut texts: usize = requests[0].texts.len();
        while texts < config.limits.max_batch {
            match rx.try_recv() {
                Ok(r) => {
                    stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    texts += r.texts.len();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }

        let mut items: Vec<(Arc<Pending>, usize, Vec<u32>)> = Vec::with_capacity(texts);
        for request in requests {
            let encoded: Result<Vec<Vec<u32>>> =
                request.texts.iter().map(|t| tokenizer.encode(t).map(|e| e.ids)).collect();
            match encoded {
                Ok(seqs) if seqs.is_empty() => {
                    let _ = request.reply.send(Ok(Vec::new()));
                }
                Ok(seqs) => {
                    let pending = Pending::new(seqs.len(), request.reply);
                    items.extend(seqs.into_iter().enumerate().map(|(i, s)| (Arc::clone(&pending), i, s)));
                }
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    let _ = request.reply.send(Err(e));
                }
            }
        }
        if items.is_empty() {
            continue;
        }

        // Spread one request over all workers rather than queueing it behind a single one.
        let per_worker = items.len().div_ceil(workers);
        let limits = BatchLimits { max_batch: config.limits.max_batch.min(per_worker.max(1)), ..config.limits };
        let lengths: Vec<usize> = items.iter().map(|(_, _, ids)| ids.len()).collect();
        for plan in plan_batches(&lengths, limits) {
            let seqs: Vec<&[u32]> = plan.iter().map(|&i| items[i].2.as_slice()).collect();
            let batch = PaddedBatch::from_sequences(&seqs, config.pad_id);
            let targets = plan.iter().map(|&i| (Arc::clone(&items[i].0), items[i].1)).collect();
            if jobs.send(Job { batch, targets }).is_err() {
                return; // every worker is gone; dropping the pendings closes their replies
            }
        }
    }
}

fn worker_loop(jobs: &Mutex<Receiver<Job>>, backend: &dyn Backend, stats: &EmbedStats) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let started = Instant::now();
        // A backend that panics (a GPU library missing at run time, say) fails this batch, not the thread.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| backend.embed(&job.batch)))
            .unwrap_or_else(|_| Err(EmbedError::Compute("the model backend panicked on this batch".into())));
        stats.busy_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(vectors) if vectors.len() == job.targets.len() => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.texts.fetch_add(vectors.len() as u64, Ordering::Relaxed);
                stats.tokens.fetch_add(job.batch.tokens() as u64, Ordering::Relaxed);
                stats.last_batch_size.store(vectors.len(), Ordering::Relaxed);
                for ((pending, slot), v) in job.targets.into_iter().zip(vectors) {
                    pending.fill(slot, v);
                }
            }
            Ok(vectors) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let msg = format!("backend returned {} vectors for {} texts", vectors.len(), job.targets.len());
                for (pending, _) in job.targets {
                    pending.fail(EmbedError::Compute(msg.clone()));
                }
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let msg = e.to_string();
                for (pending, _) in job.targets {
                    pending.fail(EmbedError::Compute(msg.clone()));
                }
            }
        }
    }
}
