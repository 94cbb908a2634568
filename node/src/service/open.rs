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
use crate::channel::ChannelKeys;
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::index::IndexBackend;
use crate::index::edge::EdgeBackend;
use crate::index::remote::RemoteBackend;
use crate::limits::InflightBudget;
use crate::metrics::Metrics;
use crate::store::collection::list_dirs;
use crate::store::{Claim, CollectionMeta, CollectionStore, DocumentHeader};

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
        // Requests signed before this moment are refused: the memory of nonces starts empty.
        let started_unix = crate::auth::unix_now();
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
        let mut janitor = None;
        let index: Arc<dyn IndexBackend> = match &config.index {
            IndexChoice::Embedded { dir } => {
                let dir = match dir {
                    Some(d) => d.clone(),
                    None => default_index_dir(&data)?,
                };
                let backend = EdgeBackend::new(&dir).map_err(internal)?;
                if let Some(exe) = &config.janitor_exe {
                    janitor = start_janitor(exe, &dir);
                }
                Arc::new(backend)
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
                 worker's hardware, and presents one itself. Never use it with real data."
            );
        }
        let audit = AuditLog::open(&master, &data);
        let node_id =
            hex::encode(&master.derive(&KeyContext::new(Purpose::Mac, "", "node-id", 0, 1)).mac(b"node-id")[..16]);
        // The storage key vouches for this node twice: its channel card here, its peer card in
        // the network.
        let storage = crate::cluster::StorageIdentity::derive(&master).map_err(internal)?;
        let channel_keys = ChannelKeys::derive(&master);
        let attestation_card = own_report(&config, &storage)
            .await?
            .map(|report| crate::channel::sign_card(storage.signing_key(), &node_id, &channel_keys, report));
        let (p2p, cluster, inbound) = match &config.p2p {
            Some(p) => {
                let key = crate::p2p::load_or_create_identity(&data).map_err(internal)?;
                let (handle, inbound) =
                    crate::p2p::spawn(p.clone(), key, Arc::clone(&ledger)).map_err(NodeError::BadRequest)?;
                let cluster = Arc::new(crate::cluster::Cluster::new(config.cluster.clone(), storage, handle.clone()));
                (Some(handle), Some(cluster), Some(inbound))
            }
            None => (None, None, None),
        };
        if attestation_card.is_none() {
            tracing::error!(
                "NO ATTESTATION REPORT for this node's channel key: it is not a TDX or SEV-SNP guest and got no \
                 --self-report, so data owners' clients will refuse to send it anything. Run it in a confidential \
                 VM, pass --self-report FILE (from `prag attest self --storage-data DIR`), or use --attestation dev \
                 for development."
            );
        }
        let claims = crate::store::NameClaims::open(&master, &data.join("collections")).map_err(internal)?;
        claims.clean();
        let limits = config.limits.clone();
        let sandbox = crate::extract::Sandbox::new(
            limits
                .extract
                .clone()
                .unwrap_or_else(|| crate::extract::SandboxConfig::for_current_exe(config.max_file_bytes)),
        );
        let (optimize_tx, optimize_rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(Node {
            config,
            master: Arc::new(master),
            embedder,
            index,
            collections: RwLock::new(HashMap::new()),
            metrics: Metrics::default(),
            nonces: crate::auth::NonceCache::new(limits.nonce_capacity, started_unix),
            started: Instant::now(),
            optimize_tx,
            ledger,
            gate,
            audit,
            usage: Default::default(),
            node_id,
            p2p,
            cluster,
            sandbox,
            claims,
            creating: Default::default(),
            channel_keys,
            attestation_card,
            inflight: InflightBudget::new(limits.inflight_bytes_per_key, limits.inflight_bytes),
            public_inflight: InflightBudget::new(limits.public_inflight_bytes, limits.public_inflight_bytes),
            _janitor: janitor,
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

    /// Opens every collection directory; the name claims decide which directory owns a name
    /// (see `store::names`), so a directory that lost a creation race never takes a name over.
    async fn load_collections(self: &Arc<Self>) -> Result<(), NodeError> {
        let root = self.config.data_dir.join("collections");
        let dirs = list_dirs(&root).map_err(internal)?;
        let started = Instant::now();
        let node = Arc::clone(self);
        let winners =
            tokio::task::spawn_blocking(move || node.choose_collection_dirs(dirs)).await.map_err(internal)??;
        let mut total_docs = 0usize;
        let mut total_chunks = 0usize;
        for (store, meta) in winners {
            let node = Arc::clone(self);
            let loaded =
                tokio::task::spawn_blocking(move || node.load_collection(store, meta)).await.map_err(internal)??;
            let (collection, docs, chunks) = loaded;
            total_docs += docs;
            total_chunks += chunks;
            let _ = self.optimize_tx.send(Arc::clone(&collection));
            self.collections.write().insert(collection.meta.name.clone(), collection);
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

    /// Opens each directory's metadata and keeps, per name, the directory the name's claim names.
    /// Names without a claim (data written before claims existed) go to the directory holding the
    /// most documents, then the oldest, then the lowest id — and are claimed for it. A losing
    /// directory is left out (and removed when it holds no document).
    fn choose_collection_dirs(
        &self,
        dirs: Vec<std::path::PathBuf>,
    ) -> Result<Vec<(CollectionStore, CollectionMeta)>, NodeError> {
        let mut by_name: std::collections::BTreeMap<String, Vec<(CollectionStore, CollectionMeta)>> =
            Default::default();
        for dir in dirs {
            match CollectionStore::open(&self.master, &dir) {
                Ok((store, meta)) => by_name.entry(meta.name.clone()).or_default().push((store, meta)),
                Err(e) => tracing::error!(dir = %dir.display(), error = %e, "cannot open collection; skipping it"),
            }
        }
        let mut winners = Vec::new();
        for (name, mut candidates) in by_name {
            let claimed = match self.claims.owner(&name) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "a collection name claim is damaged; that collection is not loaded");
                    continue;
                }
            };
            let winner_id = match claimed {
                Some(id) => id,
                None => {
                    let docs = |s: &CollectionStore| s.document_ids().map(|d| d.len()).unwrap_or(0);
                    candidates.sort_by(|(a, am), (b, bm)| {
                        docs(b).cmp(&docs(a)).then(am.created_at.cmp(&bm.created_at)).then(a.id.cmp(&b.id))
                    });
                    let Some((first, _)) = candidates.first() else { continue };
                    let id = first.id.clone();
                    match self.claims.claim(&name, &id).map_err(internal)? {
                        Claim::Won => {
                            if candidates.len() > 1 {
                                tracing::warn!(
                                    directories = candidates.len(),
                                    "several directories claimed one collection name (written before name claims existed); \
                                     kept the one with the most documents"
                                );
                            }
                            id
                        }
                        Claim::Taken(other) => other,
                    }
                }
            };
            for (store, meta) in candidates {
                if store.id == winner_id {
                    winners.push((store, meta));
                } else if store.document_ids().map(|d| d.is_empty()).unwrap_or(false) {
                    tracing::warn!(dir = %store.dir().display(), "removing an empty collection directory that lost its name");
                    let _ = std::fs::remove_dir_all(store.dir());
                } else {
                    tracing::error!(
                        dir = %store.dir().display(),
                        "a collection directory holds documents under a name another directory owns; it is not loaded"
                    );
                }
            }
        }
        Ok(winners)
    }

    /// Loads one collection's documents into the index; a damaged document is reported and
    /// skipped, never fatal.
    fn load_collection(
        &self,
        store: CollectionStore,
        meta: CollectionMeta,
    ) -> Result<(Arc<Collection>, usize, usize), NodeError> {
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
        Ok((collection, docs, chunks))
    }

    /// Holds `name` for a creation under way: refused if the name exists or is being created, or
    /// (with `owner`) if that key already owns as many collections as it may.
    pub(crate) fn reserve_name(&self, name: &str, owner: Option<&str>) -> Result<NameReservation<'_>, NodeError> {
        let all = self.collections.read();
        let mut creating = self.creating.lock();
        if all.contains_key(name) || creating.contains_key(name) {
            return Err(NodeError::Conflict(format!("collection {name:?} already exists")));
        }
        let total = self.config.limits.max_collections;
        if owner.is_some() && all.len() + creating.len() >= total {
            return Err(NodeError::Busy(format!("this node holds {total} collections, as many as it may")));
        }
        if let Some(owner) = owner {
            let max = self.config.limits.max_collections_per_key;
            let owned = all.values().filter(|c| c.meta.owner == owner).count()
                + creating.values().filter(|o| o.as_deref() == Some(owner)).count();
            if owned >= max {
                return Err(NodeError::Quota(format!(
                    "this key already owns {owned} collections on this node; at most {max} are allowed"
                )));
            }
        }
        creating.insert(name.to_string(), owner.map(str::to_string));
        Ok(NameReservation { node: self, name: name.to_string() })
    }

    /// Creates the directory of a collection with id `cid` and key `key` (new, or first made on a
    /// peer), claims its name on disk, opens its index and makes it visible. The caller holds a
    /// [`NameReservation`] for `meta.name`.
    pub(crate) async fn install_collection(
        self: &Arc<Self>,
        cid: String,
        key: MasterKey,
        meta: CollectionMeta,
        grants: std::collections::BTreeSet<String>,
    ) -> Result<Arc<Collection>, NodeError> {
        let root = self.config.data_dir.join("collections");
        let node = Arc::clone(self);
        let m2 = meta.clone();
        let g2 = grants.clone();
        let store = tokio::task::spawn_blocking(move || {
            let store = CollectionStore::create_with(&node.master, &root, &cid, key, &m2).map_err(internal)?;
            let claimed = store
                .write_grants(&g2)
                .map_err(internal)
                .and_then(|_| node.claims.claim(&m2.name, &cid).map_err(internal));
            match claimed {
                Ok(Claim::Won) => Ok(store),
                Ok(Claim::Taken(_)) => {
                    let _ = std::fs::remove_dir_all(store.dir());
                    Err(NodeError::Conflict(format!("collection {:?} already exists", m2.name)))
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(store.dir());
                    Err(e)
                }
            }
        })
        .await
        .map_err(internal)??;
        let index = {
            let (node, s) = (Arc::clone(self), store.clone());
            match tokio::task::spawn_blocking(move || node.open_index(&s)).await.map_err(internal)? {
                Ok(i) => i,
                Err(e) => {
                    let _ = self.claims.release(&meta.name, &store.id);
                    let _ = std::fs::remove_dir_all(store.dir());
                    return Err(e);
                }
            }
        };
        let collection = Arc::new(Collection::new(store, meta, index));
        *collection.grants.lock() = grants;
        self.collections.write().insert(collection.meta.name.clone(), Arc::clone(&collection));
        Ok(collection)
    }

    /// Creates a collection owned by `owner` (hex public key).
    pub async fn create_collection(
        self: &Arc<Self>,
        name: &str,
        owner: &k256::ecdsa::VerifyingKey,
    ) -> Result<(), NodeError> {
        validate_collection_name(name)?;
        let owner_hex = prag_proto::account::public_key_hex(owner);
        let _reservation = self.reserve_name(name, Some(&owner_hex))?;
        let meta = CollectionMeta {
            name: name.to_string(),
            owner: owner_hex,
            created_at: crate::auth::unix_now(),
            shards: if self.cluster.is_some() { self.config.cluster.shards.max(1) } else { 1 },
            replicas: self.config.cluster.replicas.max(1),
            grants_version: 0,
            tombstones: Default::default(),
        };
        let cid = CollectionStore::new_id().map_err(internal)?;
        let key = MasterKey::generate().map_err(internal)?;
        self.install_collection(cid, key, meta, Default::default()).await?;
        tracing::info!(collection = name, "collection created");
        Ok(())
    }
}

/// A name held while its collection is being created; released on drop.
pub(crate) struct NameReservation<'a> {
    node: &'a Node,
    name: String,
}

impl Drop for NameReservation<'_> {
    fn drop(&mut self) {
        self.node.creating.lock().remove(&self.name);
    }
}

/// The report this node presents for its channel key: `--self-report`, or a development report
/// in `dev` mode, or one from the TEE (configfs-tsm). None when there is none to be had.
async fn own_report(
    config: &NodeConfig,
    identity: &crate::cluster::StorageIdentity,
) -> Result<Option<String>, NodeError> {
    use crate::attest::{AttestationReport, binding_for, check_binding};
    let key = k256::ecdsa::VerifyingKey::from(identity.signing_key());
    let dev = config.access.attestation == AttestationMode::Dev;
    if let Some(path) = &config.access.self_report {
        let text = std::fs::read_to_string(path)
            .map_err(|e| NodeError::BadRequest(format!("--self-report {}: {e}", path.display())))?;
        let report = AttestationReport::parse(&text)
            .map_err(|e| NodeError::BadRequest(format!("--self-report {}: {e}", path.display())))?;
        if matches!(report, AttestationReport::Dev { .. }) && !dev {
            return Err(NodeError::BadRequest(format!(
                "--self-report {} is a development report; only a node in --attestation dev may present one",
                path.display()
            )));
        }
        match report.verify(crate::auth::unix_now()) {
            Ok(v) => check_binding(&v, &key).map_err(|_| {
                NodeError::BadRequest(format!(
                    "--self-report {} does not bind this node's storage key {} (made for another data directory?)",
                    path.display(),
                    identity.signing_key_hex()
                ))
            })?,
            Err(e) => {
                tracing::warn!(error = %e, "this node's own report does not verify here; clients will check it themselves")
            }
        }
        return Ok(Some(text));
    }
    if dev {
        return Ok(Some(AttestationReport::development(&identity.signing_key_hex())));
    }
    let binding = binding_for(&key);
    let root = std::path::Path::new(crate::attest::tsm::TSM_ROOT);
    let mut report = match tokio::task::spawn_blocking(move || crate::attest::tsm::self_report(root, &binding))
        .await
        .map_err(internal)?
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot produce this machine's attestation report");
            return Ok(None);
        }
    };
    if let Some(url) = config.access.pccs_url.as_deref()
        && let Err(e) = report.add_collateral(url).await
    {
        tracing::warn!(error = %e, "cannot fetch TDX collateral for this node's own report");
    }
    serde_json::to_string(&report).map(Some).map_err(internal)
}

/// Starts `prag internal-janitor`, which removes `dir` when this process's end of its stdin pipe
/// closes — that is, when this process exits in any way, SIGKILL and abort included.
fn start_janitor(exe: &std::path::Path, dir: &std::path::Path) -> Option<tokio::process::Child> {
    use std::process::Stdio;
    let child = tokio::process::Command::new(exe)
        .arg("internal-janitor")
        .arg("--dir")
        .arg(dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the node must not end it first.
        .process_group(0)
        .spawn();
    match child {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the index janitor; after a crash the index files stay until the next start");
            None
        }
    }
}

impl Node {
    /// Opens collection `cid`'s index, handing the backend the collection's index key.
    pub(crate) fn open_index(&self, store: &CollectionStore) -> Result<Arc<dyn crate::index::VectorIndex>, NodeError> {
        let key = store.key().derive(&KeyContext::new(Purpose::Rotation, &store.id, "", 0, 1));
        self.index.open(&store.id, self.embedder.info().dimension, key.expose()).map_err(internal)
    }
}

/// Collection names: 1–64 characters of letters, digits, `-`, `_`, `.`, not starting with `.`
/// (no `.`, `..` or hidden names).
pub fn validate_collection_name(name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(NodeError::BadRequest(format!(
            "invalid collection name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

/// The embedded index's directory: memory-backed (`/dev/shm`), named after the data directory and
/// this process, so a restarted node wipes what a killed one left (and the killed one's janitor
/// never touches the new one's).
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
    let prefix = format!("prag-index-{tag}");
    if let Ok(entries) = std::fs::read_dir(shm) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == prefix || name.starts_with(&format!("{prefix}-")) {
                tracing::info!(dir = %e.path().display(), "removing the index files a previous run left");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(shm.join(format!("{prefix}-{}", std::process::id())))
}
