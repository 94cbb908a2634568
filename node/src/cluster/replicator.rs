//! The replicator: an actor that owns the round's transfer queue, the transfer lanes (a
//! semaphore of `--max-transfers` permits) and the incoming-bytes throttle. Each sync round hands
//! it the round's plan; it hands off what every owner holds (unless it is being fetched), and
//! drains the queue one document per lane, so a finished transfer is followed by the next at once
//! rather than at the next round.
//!
//! A transfer pulls a document file piece by piece into `tmp/<doc>.<version>.part`, resuming from
//! the part's length after an interruption and trying each holder in turn; only a complete file
//! whose header, every vector and every text open under the collection key is put in place and
//! indexed. Nothing partial is ever served.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::metrics::ClusterMetrics;
use super::plan::Fetch;
use crate::collections::{Collection, Collections, ReadyDocument};
use crate::error::{Error, ErrorKind, Result};
use crate::net::Net;
use crate::net::protocol::cluster::{ClusterRequest, ClusterResponse, Framed};

/// One round's work for one collection.
pub(crate) struct CollectionWork {
    pub cid: String,
    pub fetch: Vec<Fetch>,
    pub hand_off: Vec<(String, u64)>,
}

/// The replicator's handle.
#[derive(Clone)]
pub(crate) struct Replicator {
    rounds: mpsc::Sender<Vec<CollectionWork>>,
}

/// What a transfer needs.
#[derive(Clone)]
pub(crate) struct TransferDeps {
    pub net: Net,
    pub collections: Arc<Collections>,
    pub metrics: Arc<ClusterMetrics>,
    pub piece_bytes: u32,
    pub throttle: Arc<Throttle>,
}

type Key = (String, String);

struct Job {
    cid: String,
    fetch: Fetch,
}

impl Replicator {
    /// Starts the actor; it stops when `cancel` fires or every handle is dropped.
    pub(crate) fn start(
        deps: TransferDeps,
        lanes: usize,
        cancel: CancellationToken,
    ) -> (Replicator, impl std::future::Future<Output = ()>) {
        let (rounds, rx) = mpsc::channel(4);
        (Replicator { rounds }, run(deps, lanes, rx, cancel))
    }

    /// Hands the actor a round's plan (replacing the queue of the previous round).
    pub(crate) async fn round(&self, work: Vec<CollectionWork>) {
        let _ = self.rounds.send(work).await;
    }
}

async fn run(
    deps: TransferDeps,
    lanes: usize,
    mut rounds: mpsc::Receiver<Vec<CollectionWork>>,
    cancel: CancellationToken,
) {
    let lanes = Arc::new(Semaphore::new(lanes.max(1)));
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut in_flight: HashSet<Key> = HashSet::new();
    let mut running: JoinSet<Key> = JoinSet::new();
    loop {
        // Start transfers while lanes are free and the queue has work not already under way.
        while !queue.is_empty() {
            let Ok(permit) = Arc::clone(&lanes).try_acquire_owned() else { break };
            let Some(job) = next_job(&mut queue, &in_flight) else {
                drop(permit);
                break;
            };
            let key = (job.cid.clone(), job.fetch.doc_id.clone());
            in_flight.insert(key.clone());
            let deps = deps.clone();
            running.spawn(async move {
                let _lane = permit;
                transfer(&deps, &job).await;
                key
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            round = rounds.recv() => match round {
                Some(work) => {
                    queue.clear();
                    for w in work {
                        hand_off(&deps, &w, &in_flight).await;
                        queue.extend(w.fetch.into_iter().map(|fetch| Job { cid: w.cid.clone(), fetch }));
                    }
                }
                None => return,
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(key) = done {
                    in_flight.remove(&key);
                }
            }
        }
    }
}

/// The first queued job whose document is not being fetched already.
fn next_job(queue: &mut VecDeque<Job>, in_flight: &HashSet<Key>) -> Option<Job> {
    let at = queue.iter().position(|j| !in_flight.contains(&(j.cid.clone(), j.fetch.doc_id.clone())))?;
    queue.remove(at)
}

/// Drops documents every owner holds (never one being fetched: its newer version is coming).
async fn hand_off(deps: &TransferDeps, w: &CollectionWork, in_flight: &HashSet<Key>) {
    let Some(c) = deps.collections.by_id(&w.cid) else { return };
    for (doc, version) in &w.hand_off {
        if in_flight.contains(&(w.cid.clone(), doc.clone())) {
            continue;
        }
        let _commit = c.commit.lock().await;
        match c.remove_document(doc, Some(*version)).await {
            Ok(Some(_)) => {
                deps.metrics.documents_handed_off.fetch_add(1, Ordering::Relaxed);
                tracing::info!(collection = %c.name(), doc_id = %doc, "document handed off to its owners");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(doc_id = %doc, error = %e.chain(), "cannot drop a handed-off document"),
        }
    }
}

/// Fetches one document, unless it arrived meanwhile (the queue may be a round old).
async fn transfer(deps: &TransferDeps, job: &Job) {
    let Some(c) = deps.collections.by_id(&job.cid) else { return };
    if c.entry(&job.fetch.doc_id).is_some_and(|d| d.version >= job.fetch.version) {
        return;
    }
    if let Err(e) = fetch_document(deps, &c, &job.fetch).await {
        tracing::warn!(collection = %c.name(), doc_id = %job.fetch.doc_id, error = %e.chain(), "shard transfer interrupted; it resumes next round");
    }
}

/// Counts a transfer as active while alive.
struct Active<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Active<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Active(counter)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Pulls one document file piece by piece, resuming a part left by an interrupted transfer and
/// trying each source in turn; installs it only once complete and verified.
async fn fetch_document(deps: &TransferDeps, c: &Arc<Collection>, f: &Fetch) -> Result<()> {
    let m = &deps.metrics;
    let _active = Active::new(&m.transfers_active);
    let part = c.store.part_path(&f.doc_id, f.version);
    let mut offset = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if offset > f.len {
        let _ = std::fs::remove_file(&part);
        offset = 0;
    }
    if offset > 0 {
        m.transfers_resumed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(collection = %c.name(), doc_id = %f.doc_id, offset, len = f.len, "resuming a shard transfer");
    }
    let mut last_error = Error::new(ErrorKind::Unavailable, "no peer holds this version");
    'sources: for source in &f.sources {
        while offset < f.len {
            let want = (deps.piece_bytes as u64).min(f.len - offset) as u32;
            deps.throttle.wait(want as usize).await;
            let request = ClusterRequest::Fetch {
                cid: c.id().to_string(),
                doc_id: f.doc_id.clone(),
                version: f.version,
                offset,
                max: want,
            };
            match deps.net.ask_cluster(*source, Framed::new(request)).await {
                Ok(Framed { head: ClusterResponse::Piece { total }, body }) => {
                    if total != f.len || body.is_empty() {
                        let _ = std::fs::remove_file(&part);
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            format!("peer {source} has a different file for this version"),
                        ));
                    }
                    let n = body.len() as u64;
                    append_piece(&part, body).await?;
                    offset += n;
                    m.bytes_replicated.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Framed { head, .. }) => {
                    last_error = refused_by(*source, head);
                    continue 'sources;
                }
                Err(e) => {
                    last_error = e.into();
                    continue 'sources;
                }
            }
        }
        break;
    }
    if offset < f.len {
        return Err(last_error);
    }
    if install(c, &f.doc_id, f.version, &part).await? {
        m.documents_replicated.fetch_add(1, Ordering::Relaxed);
        tracing::info!(collection = %c.name(), doc_id = %f.doc_id, bytes = f.len, "document replicated");
    }
    Ok(())
}

fn refused_by(source: PeerId, head: ClusterResponse) -> Error {
    match head {
        ClusterResponse::Gone => Error::new(ErrorKind::NotFound, format!("peer {source} no longer holds that version")),
        ClusterResponse::Refused(e) => Error::from(e),
        other => Error::new(ErrorKind::Unavailable, format!("peer {source} answered {other:?}")),
    }
}

async fn append_piece(part: &std::path::Path, body: Vec<u8>) -> Result<()> {
    let p = part.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p)?;
        f.write_all(&body)
    })
    .await?
    .map_err(|e| Error::internal(format!("cannot write {}", part.display()), e))
}

/// Verifies a received file, moves it into place and indexes it (under the commit lock, so a
/// local upload of the same document cannot interleave). Returns false when a version as new was
/// installed meanwhile (the file is dropped).
async fn install(c: &Arc<Collection>, doc: &str, version: u64, part: &std::path::Path) -> Result<bool> {
    let _commit = c.commit.lock().await;
    if c.entry(doc).is_some_and(|d| d.version >= version) {
        let _ = std::fs::remove_file(part);
        return Ok(false);
    }
    let (store, d, p) = (c.store.clone(), doc.to_string(), part.to_path_buf());
    let loaded = tokio::task::spawn_blocking(move || store.verify_replica(&d, &p, version))
        .await?
        .map_err(|e| Error::new(ErrorKind::Conflict, format!("received file refused: {e}")))?;
    let chunks = loaded
        .chunks
        .into_iter()
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::new(ErrorKind::Conflict, format!("received file refused: {e}")))?;
    let (mut locations, mut vectors, mut sparse) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in chunks {
        locations.push(chunk.loc);
        vectors.push(chunk.vector);
        sparse.push(chunk.sparse);
    }
    let ready = ReadyDocument {
        doc_id: doc.to_string(),
        header: loaded.header,
        bytes: loaded.bytes,
        locations,
        vectors,
        sparse,
    };
    let (d, p) = (doc.to_string(), part.to_path_buf());
    c.commit(vec![ready], move |store| store.place_replica(&d, &p)).await?;
    Ok(true)
}

/// The shared budget of incoming shard bytes per second.
pub(crate) struct Throttle {
    rate: u64,
    next: tokio::sync::Mutex<Instant>,
}

impl Throttle {
    /// `rate` bytes a second (0: unlimited).
    pub(crate) fn new(rate: u64) -> Self {
        Throttle { rate, next: tokio::sync::Mutex::new(Instant::now()) }
    }

    /// Waits until `bytes` more may come in.
    pub(crate) async fn wait(&self, bytes: usize) {
        if self.rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let until = {
            let mut next = self.next.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + cost;
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}
