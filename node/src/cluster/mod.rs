//! The storage network: which peers may hold shards (admission), where shards live (placement),
//! how collection keys travel (HPKE key wrapping), what nodes say to each other (wire), and the
//! pure parts of distributed retrieval (search). The node's side of it — answering peers,
//! replicating, searching remotely — is in `service/cluster.rs`, `service/replication.rs` and
//! `service/distributed.rs`; the transport is `p2p`.

pub mod identity;
pub mod keywrap;
pub mod placement;
pub mod search;
pub mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use parking_lot::{Mutex, RwLock};

pub use identity::{HpkePrivateKey, HpkePublicKey, STORAGE_WORKER_TYPE, StorageCard, StorageIdentity};

use crate::metrics::Histogram;

/// How shards are laid out and moved.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Shards per new collection.
    pub shards: u32,
    /// Copies of each shard.
    pub replicas: u32,
    /// How long a vanished node keeps its place before its shards are copied elsewhere.
    pub rereplicate_after: Duration,
    /// How long a remote search may take before the same shards are asked of another replica.
    pub hedge_after: Duration,
    /// How often the node syncs catalogs and holdings with its peers.
    pub sync_interval: Duration,
    /// Incoming shard bytes per second, all transfers together (0: unlimited).
    pub transfer_rate: u64,
    /// Bytes per transfer request.
    pub piece_bytes: u32,
    /// Transfers running at once.
    pub max_transfers: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            shards: 4,
            replicas: 2,
            rereplicate_after: Duration::from_secs(60),
            hedge_after: Duration::from_millis(250),
            sync_interval: Duration::from_secs(1),
            transfer_rate: 256 << 20,
            piece_bytes: 4 << 20,
            max_transfers: 4,
        }
    }
}

/// What this node knows of a peer's storage role.
#[derive(Debug, Clone, Default)]
pub struct PeerRecord {
    pub card: Option<StorageCard>,
    /// The verdict of the last admission check: the peer's HPKE key, or why it is refused.
    pub admission: Option<Result<identity::HpkePublicKey, String>>,
    /// cid → doc id → (version, file length), from the peer's last sync answer.
    pub holdings: HashMap<String, HashMap<String, (u64, u64)>>,
    /// cid → doc id → (version, path, chunks), for document listings.
    pub listing: HashMap<String, HashMap<String, (u64, String, u64)>>,
    pub synced_at: Option<Instant>,
}

/// A document to fetch: which version, how long, from whom.
#[derive(Debug, Clone)]
pub struct TransferJob {
    pub cid: String,
    pub doc_id: String,
    pub version: u64,
    pub len: u64,
    pub sources: Vec<PeerId>,
}

/// Counters of the storage network.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    pub bytes_replicated: AtomicU64,
    pub documents_replicated: AtomicU64,
    pub transfers_active: AtomicU64,
    pub transfers_resumed: AtomicU64,
    pub peer_requests_refused: AtomicU64,
    pub documents_handed_off: AtomicU64,
    pub remote_search_seconds: Histogram,
    pub hedged_searches: AtomicU64,
    pub partial_answers: AtomicU64,
}

impl ClusterMetrics {
    /// Appends the storage network's counters and remote-search latency (Prometheus text).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            ("prag_replicated_bytes_total", "Shard bytes received from peers.", &self.bytes_replicated),
            (
                "prag_replicated_documents_total",
                "Documents received, verified and installed.",
                &self.documents_replicated,
            ),
            ("prag_transfers_resumed_total", "Shard transfers resumed from a kept part.", &self.transfers_resumed),
            (
                "prag_peer_requests_refused_total",
                "Requests refused because the peer is not admitted.",
                &self.peer_requests_refused,
            ),
            (
                "prag_documents_handed_off_total",
                "Documents dropped here once their owners held them.",
                &self.documents_handed_off,
            ),
            ("prag_hedged_searches_total", "Remote searches also asked of another replica.", &self.hedged_searches),
            ("prag_partial_answers_total", "Answers missing shards no replica could serve.", &self.partial_answers),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP prag_transfers_active Shard transfers running.\n# TYPE prag_transfers_active gauge\nprag_transfers_active {}",
            self.transfers_active.load(Relaxed)
        );
        self.remote_search_seconds.render(
            out,
            "prag_remote_search_seconds",
            "Latency of a search asked of a peer, sealing included.",
        );
    }
}

/// The node's storage-network state.
pub struct Cluster {
    pub config: ClusterConfig,
    pub identity: StorageIdentity,
    pub p2p: crate::p2p::P2pHandle,
    pub peers: RwLock<HashMap<PeerId, PeerRecord>>,
    /// Documents being fetched: (cid, doc id).
    pub transfers: Mutex<HashSet<(String, String)>>,
    /// Documents to fetch, refreshed each sync round; transfer lanes take from the front.
    pub queue: Mutex<std::collections::VecDeque<TransferJob>>,
    /// Transfer lanes running (at most `max_transfers`).
    pub lanes: std::sync::atomic::AtomicUsize,
    /// When the incoming-bytes budget is next free (the transfer throttle).
    pub throttle: tokio::sync::Mutex<Instant>,
    pub metrics: ClusterMetrics,
    /// This node's own admission verdict, refreshed each sync.
    pub self_admission: RwLock<Result<(), String>>,
    /// Peers refused admission: peer id → reason (for status).
    pub refused: RwLock<BTreeMap<String, String>>,
}

impl Cluster {
    pub fn new(config: ClusterConfig, identity: StorageIdentity, p2p: crate::p2p::P2pHandle) -> Self {
        Cluster {
            config,
            identity,
            p2p,
            peers: Default::default(),
            transfers: Default::default(),
            queue: Default::default(),
            lanes: Default::default(),
            throttle: tokio::sync::Mutex::new(Instant::now()),
            metrics: Default::default(),
            self_admission: RwLock::new(Err("not checked yet".into())),
            refused: Default::default(),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.p2p.local_peer_id()
    }

    /// Waits until `bytes` more may come in under the configured rate.
    pub async fn throttle(&self, bytes: usize) {
        if self.config.transfer_rate == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.config.transfer_rate as f64);
        let until = {
            let mut next = self.throttle.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + cost;
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }

    /// Whether `peer` is admitted (per the last check).
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.peers.read().get(peer).is_some_and(|p| matches!(p.admission, Some(Ok(_))))
    }
}
