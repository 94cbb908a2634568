//! Start-up: the data directory, the master key, the collections, and rebuilding the index from
//! the encrypted store (nothing is re-embedded).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use prag_embedder::Embedder;

use super::{ChunkRef, Collection, CollectionState, DocEntry, Node, NodeConfig, NodeError, internal};
use crate::access::attestation::{AttestationGate, AttestationMode};
use crate::access::audit::AuditLog;
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::index::IndexBackend;
use crate::index::edge::EdgeBackend;
use crate::index::remote::RemoteBackend;
use crate::metrics::Metrics;
use crate::store::collection::list_dirs;
use crate::store::{CollectionMeta, CollectionStore, DocumentHeader};

/// Which vector engine holds the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexChoice {
    /// qdrant-edge in process, its live files under `dir` (default: a directory in /dev/shm).
    Embedded { dir: Option<PathBuf> },
    /// A Qdrant server at `url` (its gRPC port); vectors are rotated by a per-collection secret.
    Remote { url: String },
}

impl std::str::FromStr for IndexChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(IndexChoice::Embedded { dir: None }),
            other if other.starts_with("qdrant=") => {
                let url = &other["qdrant=".len()..];
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "--index qdrant=URL needs the server's gRPC address, e.g. qdrant=http://127.0.0.1:6334; got {url:?}"
                    ));
                }
                Ok(IndexChoice::Remote { url: url.to_string() })
            }
            other => Err(format!("unknown index {other:?}: expected `embedded` or `qdrant=URL`")),
        }
    }
}

impl Node {
    /// Opens (or creates) the node in `config.data_dir` and rebuilds its index.
    /// `admin_key`: on a node without a ledger yet, makes that key the contracts' admin (genesis).
    pub async fn open(
        config: NodeConfig,
        embedder: Embedder,
        admin_key: Option<&k256::ecdsa::SigningKey>,
    ) -> Result<Arc<Node>, NodeError> {
        Self::open_with(config, embedder, admin_key, None).await
    }

    /// [`Node::open`] with the remote index's API key (`--qdrant-api-key`), if it needs one.
    pub async fn open_with(
        config: NodeConfig,
        embedder: Embedder,
        admin_key: Option<&k256::ecdsa::SigningKey>,
        qdrant_api_key: Option<&str>,
    ) -> Result<Arc<Node>, NodeError> {
        let data = config.data_dir.clone();
        std::fs::create_dir_all(data.join("collections"))
            .map_err(|e| internal(format!("cannot create data directory {}: {e}", data.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700));
        }
        let (master, created) = MasterKey::load_or_create(&data.join("master.key")).map_err(internal)?;
        if created {
            tracing::info!(data = %data.display(), "created a new node: master key written (0600)");
        }
        let index: Arc<dyn IndexBackend> = match &config.index {
            IndexChoice::Embedded { dir } => {
                let dir = match dir {
                    Some(d) => d.clone(),
                    None => default_index_dir(&data)?,
                };
                Arc::new(EdgeBackend::new(&dir).map_err(internal)?)
            }
            IndexChoice::Remote { url } => {
                Arc::new(RemoteBackend::connect(url, qdrant_api_key).await.map_err(internal)?)
            }
        };
        let ledger = Arc::new(crate::ledger::Ledger::open(&data, admin_key, &config.chain_id).map_err(internal)?);
        let gate = AttestationGate::new(
            config.access.attestation,
            config.access.policy.clone(),
            config.access.max_liveliness_age_secs,
            config.access.pccs_url.clone(),
        )
        .map_err(NodeError::BadRequest)?;
        if gate.mode() == AttestationMode::Dev {
            tracing::warn!(
                "ATTESTATION DEVELOPMENT MODE: this node accepts development reports, which prove nothing about the \
                 worker's hardware. Never use it with real data."
            );
        }
        let audit = AuditLog::open(&master, &data);
        let (p2p, cluster, inbound) = match &config.p2p {
            Some(p) => {
                let key = crate::p2p::load_or_create_identity(&data).map_err(internal)?;
                let (handle, inbound) =
                    crate::p2p::spawn(p.clone(), key, Arc::clone(&ledger)).map_err(NodeError::BadRequest)?;
                let identity = crate::cluster::StorageIdentity::derive(&master).map_err(internal)?;
                let cluster = Arc::new(crate::cluster::Cluster::new(config.cluster.clone(), identity, handle.clone()));
                (Some(handle), Some(cluster), Some(inbound))
            }
            None => (None, None, None),
        };
        let node_id =
            hex::encode(&master.derive(&KeyContext::new(Purpose::Mac, "", "node-id", 0, 1)).mac(b"node-id")[..16]);
        let (optimize_tx, optimize_rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(Node {
            config,
            master: Arc::new(master),
            embedder,
            index,
            collections: RwLock::new(HashMap::new()),
            metrics: Metrics::default(),
            nonces: Default::default(),
            started: Instant::now(),
            optimize_tx,
            ledger,
            gate,
            audit,
            usage: Default::default(),
            node_id,
            p2p,
            cluster,
        });
        node.load_collections().await?;
        node.log_worker_verdicts("at start");
        tokio::spawn(super::ingest::optimizer_loop(optimize_rx));
        tokio::spawn(super::access::policy_watch(Arc::downgrade(&node)));
        if let Some(inbound) = inbound {
            tokio::spawn(super::cluster::serve_inbound(Arc::downgrade(&node), inbound));
            tokio::spawn(super::cluster::sync_loop(Arc::downgrade(&node)));
        }
        Ok(node)
    }

    async fn load_collections(self: &Arc<Self>) -> Result<(), NodeError> {
        let root = self.config.data_dir.join("collections");
        let dirs = list_dirs(&root).map_err(internal)?;
        let started = Instant::now();
        let mut total_docs = 0usize;
        let mut total_chunks = 0usize;
        for dir in dirs {
            let node = Arc::clone(self);
            let loaded = tokio::task::spawn_blocking(move || node.load_collection(&dir)).await.map_err(internal)??;
            if let Some((collection, docs, chunks)) = loaded {
                total_docs += docs;
                total_chunks += chunks;
                let _ = self.optimize_tx.send(Arc::clone(&collection));
                self.collections.write().insert(collection.meta.name.clone(), collection);
            }
        }
        tracing::info!(
            collections = self.collections.read().len(),
            documents = total_docs,
            chunks = total_chunks,
            seconds = started.elapsed().as_secs_f64(),
            "store opened and index rebuilt from it"
        );
        Ok(())
    }

    /// Loads one collection; a damaged collection is reported and skipped, never fatal.
    fn load_collection(&self, dir: &std::path::Path) -> Result<Option<(Arc<Collection>, usize, usize)>, NodeError> {
        let (store, meta) = match CollectionStore::open(&self.master, dir) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot open collection; skipping it");
                return Ok(None);
            }
        };
        let index = self.open_index(&store)?;
        let grants = match store.read_grants() {
            Ok(g) => g,
            Err(e) => {
                // Fail closed: no grants, so no worker access, until the owner grants again.
                tracing::error!(collection = %meta.name, error = %e, "cannot read access grants; none apply");
                Default::default()
            }
        };
        let collection = Arc::new(Collection::new(store, meta, index));
        *collection.grants.lock() = grants;
        let mut state = CollectionState::default();
        let mut batch = Vec::new();
        let mut chunks = 0usize;
        for doc_id in collection.store.document_ids().map_err(internal)? {
            let doc = match collection.store.load_document(&doc_id) {
                Ok(d) => d,
                Err(e) => {
                    self.metrics.integrity_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::error!(collection = %collection.meta.name, doc_id, error = %e, "cannot read document; skipping it");
                    continue;
                }
            };
            let mut point_ids = Vec::with_capacity(doc.chunks.len());
            for (i, chunk) in doc.chunks.into_iter().enumerate() {
                let i = i as u32;
                match chunk {
                    Ok((loc, vector)) => {
                        let id = collection.point_id(&doc_id, i);
                        point_ids.push(id);
                        state.points.insert(id, ChunkRef { doc_id: doc_id.clone(), chunk: i, loc });
                        batch.push((id, vector));
                        chunks += 1;
                    }
                    Err(e) => {
                        self.metrics.integrity_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::error!(collection = %collection.meta.name, doc_id, chunk = i, error = %e, "chunk unreadable; left out of the index");
                    }
                }
            }
            if batch.len() >= 4096 {
                collection.index.upsert(std::mem::take(&mut batch)).map_err(internal)?;
            }
            let bytes = doc.bytes;
            let DocumentHeader { path, fingerprint, version, .. } = doc.header;
            state.docs.insert(doc_id, DocEntry { path, fingerprint, point_ids, version, bytes });
        }
        collection.index.upsert(batch).map_err(internal)?;
        let live: std::collections::HashSet<u64> = state.points.keys().copied().collect();
        let pruned = collection.index.prune(&live).map_err(internal)?;
        if pruned > 0 {
            tracing::info!(collection = %collection.meta.name, points = pruned, "removed stale points from the index");
        }
        let docs = state.docs.len();
        *collection.state.write() = state;
        Ok(Some((collection, docs, chunks)))
    }

    /// Creates a collection owned by `owner` (hex public key).
    pub async fn create_collection(
        self: &Arc<Self>,
        name: &str,
        owner: &k256::ecdsa::VerifyingKey,
    ) -> Result<(), NodeError> {
        validate_collection_name(name)?;
        if self.collections.read().contains_key(name) {
            return Err(NodeError::Conflict(format!("collection {name:?} already exists")));
        }
        let meta = CollectionMeta {
            name: name.to_string(),
            owner: prag_proto::account::public_key_hex(owner),
            created_at: crate::auth::unix_now(),
            shards: if self.cluster.is_some() { self.config.cluster.shards.max(1) } else { 1 },
            replicas: self.config.cluster.replicas.max(1),
            grants_version: 0,
            tombstones: Default::default(),
        };
        let root = self.config.data_dir.join("collections");
        let master = Arc::clone(&self.master);
        let m2 = meta.clone();
        let store = tokio::task::spawn_blocking(move || CollectionStore::create(&master, &root, &m2))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let index = {
            let (node, s) = (Arc::clone(self), store.clone());
            tokio::task::spawn_blocking(move || node.open_index(&s)).await.map_err(internal)??
        };
        let collection = Arc::new(Collection::new(store, meta, index));
        let mut all = self.collections.write();
        if all.contains_key(name) {
            return Err(NodeError::Conflict(format!("collection {name:?} already exists")));
        }
        all.insert(name.to_string(), collection);
        tracing::info!(collection = name, "collection created");
        Ok(())
    }
}

impl Node {
    /// Opens collection `cid`'s index, handing the backend the collection's index key.
    pub(crate) fn open_index(&self, store: &CollectionStore) -> Result<Arc<dyn crate::index::VectorIndex>, NodeError> {
        let key = store.key().derive(&KeyContext::new(Purpose::Rotation, &store.id, "", 0, 1));
        self.index.open(&store.id, self.embedder.info().dimension, key.expose()).map_err(internal)
    }
}

/// Collection names: 1–64 characters of letters, digits, `-`, `_`, `.`.
pub fn validate_collection_name(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::BadRequest(format!(
            "invalid collection name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The embedded index's directory: memory-backed (`/dev/shm`), named after the data directory so
/// a restarted node wipes what a killed one left.
fn default_index_dir(data: &std::path::Path) -> Result<PathBuf, NodeError> {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        return Err(NodeError::Internal(
            "no /dev/shm on this machine: the embedded index keeps vectors in plain files, so it needs memory-backed \
             storage; pass --index-dir DIR on a tmpfs"
                .into(),
        ));
    }
    let canonical = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    let tag = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_encoded_bytes())[..8]);
    Ok(shm.join(format!("prag-index-{tag}")))
}
