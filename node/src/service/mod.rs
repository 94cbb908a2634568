//! The node: the composition root that owns the store, the index, the embedder and the metrics,
//! and the operations the API exposes. One `impl` block per concern lives in its own file:
//! `open` (start-up and recovery), `ingest`, `query`, `status`.

mod access;
mod cluster;
mod console;
mod distributed;
mod ingest;
mod open;
mod query;
mod replication;
mod status;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use k256::ecdsa::VerifyingKey;
use parking_lot::RwLock;
use prag_embedder::Embedder;

use crate::access::attestation::AttestationGate;
pub use crate::access::attestation::AttestationMode;
use crate::access::audit::AuditLog;
use crate::access::meter::UsageMeter;
use crate::auth::NonceCache;
use crate::cluster::Cluster;
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::index::{IndexBackend, PointId, VectorIndex};
use crate::metrics::Metrics;
use crate::store::{ChunkLocation, CollectionMeta, CollectionStore};

pub use open::IndexChoice;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub index: IndexChoice,
    /// Longest chunk in tokens (capped at the model's window less its two special tokens).
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    pub chunk_overlap: usize,
    /// Largest accepted file, in bytes.
    pub max_file_bytes: usize,
    /// Chain id of the contracts' ledger created by this node (with `admin_key`).
    pub chain_id: String,
    pub access: AccessConfig,
    /// The peer network; None runs the node alone.
    pub p2p: Option<crate::p2p::P2pConfig>,
    /// Shards, replicas and transfers (with `p2p`).
    pub cluster: crate::cluster::ClusterConfig,
    /// What one caller, and everyone together, may hold of the node.
    pub limits: LimitsConfig,
    /// The `prag` binary to run `prag internal-janitor` with, which removes the embedded index's
    /// plain files if this process dies without doing so (SIGKILL, abort). None: no janitor.
    pub janitor_exe: Option<PathBuf>,
}

/// Bounds on what callers may hold of the node.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Collections one key may own on this node.
    pub max_collections_per_key: usize,
    /// Collections on this node in all (keys cost nothing to make).
    pub max_collections: usize,
    /// Bytes of request bodies one key may have in flight.
    pub inflight_bytes_per_key: u64,
    /// Bytes of request bodies all callers together may have in flight.
    pub inflight_bytes: u64,
    /// Bytes of bodies of unsigned routes (ledger) in flight, all together.
    pub public_inflight_bytes: u64,
    /// Recent request nonces remembered (replay protection); when full, requests wait.
    pub nonce_capacity: usize,
    /// Document extraction's sandbox; None: this binary, 1 GiB, 30 s, one child per two cores.
    pub extract: Option<crate::extract::SandboxConfig>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_collections_per_key: 16,
            max_collections: 4096,
            inflight_bytes_per_key: 256 << 20,
            inflight_bytes: 1 << 30,
            public_inflight_bytes: 64 << 20,
            nonce_capacity: crate::auth::DEFAULT_CAPACITY,
            extract: None,
        }
    }
}

/// Who may retrieve, and who may watch.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `hardware` (default) or `dev` (development attestation reports accepted; loud).
    pub attestation: AttestationMode,
    /// The attestation policy file (TOML); reloaded when it changes. None: the built-in default.
    pub policy: Option<PathBuf>,
    /// How recent a worker's last liveliness answer must be.
    pub max_liveliness_age_secs: u64,
    /// Hex public keys allowed to read the node's operator endpoints (audit log) besides the
    /// contracts' admin.
    pub operators: Vec<String>,
    /// PCCS (or Intel PCS) URL for TDX collateral that reports do not carry.
    pub pccs_url: Option<String>,
    /// This node's own attestation report (binding its storage key), served to clients of the
    /// owner's channel. None: from the TEE (configfs-tsm), or a development report in `dev` mode.
    pub self_report: Option<PathBuf>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            attestation: AttestationMode::Hardware,
            policy: None,
            max_liveliness_age_secs: 900,
            operators: Vec::new(),
            pccs_url: None,
            self_report: None,
        }
    }
}

/// Every way an operation can fail, each with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Unauthorized(#[from] prag_proto::auth::AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    /// A per-key limit (collections, bytes in flight).
    #[error("{0}")]
    Quota(String),
    /// A node-wide limit: try again later.
    #[error("{0}")]
    Busy(String),
    /// The client was too slow.
    #[error("{0}")]
    Timeout(String),
    /// A request on the owner's channel that does not open.
    #[error("{0}")]
    BadChannel(String),
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// A stable machine-readable code for the error body and refusal metrics.
    pub fn code(&self) -> &'static str {
        use prag_proto::auth::AuthError as A;
        match self {
            NodeError::Unauthorized(A::Missing(_)) => "unsigned",
            NodeError::Unauthorized(A::Malformed(_)) => "malformed_signature",
            NodeError::Unauthorized(A::Stale { .. } | A::BeforeStart) => "stale",
            NodeError::Unauthorized(A::Replayed) => "replayed",
            NodeError::Unauthorized(A::BadSignature) => "bad_signature",
            NodeError::Unauthorized(A::BodyMismatch) => "body_mismatch",
            NodeError::Unauthorized(A::WrongAudience) => "wrong_audience",
            NodeError::Unauthorized(A::Busy) => "busy",
            NodeError::Forbidden(_) => "forbidden",
            NodeError::NotFound(_) => "not_found",
            NodeError::Conflict(_) => "conflict",
            NodeError::BadRequest(_) => "bad_request",
            NodeError::TooLarge(_) => "too_large",
            NodeError::Quota(_) => "quota",
            NodeError::Busy(_) => "busy",
            NodeError::Timeout(_) => "timeout",
            NodeError::BadChannel(_) => "bad_channel",
            NodeError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        use prag_proto::auth::AuthError as A;
        match self {
            NodeError::Unauthorized(A::Busy) => 503,
            NodeError::Unauthorized(_) => 401,
            NodeError::Forbidden(_) => 403,
            NodeError::NotFound(_) => 404,
            NodeError::Conflict(_) => 409,
            NodeError::BadRequest(_) | NodeError::BadChannel(_) => 400,
            NodeError::TooLarge(_) => 413,
            NodeError::Quota(_) => 429,
            NodeError::Busy(_) => 503,
            NodeError::Timeout(_) => 408,
            NodeError::Internal(_) => 500,
        }
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

/// Where a chunk lives: its document and its sealed text's place in the document file.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRef {
    pub doc_id: String,
    pub chunk: u32,
    pub loc: ChunkLocation,
}

#[derive(Debug, Clone)]
pub(crate) struct DocEntry {
    pub path: String,
    pub fingerprint: String,
    pub point_ids: Vec<PointId>,
    /// The document's version (see [`crate::store::DocumentHeader::version`]).
    pub version: u64,
    /// The document file's length (what peers are told they can fetch).
    pub bytes: u64,
}

#[derive(Default)]
pub(crate) struct CollectionState {
    pub docs: HashMap<String, DocEntry>,
    pub points: HashMap<PointId, ChunkRef>,
}

/// A document whose file is ready to be put in place ([`Collection::commit`]): what the maps and
/// the index need of it, in chunk order.
pub(crate) struct ReadyDocument {
    pub doc_id: String,
    pub header: crate::store::DocumentHeader,
    /// The file's length.
    pub bytes: u64,
    pub locations: Vec<ChunkLocation>,
    pub vectors: Vec<Vec<f32>>,
}

/// A collection at run time: its files, its index and what is in them.
pub struct Collection {
    pub(crate) store: CollectionStore,
    pub(crate) meta: CollectionMeta,
    pub(crate) index: Arc<dyn VectorIndex>,
    pub(crate) state: RwLock<CollectionState>,
    /// Serialises commits (file write + index update) within the collection.
    pub(crate) commit: tokio::sync::Mutex<()>,
    /// Held for reading while a chunk's location is looked up and its text read; held for writing
    /// while a document file is put in place or removed together with the maps that point into
    /// it. So a reader never reads one version's offsets in another version's file (which would
    /// look like tampering), nor a file that is gone.
    pub(crate) files: RwLock<()>,
    /// Subscribers (hex public keys) whose workers may query; written through to the store.
    pub(crate) grants: parking_lot::Mutex<std::collections::BTreeSet<String>>,
    /// The metadata that changes after creation (grants version, tombstones), with `meta`'s
    /// fixed fields: written through to `meta.sealed`.
    pub(crate) live_meta: parking_lot::Mutex<CollectionMeta>,
}

impl Collection {
    pub(crate) fn new(store: CollectionStore, meta: CollectionMeta, index: Arc<dyn VectorIndex>) -> Self {
        Collection {
            store,
            live_meta: parking_lot::Mutex::new(meta.clone()),
            meta,
            index,
            state: RwLock::new(CollectionState::default()),
            commit: tokio::sync::Mutex::new(()),
            files: RwLock::new(()),
            grants: Default::default(),
        }
    }

    /// Keyed point id of a chunk: stable across restarts and replicas, meaningless outside.
    pub(crate) fn point_id(&self, doc_id: &str, chunk: u32) -> PointId {
        let k = self.store.key().derive(&KeyContext::new(Purpose::Mac, &self.store.id, "point-id", 0, 1));
        let mac = k.mac(format!("{doc_id}/{chunk}").as_bytes());
        u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]])
    }

    /// Puts documents in place, the one way uploads and replicas both take: `place` moves their
    /// files, under `files` for writing together with the maps that point into them, so a reader
    /// sees all of them or none; then their vectors go into the index (a search meanwhile meets
    /// the previous version's vectors, whose chunks still exist, or none), and points a replaced
    /// version no longer has leave it. Returns, per document, whether it replaced one. Callers
    /// hold the commit lock.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        docs: Vec<ReadyDocument>,
        place: impl FnOnce(&CollectionStore) -> Result<(), crate::store::StoreError> + Send + 'static,
    ) -> Result<Vec<bool>, NodeError> {
        // Point ids are keyed hashes: computed once, outside the lock.
        let ids: Vec<Vec<PointId>> =
            docs.iter().map(|d| (0..d.locations.len() as u32).map(|i| self.point_id(&d.doc_id, i)).collect()).collect();
        let coll = Arc::clone(self);
        let (docs, ids, previous) = tokio::task::spawn_blocking(move || {
            let _files = coll.files.write();
            place(&coll.store)?;
            let mut state = coll.state.write();
            let mut previous = Vec::with_capacity(docs.len());
            let mut docs = docs;
            for (d, point_ids) in docs.iter_mut().zip(&ids) {
                let old = state.docs.get(&d.doc_id).cloned();
                for id in old.iter().flat_map(|o| &o.point_ids) {
                    state.points.remove(id);
                }
                for (i, (id, loc)) in point_ids.iter().zip(std::mem::take(&mut d.locations)).enumerate() {
                    state.points.insert(*id, ChunkRef { doc_id: d.doc_id.clone(), chunk: i as u32, loc });
                }
                let entry = DocEntry {
                    path: d.header.path.clone(),
                    fingerprint: d.header.fingerprint.clone(),
                    point_ids: point_ids.clone(),
                    version: d.header.version,
                    bytes: d.bytes,
                };
                state.docs.insert(d.doc_id.clone(), entry);
                previous.push(old);
            }
            Ok::<_, crate::store::StoreError>((docs, ids, previous))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        let mut replaced = Vec::with_capacity(docs.len());
        for ((d, point_ids), old) in docs.into_iter().zip(ids).zip(previous) {
            self.index.upsert(point_ids.iter().copied().zip(d.vectors).collect()).map_err(internal)?;
            if let Some(old) = &old {
                let keep: std::collections::HashSet<PointId> = point_ids.iter().copied().collect();
                let stale: Vec<PointId> = old.point_ids.iter().copied().filter(|id| !keep.contains(id)).collect();
                self.index.delete(&stale).map_err(internal)?;
            }
            replaced.push(old.is_some());
        }
        Ok(replaced)
    }

    /// Deletes a document held here: its file and its entry (together, under `files`), then its
    /// points. Callers hold the commit lock.
    pub(crate) async fn remove_document(self: &Arc<Self>, doc_id: &str, entry: &DocEntry) -> Result<(), NodeError> {
        let (coll, id, points) = (Arc::clone(self), doc_id.to_string(), entry.point_ids.clone());
        tokio::task::spawn_blocking(move || {
            let _files = coll.files.write();
            coll.store.delete_document(&id)?;
            let mut state = coll.state.write();
            for p in &points {
                state.points.remove(p);
            }
            state.docs.remove(&id);
            Ok::<_, crate::store::StoreError>(())
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        self.index.delete(&entry.point_ids).map_err(internal)?;
        Ok(())
    }

    /// Changes the live metadata and writes it to the store.
    pub(crate) fn update_meta(&self, change: impl FnOnce(&mut CollectionMeta)) -> Result<(), NodeError> {
        let mut live = self.live_meta.lock();
        change(&mut live);
        self.store.write_meta(&live).map_err(internal)
    }

    /// The newest version of `doc_id` deleted, if any.
    pub(crate) fn tombstone(&self, doc_id: &str) -> Option<u64> {
        self.live_meta.lock().tombstones.get(doc_id).copied()
    }

    pub(crate) fn check_owner(&self, caller: &VerifyingKey) -> Result<(), NodeError> {
        if prag_proto::account::public_key_hex(caller) == self.meta.owner {
            Ok(())
        } else {
            Err(NodeError::Forbidden(format!(
                "only the owner of collection {:?} may do this; the request was signed by another key",
                self.meta.name
            )))
        }
    }
}

/// A running node.
pub struct Node {
    pub(crate) config: NodeConfig,
    pub(crate) master: Arc<MasterKey>,
    pub(crate) embedder: Embedder,
    pub(crate) index: Arc<dyn IndexBackend>,
    pub(crate) collections: RwLock<HashMap<String, Arc<Collection>>>,
    pub metrics: Metrics,
    pub nonces: NonceCache,
    pub(crate) started: Instant,
    pub(crate) optimize_tx: tokio::sync::mpsc::UnboundedSender<Arc<Collection>>,
    pub ledger: Arc<crate::ledger::Ledger>,
    pub(crate) gate: AttestationGate,
    pub(crate) audit: AuditLog,
    pub(crate) usage: UsageMeter,
    /// This node's id (a keyed hash from the master key): the audience of workers' requests.
    pub(crate) node_id: String,
    pub(crate) p2p: Option<crate::p2p::P2pHandle>,
    /// The storage network (with `p2p`).
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// Runs HTML and PDF parsers in child processes with limits.
    pub(crate) sandbox: crate::extract::Sandbox,
    /// Which collection directory owns each name, on disk.
    pub(crate) claims: crate::store::NameClaims,
    /// Names being created right now, with their would-be owner (None: adopted from a peer).
    pub(crate) creating: parking_lot::Mutex<HashMap<String, Option<String>>>,
    /// The owner's channel: this node's HPKE key and the card that vouches for it.
    pub(crate) channel_keys: crate::channel::ChannelKeys,
    pub(crate) attestation_card: Option<prag_proto::api::NodeAttestation>,
    /// Bytes of authenticated request bodies in flight, per key and in all.
    pub(crate) inflight: Arc<crate::limits::InflightBudget>,
    /// Bytes of unsigned request bodies in flight.
    pub(crate) public_inflight: Arc<crate::limits::InflightBudget>,
    /// Keeps the janitor process alive (its stdin is this end of a pipe).
    pub(crate) _janitor: Option<tokio::process::Child>,
}

impl Node {
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn p2p(&self) -> Option<&crate::p2p::P2pHandle> {
        self.p2p.as_ref()
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn channel_keys(&self) -> &crate::channel::ChannelKeys {
        &self.channel_keys
    }

    /// What `GET /v1/attestation` serves; None when the node has no report for its channel key.
    pub fn attestation(&self) -> Option<&prag_proto::api::NodeAttestation> {
        self.attestation_card.as_ref()
    }

    pub fn inflight(&self) -> &Arc<crate::limits::InflightBudget> {
        &self.inflight
    }

    pub fn public_inflight(&self) -> &Arc<crate::limits::InflightBudget> {
        &self.public_inflight
    }

    /// A collection by its id.
    pub(crate) fn collection_by_id(&self, cid: &str) -> Option<Arc<Collection>> {
        self.collections.read().values().find(|c| c.store.id == cid).cloned()
    }

    pub(crate) fn collection(&self, name: &str) -> Result<Arc<Collection>, NodeError> {
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| NodeError::NotFound(format!("no collection named {name:?} on this node")))
    }
}
