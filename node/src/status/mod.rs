//! What the node reports about itself: one snapshot, rebuilt by a background task every
//! `--status-refresh-ms` and shortly after a commit or a deletion, so that `/v1/status`,
//! `/metrics` and every open console cost the same whatever the data directory holds. The bytes
//! under the data directory are counted on a slower timer of their own.
//!
//! Counters (queries, refusals, the embedder's), each collection's counts, the connected peers and
//! the ledger's height are read live when a request comes: they cost next to nothing and are never
//! stale. A new ledger entry does not trigger a rebuild: what it changes (workers' verdicts,
//! subscribers) waits for the next tick, so a busy ledger (50 entries a second) does not rebuild
//! every node's snapshot 20 times a second while it is searching.

mod console;
mod prometheus;
mod snapshot;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prag_embedder::Embedder;
use prag_proto::api::{API_VERSION, NodeStatus, PublicStatus};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::cluster::StorageNet;
use crate::collections::Collections;
use crate::config::StatusConfig;
use crate::ledger::LedgerService;
use crate::metrics::Metrics;
use crate::net::Net;
use snapshot::Cached;

/// Where the status comes from.
pub(crate) struct Sources {
    pub node_id: String,
    pub data_dir: PathBuf,
    pub started: Instant,
    pub embedder: Embedder,
    pub collections: Arc<Collections>,
    pub network: Arc<dyn StorageNet>,
    pub net: Net,
    pub ledger: LedgerService,
    pub access: Arc<Access>,
    pub metrics: Arc<Metrics>,
    /// Whether the node has an attestation report for its channel key.
    pub attested: bool,
}

/// The status component.
pub struct Status {
    sources: Sources,
    config: StatusConfig,
    cached: RwLock<Arc<Cached>>,
    disk_bytes: AtomicU64,
    /// Raised by the collections on every change.
    changed: Arc<Notify>,
}

impl Status {
    /// The component, with its first snapshot built (so a node answers correctly from its first
    /// request), and its refresh task to run.
    pub(crate) fn new(
        sources: Sources,
        config: StatusConfig,
        changed: Arc<Notify>,
        cancel: CancellationToken,
    ) -> (Arc<Status>, impl std::future::Future<Output = ()> + Send + 'static) {
        let disk = dir_size(&sources.data_dir);
        let cached = snapshot::build(&sources, disk);
        let status = Arc::new(Status {
            sources,
            config,
            cached: RwLock::new(Arc::new(cached)),
            disk_bytes: AtomicU64::new(disk),
            changed,
        });
        let task = refresh_loop(Arc::clone(&status), cancel);
        (status, task)
    }

    fn cached(&self) -> Arc<Cached> {
        Arc::clone(&self.cached.read())
    }

    /// Rebuilds the snapshot now (on the calling thread). Collections' snapshot roots are
    /// computed here, where they changed since the last refresh (not in the first snapshot: a
    /// node answers from its first request, and a root follows within a refresh).
    fn refresh(&self) {
        for c in self.sources.collections.all() {
            if let Err(e) = c.snapshot() {
                tracing::warn!(collection = %c.name(), error = %e, "cannot compute the collection's snapshot root");
            }
        }
        let fresh = snapshot::build(&self.sources, self.disk_bytes.load(Ordering::Relaxed));
        *self.cached.write() = Arc::new(fresh);
    }

    /// What anyone may know: that the node is up, its id, and whether it can be talked to.
    pub fn public(&self) -> PublicStatus {
        PublicStatus {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: API_VERSION,
            uptime_secs: self.sources.started.elapsed().as_secs(),
            node_id: self.sources.node_id.clone(),
            attestation_mode: self.sources.access.gate().mode().as_str().to_string(),
            attested: self.sources.attested,
        }
    }

    /// `c` as status lists it: its document counts now, its index counts from the snapshot.
    pub fn collection_info(&self, c: &crate::collections::Collection) -> prag_proto::api::CollectionInfo {
        snapshot::info(c, self.cached().points.get(c.name()).copied().unwrap_or_default())
    }

    /// The collections `owner` (canonical hex key) owns, counted now.
    pub fn collections_of(&self, owner: &str) -> Vec<prag_proto::api::CollectionInfo> {
        let mut mine = snapshot::collections(&self.sources, &self.cached());
        mine.retain(|c| c.owner == owner);
        mine
    }

    /// Everything, for operators: the snapshot with the live counters.
    pub fn detailed(&self) -> NodeStatus {
        let c = self.cached();
        snapshot::with_live_counters(&self.sources, &c)
    }
}

/// Rebuilds the snapshot on every tick and shortly after every change; counts disk bytes on its
/// own, slower timer. Both on blocking threads.
async fn refresh_loop(status: Arc<Status>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(status.config.refresh_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut disk = tokio::time::interval(status.config.disk_usage_interval);
    disk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            _ = status.changed.notified() => tokio::time::sleep(Duration::from_millis(5)).await,
            _ = disk.tick() => {
                let (s, dir) = (Arc::clone(&status), status.sources.data_dir.clone());
                if let Ok(bytes) = tokio::task::spawn_blocking(move || dir_size(&dir)).await {
                    s.disk_bytes.store(bytes, Ordering::Relaxed);
                }
            }
        }
        let s = Arc::clone(&status);
        if tokio::task::spawn_blocking(move || s.refresh()).await.is_err() {
            tracing::warn!("rebuilding the status snapshot failed");
        }
        // A burst of changes (a bulk upload, a busy ledger) costs one rebuild per gap, not one each.
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// The least time between two rebuilds.
const MIN_GAP: Duration = Duration::from_millis(50);

/// Bytes of every file under `dir`.
fn dir_size(dir: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
