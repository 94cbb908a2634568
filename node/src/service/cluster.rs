//! The node's side of the storage network: admission of peers, answering their requests (card,
//! sync, fetch, search), and the sync loop that keeps catalogs, grants, tombstones and holdings
//! current and then lets replication act on them.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use libp2p::PeerId;
use prag_proto::api::{ClusterStatus, ShardView};
use tokio::sync::mpsc;

use super::{Collection, Node, NodeError, internal};
use crate::cluster::identity::HpkePublicKey;
use crate::cluster::wire::{ClusterRequest, ClusterResponse, CollectionRecord, Framed, Holding, MAX_BODY};
use crate::cluster::{STORAGE_WORKER_TYPE, StorageCard, keywrap, placement};
use crate::crypto::{KeyContext, Purpose};
use crate::p2p::Inbound;
use crate::store::CollectionMeta;

fn refused(code: &str, reason: impl Into<String>) -> Framed<ClusterResponse> {
    Framed::new(ClusterResponse::Refused { code: code.into(), reason: reason.into() })
}

impl Node {
    /// Whether `peer` may hold shards: registered in WorkerManager as `prag-storage` under its
    /// peer id, its attestation good under the current policy and bound to its storage key, and
    /// its card signed by that key. Returns the key that collection keys are wrapped to.
    pub(crate) fn judge_storage_peer(&self, peer: &str, card: &StorageCard) -> Result<HpkePublicKey, String> {
        let worker = self
            .ledger
            .with_state(|s| s.worker.workers.get(peer).cloned())
            .ok_or_else(|| format!("peer {peer} is not registered in WorkerManager"))?;
        if worker.worker_type != STORAGE_WORKER_TYPE {
            return Err(format!(
                "peer {peer} is registered as a {:?} worker, not {STORAGE_WORKER_TYPE}",
                worker.worker_type
            ));
        }
        let key = worker.signing_key.as_deref().ok_or("its registration names no signing key")?;
        self.gate.check_worker(&worker, crate::auth::unix_now()).map_err(|r| format!("attestation: {r}"))?;
        card.verify(peer, key)
    }

    /// The admission verdict for `peer`, asking for its card first if it is not known yet.
    async fn peer_admission(&self, peer: PeerId) -> Result<HpkePublicKey, String> {
        let Some(cluster) = self.cluster.as_ref() else { return Err("this node runs alone".into()) };
        if let Some(Some(verdict)) = cluster.peers.read().get(&peer).map(|p| p.admission.clone()) {
            return verdict;
        }
        let card = self.peer_card(peer).await?;
        let verdict = self.judge_storage_peer(&peer.to_string(), &card);
        cluster.peers.write().entry(peer).or_default().admission = Some(verdict.clone());
        verdict
    }

    async fn peer_card(&self, peer: PeerId) -> Result<StorageCard, String> {
        let Some(cluster) = self.cluster.as_ref() else { return Err("this node runs alone".into()) };
        if let Some(card) = cluster.peers.read().get(&peer).and_then(|p| p.card.clone()) {
            return Ok(card);
        }
        match cluster.p2p.ask(peer, Framed::new(ClusterRequest::Card)).await?.head {
            ClusterResponse::Card(card) => {
                cluster.peers.write().entry(peer).or_default().card = Some(card.clone());
                Ok(card)
            }
            other => Err(format!("peer {peer} answered a card request with {other:?}")),
        }
    }

    /// Answers one request from a peer.
    async fn answer_peer(self: &Arc<Self>, peer: PeerId, request: Framed<ClusterRequest>) -> Framed<ClusterResponse> {
        let Some(cluster) = self.cluster.clone() else { return refused("alone", "this node runs alone") };
        if let ClusterRequest::Card = request.head {
            return Framed::new(ClusterResponse::Card(cluster.identity.card(&cluster.peer_id().to_string())));
        }
        // Everything else carries or reveals collection data: admitted peers only.
        let hpke = match self.peer_admission(peer).await {
            Ok(k) => k,
            Err(reason) => {
                cluster.metrics.peer_requests_refused.fetch_add(1, Ordering::Relaxed);
                cluster.refused.write().insert(peer.to_string(), reason.clone());
                tracing::warn!(peer = %peer, %reason, "storage request refused: the peer is not admitted");
                return refused("not_admitted", reason);
            }
        };
        match request.head {
            ClusterRequest::Card => unreachable_card(),
            ClusterRequest::Sync => Framed::new(ClusterResponse::Sync(self.catalog_for(&peer.to_string(), &hpke))),
            ClusterRequest::Fetch { cid, doc_id, version, offset, max } => {
                self.serve_piece(&cid, &doc_id, version, offset, max).await
            }
            ClusterRequest::Search { cid, shards, k, exact, request_id } => {
                match self.serve_search(&cid, shards, k, exact, &request_id, &request.body).await {
                    Ok(body) => Framed::with_body(ClusterResponse::Hits, body),
                    Err(e) => refused(e.code(), e.to_string()),
                }
            }
        }
    }

    /// Every shareable collection, its key wrapped to `peer`, and the documents held here.
    fn catalog_for(&self, peer: &str, hpke: &HpkePublicKey) -> Vec<CollectionRecord> {
        let collections: Vec<Arc<Collection>> = self.collections.read().values().cloned().collect();
        let mut out = Vec::with_capacity(collections.len());
        for c in collections.into_iter().filter(|c| c.store.shareable()) {
            let wrapped = match keywrap::wrap(c.store.key(), &c.store.id, peer, hpke) {
                Ok(w) => hex::encode(w),
                Err(e) => {
                    tracing::error!(error = %e, "cannot wrap a collection key");
                    continue;
                }
            };
            let holdings = c
                .state
                .read()
                .docs
                .iter()
                .map(|(id, d)| Holding {
                    doc_id: id.clone(),
                    version: d.version,
                    len: d.bytes,
                    path: d.path.clone(),
                    chunks: d.point_ids.len() as u64,
                })
                .collect();
            let live = c.live_meta.lock().clone();
            out.push(CollectionRecord {
                cid: c.store.id.clone(),
                name: live.name,
                owner: live.owner,
                created_at: live.created_at,
                shards: live.shards.max(1),
                replicas: live.replicas.max(1),
                grants: c.grants.lock().clone(),
                grants_version: live.grants_version,
                tombstones: live.tombstones,
                wrapped_key: wrapped,
                holdings,
            });
        }
        out
    }

    /// A piece of a document file, if it is still held at `version`.
    async fn serve_piece(
        &self,
        cid: &str,
        doc_id: &str,
        version: u64,
        offset: u64,
        max: u32,
    ) -> Framed<ClusterResponse> {
        let Some(c) = self.collection_by_id(cid) else { return Framed::new(ClusterResponse::Gone) };
        if c.state.read().docs.get(doc_id).map(|d| d.version) != Some(version) {
            return Framed::new(ClusterResponse::Gone);
        }
        let path = c.store.document_path(doc_id);
        let max = (max as usize).min(MAX_BODY);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Vec<u8>)> {
            use std::os::unix::fs::FileExt;
            let file = std::fs::File::open(&path)?;
            let total = file.metadata()?.len();
            let len = (total.saturating_sub(offset) as usize).min(max);
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok((total, buf))
        })
        .await;
        match read {
            Ok(Ok((total, body))) => Framed::with_body(ClusterResponse::Piece { total }, body),
            _ => Framed::new(ClusterResponse::Gone),
        }
    }

    /// Runs a search for a peer: opens the sealed vector, searches the asked shards, seals hits.
    async fn serve_search(
        &self,
        cid: &str,
        shards: Vec<u32>,
        k: usize,
        exact: bool,
        request_id: &str,
        sealed_vector: &[u8],
    ) -> Result<Vec<u8>, NodeError> {
        let c = self.collection_by_id(cid).ok_or_else(|| NodeError::NotFound(format!("no collection {cid}")))?;
        if k == 0 || k > super::query::MAX_K || request_id.is_empty() || request_id.len() > 64 {
            return Err(NodeError::BadRequest("bad search request".into()));
        }
        let (q_key, a_key) = search_keys(&c, request_id);
        let raw =
            q_key.open(sealed_vector).map_err(|_| NodeError::BadRequest("the sealed query does not open".into()))?;
        if raw.len() % 4 != 0 || raw.len() / 4 != self.embedder.info().dimension {
            return Err(NodeError::BadRequest("the query vector has the wrong dimension".into()));
        }
        let vector: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let only: std::collections::HashSet<u32> = shards.into_iter().collect();
        let c2 = Arc::clone(&c);
        let answer =
            tokio::task::spawn_blocking(move || super::distributed::search_local(&c2, &vector, k, exact, Some(&only)))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        let json = zeroize::Zeroizing::new(serde_json::to_vec(&answer).map_err(internal)?);
        a_key.seal(&json).map_err(internal)
    }

    /// Takes in peers' catalogs: new collections (their keys unwrapped), newer grants, tombstones,
    /// and what each peer holds.
    async fn merge_records(self: &Arc<Self>, peer: PeerId, records: Vec<CollectionRecord>) {
        let Some(cluster) = self.cluster.clone() else { return };
        let mut holdings = HashMap::new();
        let mut listing = HashMap::new();
        for r in records {
            listing.insert(
                r.cid.clone(),
                r.holdings
                    .iter()
                    .map(|h| (h.doc_id.clone(), (h.version, h.path.clone(), h.chunks)))
                    .collect::<HashMap<_, _>>(),
            );
            holdings.insert(
                r.cid.clone(),
                r.holdings.iter().map(|h| (h.doc_id.clone(), (h.version, h.len))).collect::<HashMap<_, _>>(),
            );
            let coll = match self.collection_by_id(&r.cid) {
                Some(c) => c,
                None => match self.adopt_collection(&r).await {
                    Ok(c) => {
                        tracing::info!(collection = %r.name, peer = %peer, "collection joined from a peer (key unwrapped with this node's attested key)");
                        c
                    }
                    Err(e) => {
                        tracing::warn!(collection = %r.name, peer = %peer, error = %e, "cannot take in a peer's collection");
                        continue;
                    }
                },
            };
            if r.grants_version > coll.live_meta.lock().grants_version {
                let (store, g) = (coll.store.clone(), r.grants.clone());
                match tokio::task::spawn_blocking(move || store.write_grants(&g)).await {
                    Ok(Ok(())) => {
                        *coll.grants.lock() = r.grants.clone();
                        let _ = coll.update_meta(|m| m.grants_version = r.grants_version);
                        tracing::info!(collection = %coll.meta.name, "access grants updated from a peer");
                    }
                    _ => tracing::error!(collection = %coll.meta.name, "cannot write grants received from a peer"),
                }
            }
            let newer: Vec<(String, u64)> = r
                .tombstones
                .iter()
                .filter(|(d, v)| coll.tombstone(d).is_none_or(|mine| mine < **v))
                .map(|(d, v)| (d.clone(), *v))
                .collect();
            if !newer.is_empty() {
                let _ = coll.update_meta(|m| m.tombstones.extend(newer.iter().cloned()));
                for (doc, v) in newer {
                    let held = coll.state.read().docs.get(&doc).map(|d| d.version);
                    if held.is_some_and(|h| h <= v) {
                        let _ = self.drop_local_document(&coll, &doc, Some(v)).await;
                    }
                }
            }
        }
        let mut peers = cluster.peers.write();
        let rec = peers.entry(peer).or_default();
        rec.holdings = holdings;
        rec.listing = listing;
        rec.synced_at = Some(Instant::now());
    }

    /// Creates the local side of a collection first made on a peer (same id, same key).
    async fn adopt_collection(self: &Arc<Self>, r: &CollectionRecord) -> Result<Arc<Collection>, String> {
        let cluster = self.cluster.clone().ok_or("alone")?;
        if let Ok(existing) = self.collection(&r.name) {
            return Err(format!("a different collection named {:?} exists here ({})", r.name, existing.store.id));
        }
        super::open::validate_collection_name(&r.name).map_err(|e| e.to_string())?;
        let _reservation = self.reserve_name(&r.name, None).map_err(|e| e.to_string())?;
        let wrapped = hex::decode(&r.wrapped_key).map_err(|_| "the wrapped key is not hex".to_string())?;
        let me = cluster.peer_id().to_string();
        let key = keywrap::unwrap(&wrapped, &r.cid, &me, cluster.identity.hpke_private())?;
        let meta = CollectionMeta {
            name: r.name.clone(),
            owner: r.owner.clone(),
            created_at: r.created_at,
            // Bounded as the flags are: a peer's numbers never size a loop beyond them.
            shards: r.shards.clamp(1, 1024),
            replicas: r.replicas.clamp(1, 16),
            grants_version: r.grants_version,
            tombstones: r.tombstones.clone(),
        };
        self.install_collection(r.cid.clone(), key, meta, r.grants.clone()).await.map_err(|e| e.to_string())
    }

    /// One round: this node's own admission, every connected peer's, their catalogs; then
    /// replication acts on what was learnt.
    async fn sync_round(self: &Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else { return };
        let me = cluster.peer_id().to_string();
        let verdict = self.judge_storage_peer(&me, &cluster.identity.card(&me)).map(|_| ());
        {
            let mut current = cluster.self_admission.write();
            if *current != verdict {
                match &verdict {
                    Ok(()) => tracing::info!("this node is admitted as a storage node"),
                    Err(reason) => {
                        tracing::warn!(%reason, "this node is not admitted as a storage node: it holds no shards of others")
                    }
                }
                *current = verdict.clone();
            }
        }
        let connected: Vec<PeerId> =
            cluster.p2p.peer_states().into_iter().filter(|p| p.connected).map(|p| p.peer_id).collect();
        let rounds = connected.into_iter().map(|peer| {
            let node = Arc::clone(self);
            let admitted_self = verdict.is_ok();
            async move { node.sync_with(peer, admitted_self).await }
        });
        futures::future::join_all(rounds).await;
        if verdict.is_ok() {
            self.replicate().await;
        }
    }

    async fn sync_with(self: &Arc<Self>, peer: PeerId, admitted_self: bool) {
        let Some(cluster) = self.cluster.clone() else { return };
        let card = match self.peer_card(peer).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(peer = %peer, error = %e, "no storage card from peer");
                return;
            }
        };
        let verdict = self.judge_storage_peer(&peer.to_string(), &card);
        let changed = {
            let mut peers = cluster.peers.write();
            let rec = peers.entry(peer).or_default();
            let changed = rec.admission.as_ref().map(|v| v.is_ok()) != Some(verdict.is_ok());
            rec.admission = Some(verdict.clone());
            changed
        };
        match &verdict {
            Ok(_) => {
                cluster.refused.write().remove(&peer.to_string());
                if changed {
                    tracing::info!(peer = %peer, "peer admitted as a storage node");
                }
            }
            Err(reason) => {
                cluster.refused.write().insert(peer.to_string(), reason.clone());
                if changed {
                    tracing::warn!(peer = %peer, %reason, "peer refused as a storage node: it gets no shards and no keys");
                }
                return;
            }
        }
        if !admitted_self {
            return;
        }
        match cluster.p2p.ask(peer, Framed::new(ClusterRequest::Sync)).await.map(|f| f.head) {
            Ok(ClusterResponse::Sync(records)) => self.merge_records(peer, records).await,
            Ok(ClusterResponse::Refused { reason, .. }) => {
                tracing::debug!(peer = %peer, %reason, "peer refused to sync")
            }
            Ok(other) => tracing::debug!(peer = %peer, answer = ?other, "unexpected sync answer"),
            Err(e) => tracing::debug!(peer = %peer, error = %e, "sync failed"),
        }
    }

    /// Connected peers, each marked admitted or not.
    pub(crate) fn peer_views(&self) -> Vec<prag_proto::api::PeerView> {
        let Some(p2p) = self.p2p.as_ref() else { return Vec::new() };
        let mut views = p2p.peers();
        if let Some(cluster) = self.cluster.as_ref() {
            for v in &mut views {
                v.admitted = v.peer_id.parse::<PeerId>().is_ok_and(|p| cluster.is_admitted(&p));
            }
        }
        views
    }

    /// The storage network as this node sees it.
    pub(crate) fn cluster_status(&self) -> Option<ClusterStatus> {
        let cluster = self.cluster.as_ref()?;
        let me = cluster.peer_id().to_string();
        let m = &cluster.metrics;
        let mut shards = Vec::new();
        let collections: Vec<Arc<Collection>> = self.collections.read().values().cloned().collect();
        for c in collections.iter().filter(|c| c.store.shareable()) {
            let view = self.shard_views(c);
            shards.extend(view);
        }
        shards.sort_by(|a: &ShardView, b| a.collection.cmp(&b.collection).then(a.shard.cmp(&b.shard)));
        let admission = cluster.self_admission.read().clone();
        let _ = me;
        Some(ClusterStatus {
            admitted: admission.is_ok(),
            refusal: admission.err(),
            refused_peers: cluster.refused.read().clone(),
            peer_requests_refused: m.peer_requests_refused.load(Ordering::Relaxed),
            shards,
            bytes_replicated: m.bytes_replicated.load(Ordering::Relaxed),
            documents_replicated: m.documents_replicated.load(Ordering::Relaxed),
            transfers_active: m.transfers_active.load(Ordering::Relaxed),
            transfers_resumed: m.transfers_resumed.load(Ordering::Relaxed),
            remote_searches: m.remote_search_seconds.count(),
            remote_search_p50_ms: m.remote_search_seconds.quantile(0.5) * 1e3,
            remote_search_p99_ms: m.remote_search_seconds.quantile(0.99) * 1e3,
        })
    }
}

fn unreachable_card() -> Framed<ClusterResponse> {
    refused("bad_request", "card requests are answered before admission")
}

/// The keys that seal a remote search's question (chunk 0) and answer (chunk 1).
pub(crate) fn search_keys(c: &Collection, request_id: &str) -> (crate::crypto::DataKey, crate::crypto::DataKey) {
    let k = c.store.key();
    (
        k.derive(&KeyContext::new(Purpose::RemoteSearch, &c.store.id, request_id, 0, 1)),
        k.derive(&KeyContext::new(Purpose::RemoteSearch, &c.store.id, request_id, 1, 1)),
    )
}

/// Serves peers' storage requests, each on its own task.
pub(crate) async fn serve_inbound(node: Weak<Node>, mut rx: mpsc::Receiver<Inbound>) {
    while let Some(inbound) = rx.recv().await {
        let Some(node) = node.upgrade() else { return };
        tokio::spawn(async move {
            let answer = node.answer_peer(inbound.peer, inbound.request).await;
            let _ = inbound.reply.send(answer);
        });
    }
}

/// Syncs with peers every `sync_interval` while the node lives.
pub(crate) async fn sync_loop(node: Weak<Node>) {
    let interval = match node.upgrade().and_then(|n| n.cluster.as_ref().map(|c| c.config.sync_interval)) {
        Some(i) => i,
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        node.sync_round().await;
    }
}

/// Placement inputs for a collection: the candidates (admitted nodes present, or absent for less
/// than the re-replication delay) and the owners of each shard.
pub(crate) fn owners_of(node: &Node, c: &Collection) -> Vec<Vec<String>> {
    let Some(cluster) = node.cluster.as_ref() else { return Vec::new() };
    let me = cluster.peer_id().to_string();
    let mut candidates: Vec<String> = Vec::new();
    if cluster.self_admission.read().is_ok() {
        candidates.push(me);
    }
    let states: HashMap<PeerId, crate::p2p::PeerState> =
        cluster.p2p.peer_states().into_iter().map(|s| (s.peer_id, s)).collect();
    for (peer, rec) in cluster.peers.read().iter() {
        if !matches!(rec.admission, Some(Ok(_))) {
            continue;
        }
        let present = states.get(peer).is_some_and(|s| {
            s.connected || s.gone_since.is_some_and(|g| g.elapsed() < cluster.config.rereplicate_after)
        });
        if present {
            candidates.push(peer.to_string());
        }
    }
    let live = c.live_meta.lock();
    (0..live.shard_count())
        .map(|s| {
            placement::owners(&c.store.id, s, live.replicas.max(1) as usize, candidates.iter().map(String::as_str))
        })
        .collect()
}
