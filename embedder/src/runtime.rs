//! The embedder's threads: callers enqueue requests on a bounded queue; one batcher thread keeps
//! the waiting texts in a fair queue by tenant ([`crate::fair`]) and, each time a model worker is
//! free, tokenises the next fair batch and hands it over; model worker threads run the batches and
//! hand each text's vector back to its request.
//!
//! ```text
//!  embed().await ──► [bounded request queue] ──► batcher ──► [one job per free worker] ──► worker × N ──► reply
//!                                                  ▲ fair queue by tenant          "free" ◄──┘
//! ```
//! Async callers only await a channel: the model never runs on a tokio thread. Batches are formed
//! only when a worker is free, so a newly arrived request waits for at most one batch per worker,
//! whatever another tenant has queued. A caller that goes away (drops its future) stops its work:
//! its remaining texts are never batched, and a batch all of whose texts were abandoned is skipped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, PaddedBatch};
use crate::batching::{BatchLimits, plan_batches};
use crate::error::{EmbedError, Result};
use crate::fair::{FairQueue, Work};
use crate::tokenize::TextTokenizer;

pub(crate) type Reply = oneshot::Sender<Result<Vec<Vec<f32>>>>;

pub(crate) struct Request {
    /// Who the texts are for: tenants take turns (see [`crate::fair`]).
    pub tenant: String,
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
    /// Texts dropped because their caller went away before they were embedded.
    pub cancelled_texts: AtomicU64,
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
    #[serde(default)]
    pub cancelled_texts: u64,
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
            cancelled_texts: self.cancelled_texts.load(Ordering::Relaxed),
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

    /// Whether nobody waits for the answer any more (the caller went away, or it already failed).
    fn is_cancelled(&self) -> bool {
        self.reply.lock().map(|r| r.as_ref().is_none_or(|s| s.is_closed())).unwrap_or(true)
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

/// One request's texts not yet batched.
struct Waiting {
    pending: Arc<Pending>,
    texts: std::collections::VecDeque<String>,
    /// Slot of the front text in the request.
    next_slot: usize,
    max_tokens: usize,
}

impl Work for Waiting {
    type Item = (Arc<Pending>, usize, String);

    fn next_item(&mut self) -> Option<Self::Item> {
        let text = self.texts.pop_front()?;
        self.next_slot += 1;
        Some((Arc::clone(&self.pending), self.next_slot - 1, text))
    }

    /// About one token per 3 bytes plus [CLS]/[SEP] (English runs near 4 bytes a token, so this
    /// errs towards smaller batches), at most the model's window.
    fn next_cost(&self) -> usize {
        self.texts.front().map_or(0, |t| (t.len() / 3 + 2).min(self.max_tokens))
    }

    fn has_items(&self) -> bool {
        !self.texts.is_empty()
    }

    fn cancelled(&self) -> bool {
        self.pending.is_cancelled()
    }
}

pub(crate) struct RuntimeConfig {
    pub limits: BatchLimits,
    pub workers: usize,
    pub pad_id: u32,
    /// The model's window: no text costs more tokens than this.
    pub max_tokens: usize,
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
    let (free_tx, free_rx) = std::sync::mpsc::channel::<()>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    for i in 0..workers {
        let rx = Arc::clone(&job_rx);
        let backend = Arc::clone(&backend);
        let stats = Arc::clone(&stats);
        let free = free_tx.clone();
        std::thread::Builder::new()
            .name(format!("prag-embed-{i}"))
            .spawn(move || worker_loop(&rx, backend.as_ref(), &stats, &free))
            .map_err(|e| EmbedError::Compute(format!("cannot start embedder worker thread: {e}")))?;
    }
    drop(free_tx);
    std::thread::Builder::new()
        .name("prag-embed-batcher".into())
        .spawn(move || batcher_loop(req_rx, job_tx, free_rx, &tokenizer, &config, workers, &stats))
        .map_err(|e| EmbedError::Compute(format!("cannot start embedder batcher thread: {e}")))?;
    Ok(req_tx)
}

/// Moves a received request into the fair queue (or answers it at once when it has no text).
fn enqueue(queue: &mut FairQueue<Waiting>, request: Request, max_tokens: usize, stats: &EmbedStats) {
    stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
    let Request { tenant, texts, reply } = request;
    if texts.is_empty() {
        let _ = reply.send(Ok(Vec::new()));
        return;
    }
    let pending = Pending::new(texts.len(), reply);
    queue.push(&tenant, Waiting { pending, texts: texts.into(), next_slot: 0, max_tokens });
}

fn batcher_loop(
    mut rx: mpsc::Receiver<Request>,
    jobs: SyncSender<Job>,
    free: Receiver<()>,
    tokenizer: &TextTokenizer,
    config: &RuntimeConfig,
    workers: usize,
    stats: &EmbedStats,
) {
    let mut queue: FairQueue<Waiting> = FairQueue::default();
    let mut free_workers = workers;
    loop {
        if queue.is_empty() {
            match rx.blocking_recv() {
                Some(r) => enqueue(&mut queue, r, config.max_tokens, stats),
                None => return,
            }
        }
        // Batch only for a free worker, so what arrives meanwhile competes for the next batch.
        while free_workers == 0 {
            match free.recv() {
                Ok(()) => free_workers += 1,
                Err(_) => return, // every worker is gone
            }
        }
        while free.try_recv().is_ok() {
            free_workers += 1;
        }
        while let Ok(r) = rx.try_recv() {
            enqueue(&mut queue, r, config.max_tokens, stats);
        }
        for gone in queue.prune() {
            stats.cancelled_texts.fetch_add(gone.texts.len() as u64, Ordering::Relaxed);
        }
        let picked = queue.next_batch(config.limits.max_batch.max(1), config.limits.token_budget);
        if picked.is_empty() {
            continue;
        }

        let mut items: Vec<(Arc<Pending>, usize, Vec<u32>)> = Vec::with_capacity(picked.len());
        for (pending, slot, text) in picked {
            match tokenizer.encode(&text) {
                Ok(e) => items.push((pending, slot, e.ids)),
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    pending.fail(e);
                }
            }
        }
        let lengths: Vec<usize> = items.iter().map(|(_, _, ids)| ids.len()).collect();
        for plan in plan_batches(&lengths, config.limits) {
            let seqs: Vec<&[u32]> = plan.iter().map(|&i| items[i].2.as_slice()).collect();
            let batch = PaddedBatch::from_sequences(&seqs, config.pad_id);
            let targets = plan.iter().map(|&i| (Arc::clone(&items[i].0), items[i].1)).collect();
            if jobs.send(Job { batch, targets }).is_err() {
                return; // every worker is gone; dropping the pendings closes their replies
            }
            free_workers = free_workers.saturating_sub(1);
        }
    }
}

fn worker_loop(jobs: &Mutex<Receiver<Job>>, backend: &dyn Backend, stats: &EmbedStats, free: &Sender<()>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        run_job(job, backend, stats);
        if free.send(()).is_err() {
            return;
        }
    }
}

fn run_job(job: Job, backend: &dyn Backend, stats: &EmbedStats) {
    if job.targets.iter().all(|(p, _)| p.is_cancelled()) {
        stats.cancelled_texts.fetch_add(job.targets.len() as u64, Ordering::Relaxed);
        return;
    }
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
