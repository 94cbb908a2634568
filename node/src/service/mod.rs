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
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            attestation: AttestationMode::Hardware,
            policy: None,
            max_liveliness_age_secs: 900,
            operators: Vec::new(),
            pccs_url: None,
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
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// A stable machine-readable code for the error body and refusal metrics.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Unauthorized(prag_proto::auth::AuthError::Missing(_)) => "unsigned",
            NodeError::Unauthorized(prag_proto::auth::AuthError::Malformed(_)) => "malformed_signature",
            NodeError::Unauthorized(prag_proto::auth::AuthError::Stale { .. }) => "stale",
            NodeError::Unauthorized(prag_proto::auth::AuthError::Replayed) => "replayed",
            NodeError::Unauthorized(prag_proto::auth::AuthError::BadSignature) => "bad_signature",
            NodeError::Forbidden(_) => "forbidden",
            NodeError::NotFound(_) => "not_found",
            NodeError::Conflict(_) => "conflict",
            NodeError::BadRequest(_) => "bad_request",
            NodeError::TooLarge(_) => "too_large",
            NodeError::Internal(_) => "internal",
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

/// A collection at run time: its files, its index and what is in them.
pub struct Collection {
    pub(crate) store: CollectionStore,
    pub(crate) meta: CollectionMeta,
    pub(crate) index: Arc<dyn VectorIndex>,
    pub(crate) state: RwLock<CollectionState>,
    /// Serialises commits (file write + index update) within the collection.
    pub(crate) commit: tokio::sync::Mutex<()>,
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
            grants: Default::default(),
        }
    }

    /// Keyed point id of a chunk: stable across restarts and replicas, meaningless outside.
    pub(crate) fn point_id(&self, doc_id: &str, chunk: u32) -> PointId {
        let k = self.store.key().derive(&KeyContext::new(Purpose::Mac, &self.store.id, "point-id", 0, 1));
        let mac = k.mac(format!("{doc_id}/{chunk}").as_bytes());
        u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]])
    }

    /// Puts a committed document's chunks (text location and vector, in chunk order) in the index
    /// and the maps, replacing the version there. Returns the replaced entry. Callers hold the
    /// commit lock.
    pub(crate) fn index_document(
        &self,
        doc_id: &str,
        header: &crate::store::DocumentHeader,
        bytes: u64,
        chunks: Vec<(ChunkLocation, Vec<f32>)>,
    ) -> Result<Option<DocEntry>, NodeError> {
        let point_ids: Vec<PointId> = (0..chunks.len() as u32).map(|i| self.point_id(doc_id, i)).collect();
        let (locations, vectors): (Vec<ChunkLocation>, Vec<Vec<f32>>) = chunks.into_iter().unzip();
        self.index.upsert(point_ids.iter().copied().zip(vectors).collect()).map_err(internal)?;
        let previous = self.state.read().docs.get(doc_id).cloned();
        if let Some(prev) = &previous {
            let keep: std::collections::HashSet<PointId> = point_ids.iter().copied().collect();
            let stale: Vec<PointId> = prev.point_ids.iter().copied().filter(|id| !keep.contains(id)).collect();
            self.index.delete(&stale).map_err(internal)?;
        }
        let mut state = self.state.write();
        if let Some(prev) = &previous {
            for id in &prev.point_ids {
                state.points.remove(id);
            }
        }
        for (i, (id, loc)) in point_ids.iter().zip(locations).enumerate() {
            state.points.insert(*id, ChunkRef { doc_id: doc_id.to_string(), chunk: i as u32, loc });
        }
        let entry = DocEntry {
            path: header.path.clone(),
            fingerprint: header.fingerprint.clone(),
            point_ids,
            version: header.version,
            bytes,
        };
        state.docs.insert(doc_id.to_string(), entry);
        Ok(previous)
    }

    /// Deletes a document held here: its file, its points, its entry. Callers hold the commit
    /// lock.
    pub(crate) async fn remove_document(&self, doc_id: &str, entry: &DocEntry) -> Result<(), NodeError> {
        let (store, id) = (self.store.clone(), doc_id.to_string());
        tokio::task::spawn_blocking(move || store.delete_document(&id)).await.map_err(internal)?.map_err(internal)?;
        self.index.delete(&entry.point_ids).map_err(internal)?;
        let mut state = self.state.write();
        for id in &entry.point_ids {
            state.points.remove(id);
        }
        state.docs.remove(doc_id);
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
