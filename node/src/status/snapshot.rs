//! Building the status snapshot (the part that walks shards, workers and the index engines), and
//! putting the live counts into it when a request comes: counters, and each collection's
//! documents and chunks (one map length each, so an answer always counts the last commit).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use prag_proto::api::{
    API_VERSION, AttestationStatus, ClusterStatus, CollectionInfo, EmbedderStatus, EpochView, LedgerSummary,
    NodeStatus, SubscriberView, TxView, WorkerView,
};
use prag_proto::ledger::LedgerState;

use super::Sources;
use crate::auth::unix_now;
use crate::collections::Collection;

/// What the refresh task builds.
pub(crate) struct Cached {
    /// Collection name → (points, indexed points) in its index.
    pub points: HashMap<String, (u64, u64)>,
    pub disk_bytes: u64,
    pub index_backend: String,
    pub attestation: AttestationStatus,
    pub peer_id: String,
    pub cluster: Option<ClusterStatus>,
    /// The console's ledger, worker and subscriber views.
    pub console: ConsoleParts,
}

/// A collection as status lists it; `points` are (total, indexed) index points.
pub(crate) fn info(c: &Collection, points: (u64, u64)) -> CollectionInfo {
    let (documents, chunks) = c.counts();
    let owner_address =
        prag_proto::account::parse_public_key(c.owner()).map(|k| prag_proto::account::address(&k)).unwrap_or_default();
    CollectionInfo {
        name: c.name().to_string(),
        owner: c.owner().to_string(),
        owner_address,
        created_at: c.created_at(),
        documents,
        chunks,
        total_points: points.0,
        indexed_points: points.1,
        // Never built here (this runs on requests too): the status refresh builds it.
        snapshot_root: c.current_snapshot().map(|s| hex::encode(s.root)),
    }
}

/// Builds the snapshot; `disk_bytes` comes from the slower disk count.
pub(crate) fn build(s: &Sources, disk_bytes: u64) -> Cached {
    let points = s
        .collections
        .all()
        .iter()
        .map(|c| {
            // The index's counts may be a call to a Qdrant server: asked here, in the background.
            let stats = c.index.stats().unwrap_or_default();
            (c.name().to_string(), (stats.points, stats.indexed))
        })
        .collect();
    let state = s.ledger.state();
    let now = unix_now();
    Cached {
        points,
        disk_bytes,
        index_backend: s.collections.backend_name(),
        attestation: s.access.gate().status(state.worker.workers.values(), now),
        peer_id: s.net.local_peer_id().map(|p| p.to_string()).unwrap_or_default(),
        cluster: s.network.status(),
        console: ConsoleParts::build(s, &state, now),
    }
}

/// Every collection: its counts now, its index's from the snapshot.
pub(crate) fn collections(s: &Sources, c: &Cached) -> Vec<CollectionInfo> {
    let mut all: Vec<CollectionInfo> =
        s.collections.all().iter().map(|x| info(x, c.points.get(x.name()).copied().unwrap_or_default())).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// The detailed status: the snapshot with the counts read now.
pub(crate) fn with_live_counters(s: &Sources, c: &Cached) -> NodeStatus {
    let collections = collections(s, c);
    let info = s.embedder.info();
    let stats = s.embedder.stats();
    NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: API_VERSION,
        uptime_secs: s.started.elapsed().as_secs(),
        index_backend: c.index_backend.clone(),
        embedder: EmbedderStatus {
            model: info.model.clone(),
            dimension: info.dimension,
            device: info.device.clone(),
            dtype: info.dtype.clone(),
            workers: info.workers,
            max_batch: info.max_batch,
            token_budget: info.token_budget,
            texts: stats.texts,
            batches: stats.batches,
            queue_depth: stats.queue_depth,
            busy_seconds: stats.busy_seconds,
            cancelled_texts: stats.cancelled_texts,
        },
        documents: collections.iter().map(|c| c.documents).sum(),
        chunks: collections.iter().map(|c| c.chunks).sum(),
        collections,
        queries: s.metrics.queries.load(Ordering::Relaxed),
        ingested_documents: s.metrics.ingested_documents.load(Ordering::Relaxed),
        disk_bytes: c.disk_bytes,
        node_id: s.node_id.clone(),
        attestation: c.attestation.clone(),
        worker_usage: s.access.usage().snapshot(),
        refusals: s.metrics.refusals(),
        peer_id: c.peer_id.clone(),
        // Read now, like the counters: a read lock over at most the connection limit's peers.
        listen_addresses: s.net.listening(),
        peers: s.network.peers(),
        cluster: c.cluster.clone().map(|mut cluster| {
            s.network.live_counters(&mut cluster);
            cluster
        }),
    }
}

/// Ledger entries and audit lines a console snapshot carries.
pub(crate) const RECENT: usize = 50;

/// The ledger's head, read now (a copy of the ledger's own snapshot).
pub(crate) fn ledger_summary(s: &Sources) -> LedgerSummary {
    let ls = s.ledger.status();
    LedgerSummary {
        height: ls.height,
        head_hash: ls.head_hash,
        admin: ls.admin,
        chain_id: ls.chain_id,
        orderer: ls.orderer,
        damage: ls.damage.map(|d| d.reason).unwrap_or_default(),
    }
}

/// The console's parts of the snapshot: what walks the ledger's state and workers.
pub(crate) struct ConsoleParts {
    pub subscribers: Vec<SubscriberView>,
    pub api_keys: u64,
    pub workers: Vec<WorkerView>,
    pub recent_txs: Vec<TxView>,
    pub epochs: Vec<EpochView>,
    /// The Market screen's view (it walks every stack: once per rebuild, not per console tick).
    pub market: prag_proto::contracts::market::MarketOverview,
}

impl ConsoleParts {
    pub(crate) fn build(s: &Sources, state: &LedgerState, now: u64) -> Self {
        let height = s.ledger.height();
        let gate = s.access.gate();
        let workers = state
            .worker
            .workers
            .values()
            .map(|w| {
                let verdict = gate.check_worker(w, now);
                WorkerView {
                    ip_address: w.ip_address.clone(),
                    worker_type: w.worker_type.clone(),
                    payment_wallet: w.payment_wallet.clone(),
                    accepted: verdict.is_ok(),
                    attestation: match verdict {
                        Ok(v) => format!("accepted ({} {})", v.kind, v.tcb_status),
                        Err(e) => format!("refused: {}", e.code()),
                    },
                    last_seen: w.last_seen,
                }
            })
            .collect();
        let subscribers = state
            .subscription
            .subscribers
            .iter()
            .map(|(k, v)| SubscriberView {
                public_key: k.clone(),
                active: v.status == prag_proto::contracts::subscription::Status::Active,
            })
            .collect();
        let epochs = state
            .rewards
            .epochs
            .iter()
            .rev()
            .take(RECENT)
            .map(|(n, e)| EpochView {
                epoch: *n,
                funds: e.funds.0.to_string(),
                closed: e.closed,
                shares: e
                    .shares
                    .iter()
                    .map(|(w, sh)| (w.clone(), sh.work.to_string(), sh.amount.0.to_string()))
                    .collect(),
            })
            .collect();
        let from = height.saturating_sub(RECENT as u64);
        let mut recent_txs: Vec<TxView> = s
            .ledger
            .entries(from, RECENT)
            .into_iter()
            .map(|e| TxView {
                height: e.height,
                time: e.env.time,
                sender: prag_proto::account::parse_public_key(&e.tx.body.sender)
                    .map(|k| prag_proto::account::address(&k))
                    .unwrap_or_else(|_| e.tx.body.sender.clone()),
                msg: e.tx.body.msg.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_else(|| "?".into()),
            })
            .collect();
        recent_txs.reverse();
        ConsoleParts {
            subscribers,
            api_keys: state.subscription.api_keys.len() as u64,
            workers,
            recent_txs,
            epochs,
            market: state.market.overview(&state.bank, now),
        }
    }
}
