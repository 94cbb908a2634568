//! Replication: every node pulls the documents of the shards it owns from peers that hold them
//! (resumably, throttled, verified before use), and hands off — deletes — documents of shards it
//! does not own once every owner holds them. Placement is recomputed each round, so a node gone
//! longer than the re-replication delay has its shards copied to the survivors, and one that comes
//! back gets its place (and its surplus copies elsewhere are dropped).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use libp2p::PeerId;
use prag_proto::api::ShardView;

use super::cluster::owners_of;
use super::{Collection, Node, NodeError, ReadyDocument};
use crate::cluster::TransferJob;
use crate::cluster::placement::shard_of;
use crate::cluster::search::{Source, covers};
use crate::cluster::wire::{ClusterRequest, ClusterResponse, Framed};

/// The newest version of each document among this node and its admitted peers.
pub(crate) struct Latest {
    /// doc id → (version, file length, reachable peers holding that version): over this node
    /// and every admitted peer, reachable or not.
    pub docs: HashMap<String, (u64, u64, Vec<PeerId>)>,
    /// peer → doc id → version, for the reachable admitted peers.
    pub peers: HashMap<PeerId, HashMap<String, u64>>,
    /// doc id → version held here.
    pub mine: HashMap<String, u64>,
}

/// One shard as seen from here: how many documents it has, and who can answer for all of them.
pub(crate) struct ShardHolders {
    pub documents: usize,
    /// This node first (when it holds the shard whole), then the peers in the order asked for.
    pub holders: Vec<Source>,
}

impl Latest {
    /// Per shard (of `shards`): who holds every one of its documents at its newest version.
    /// `peers` gives the order of the reachable peers considered.
    pub(crate) fn holders(&self, shards: u32, peers: &[PeerId]) -> Vec<ShardHolders> {
        let mut by_shard: Vec<HashMap<&str, u64>> = vec![HashMap::new(); shards.max(1) as usize];
        for (doc, (v, _, _)) in &self.docs {
            by_shard[shard_of(doc, shards) as usize].insert(doc.as_str(), *v);
        }
        by_shard
            .into_iter()
            .map(|in_shard| {
                let mut holders = Vec::new();
                if covers(&in_shard, |d| self.mine.get(d).copied()) {
                    holders.push(Source::Local);
                }
                for p in peers {
                    if let Some(held) = self.peers.get(p)
                        && covers(&in_shard, |d| held.get(d).copied())
                    {
                        holders.push(Source::Peer(*p));
                    }
                }
                ShardHolders { documents: in_shard.len(), holders }
            })
            .collect()
    }
}

impl Node {
    pub(crate) fn latest(&self, c: &Collection) -> Latest {
        let mut docs: HashMap<String, (u64, u64, Vec<PeerId>)> = HashMap::new();
        let mut peers: HashMap<PeerId, HashMap<String, u64>> = HashMap::new();
        let mine: HashMap<String, u64> = c.state.read().docs.iter().map(|(id, d)| (id.clone(), d.version)).collect();
        let tombstones = c.live_meta.lock().tombstones.clone();
        let dead = |doc: &str, v: u64| tombstones.get(doc).is_some_and(|t| *t >= v);
        for (doc, v) in &mine {
            if !dead(doc, *v) {
                docs.insert(doc.clone(), (*v, 0, Vec::new()));
            }
        }
        if let Some(cluster) = self.cluster.as_ref() {
            let connected: HashSet<PeerId> =
                cluster.p2p.peer_states().into_iter().filter(|p| p.connected).map(|p| p.peer_id).collect();
            // Peers out of reach still count for what exists (their last known holdings), so a
            // document only they hold makes its shard incomplete rather than silently absent; only
            // reachable peers are sources.
            for (peer, rec) in cluster.peers.read().iter() {
                if !matches!(rec.admission, Some(Ok(_))) {
                    continue;
                }
                let Some(held) = rec.holdings.get(&c.store.id) else { continue };
                let reachable = connected.contains(peer);
                if reachable {
                    peers.insert(*peer, held.iter().map(|(d, (v, _))| (d.clone(), *v)).collect());
                }
                for (doc, (v, len)) in held {
                    if dead(doc, *v) {
                        continue;
                    }
                    let e = docs.entry(doc.clone()).or_insert((0, 0, Vec::new()));
                    if *v > e.0 {
                        *e = (*v, *len, Vec::new());
                    }
                    if *v == e.0 {
                        e.1 = e.1.max(*len);
                        if reachable {
                            e.2.push(*peer);
                        }
                    }
                }
            }
        }
        Latest { docs, peers, mine }
    }

    /// One replication round over every shareable collection.
    pub(crate) async fn replicate(self: &Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else { return };
        let me = cluster.peer_id().to_string();
        let collections: Vec<Arc<Collection>> =
            self.collections.read().values().filter(|c| c.store.shareable()).cloned().collect();
        let mut jobs = Vec::new();
        for c in collections {
            let owners = owners_of(self, &c);
            let shards = owners.len() as u32;
            let latest = self.latest(&c);
            // Pull what this node owns and lacks.
            for (doc, (v, len, sources)) in &latest.docs {
                let shard = shard_of(doc, shards) as usize;
                let owned = owners.get(shard).is_some_and(|o| o.contains(&me));
                if owned && latest.mine.get(doc).is_none_or(|m| m < v) && !sources.is_empty() {
                    jobs.push(TransferJob {
                        cid: c.store.id.clone(),
                        doc_id: doc.clone(),
                        version: *v,
                        len: *len,
                        sources: sources.clone(),
                    });
                }
            }
            // Hand off what this node holds but does not own, once every owner holds it.
            for (doc, v) in &latest.mine {
                let shard = shard_of(doc, shards) as usize;
                let Some(o) = owners.get(shard) else { continue };
                if o.is_empty() || o.contains(&me) {
                    continue;
                }
                let everywhere = o.iter().all(|owner| {
                    latest
                        .peers
                        .iter()
                        .any(|(p, held)| p.to_string() == *owner && held.get(doc).is_some_and(|h| h >= v))
                });
                if everywhere && !cluster.transfers.lock().contains(&(c.store.id.clone(), doc.clone())) {
                    match self.drop_local_document(&c, doc, None).await {
                        Ok(()) => {
                            cluster.metrics.documents_handed_off.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(collection = %c.meta.name, doc_id = %doc, shard, "document handed off to its owners");
                        }
                        Err(e) => tracing::warn!(doc_id = %doc, error = %e, "cannot drop a handed-off document"),
                    }
                }
            }
        }
        // The queue is this round's view; lanes (up to `max_transfers`) drain it, so a finished
        // transfer is followed by the next at once rather than at the next round.
        *cluster.queue.lock() = jobs.into();
        while !cluster.queue.lock().is_empty() {
            let lanes = cluster.lanes.load(Ordering::Relaxed);
            if lanes >= cluster.config.max_transfers.max(1) {
                break;
            }
            if cluster.lanes.compare_exchange(lanes, lanes + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                tokio::spawn(Arc::clone(self).transfer_lane());
            }
        }
    }

    /// Takes documents off the queue and fetches them, one at a time, until the queue is empty.
    async fn transfer_lane(self: Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else { return };
        loop {
            let job = {
                let mut q = cluster.queue.lock();
                let mut transfers = cluster.transfers.lock();
                let mut found = None;
                while let Some(j) = q.pop_front() {
                    if transfers.insert((j.cid.clone(), j.doc_id.clone())) {
                        found = Some(j);
                        break;
                    }
                }
                if found.is_none() {
                    cluster.lanes.fetch_sub(1, Ordering::AcqRel);
                }
                found
            };
            let Some(job) = job else { return };
            // The queue may be a round old: skip what has arrived meanwhile.
            if let Some(c) = self.collection_by_id(&job.cid)
                && c.state.read().docs.get(&job.doc_id).is_none_or(|d| d.version < job.version)
                && let Err(e) = self.fetch_document(&c, &job.doc_id, job.version, job.len, &job.sources).await
            {
                tracing::warn!(collection = %c.meta.name, doc_id = %job.doc_id, error = %e, "shard transfer interrupted; it resumes next round");
            }
            cluster.transfers.lock().remove(&(job.cid, job.doc_id));
        }
    }

    /// Pulls one document file piece by piece, resuming a part left by an interrupted transfer,
    /// trying each source in turn; installs it only once complete and verified.
    async fn fetch_document(
        self: &Arc<Self>,
        c: &Arc<Collection>,
        doc: &str,
        version: u64,
        len: u64,
        sources: &[PeerId],
    ) -> Result<(), String> {
        let cluster = self.cluster.clone().ok_or("alone")?;
        let m = &cluster.metrics;
        m.transfers_active.fetch_add(1, Ordering::Relaxed);
        struct Active<'a>(&'a std::sync::atomic::AtomicU64);
        impl Drop for Active<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _active = Active(&m.transfers_active);
        let part = c.store.part_path(doc, version);
        let mut offset = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if offset > len {
            let _ = std::fs::remove_file(&part);
            offset = 0;
        }
        if offset > 0 {
            m.transfers_resumed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(collection = %c.meta.name, doc_id = %doc, offset, len, "resuming a shard transfer");
        }
        let mut last_error = String::from("no source");
        'sources: for source in sources {
            while offset < len {
                let want = (cluster.config.piece_bytes as u64).min(len - offset) as u32;
                cluster.throttle(want as usize).await;
                let request = ClusterRequest::Fetch {
                    cid: c.store.id.clone(),
                    doc_id: doc.to_string(),
                    version,
                    offset,
                    max: want,
                };
                match cluster.p2p.ask(*source, Framed::new(request)).await {
                    Ok(Framed { head: ClusterResponse::Piece { total }, body }) => {
                        if total != len || body.is_empty() {
                            let _ = std::fs::remove_file(&part);
                            return Err(format!("peer {source} has a different file for this version"));
                        }
                        let (p, n) = (part.clone(), body.len() as u64);
                        tokio::task::spawn_blocking(move || {
                            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p)?;
                            f.write_all(&body)
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
                        offset += n;
                        m.bytes_replicated.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(Framed { head: ClusterResponse::Gone, .. }) => {
                        last_error = format!("peer {source} no longer holds that version");
                        continue 'sources;
                    }
                    Ok(Framed { head, .. }) => {
                        last_error = format!("peer {source} answered {head:?}");
                        continue 'sources;
                    }
                    Err(e) => {
                        last_error = e;
                        continue 'sources;
                    }
                }
            }
            break;
        }
        if offset < len {
            return Err(last_error);
        }
        if self.install_replica(c, doc, version, &part).await? {
            m.documents_replicated.fetch_add(1, Ordering::Relaxed);
            tracing::info!(collection = %c.meta.name, doc_id = %doc, bytes = len, "document replicated");
        }
        Ok(())
    }

    /// Verifies a received file, moves it into place and indexes it (under the commit lock, so a
    /// local upload of the same document cannot interleave).
    /// Returns false when a version as new was installed meanwhile (the file is dropped).
    async fn install_replica(
        &self,
        c: &Arc<Collection>,
        doc: &str,
        version: u64,
        part: &std::path::Path,
    ) -> Result<bool, String> {
        let _commit = c.commit.lock().await;
        if c.state.read().docs.get(doc).is_some_and(|d| d.version >= version) {
            let _ = std::fs::remove_file(part);
            return Ok(false);
        }
        let (store, d, p) = (c.store.clone(), doc.to_string(), part.to_path_buf());
        let loaded = tokio::task::spawn_blocking(move || store.verify_replica(&d, &p, version))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("received file refused: {e}"))?;
        let chunks = loaded.chunks.into_iter().collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        let (locations, vectors): (Vec<_>, Vec<_>) = chunks.into_iter().unzip();
        let ready =
            ReadyDocument { doc_id: doc.to_string(), header: loaded.header, bytes: loaded.bytes, locations, vectors };
        let (d, p) = (doc.to_string(), part.to_path_buf());
        c.commit(vec![ready], move |store| store.place_replica(&d, &p))
            .await
            .map_err(|e| format!("cannot put the received file in place: {e}"))?;
        Ok(true)
    }

    /// Removes a document held here (handed off, or deleted elsewhere: `upto` = the tombstone;
    /// a newer version than it is kept).
    pub(crate) async fn drop_local_document(
        &self,
        c: &Arc<Collection>,
        doc: &str,
        upto: Option<u64>,
    ) -> Result<(), NodeError> {
        let _commit = c.commit.lock().await;
        let Some(entry) = c.state.read().docs.get(doc).cloned() else { return Ok(()) };
        if upto.is_some_and(|u| entry.version > u) {
            return Ok(());
        }
        c.remove_document(doc, &entry).await
    }

    /// Per shard: owners, reachable holders, documents here, health.
    pub(crate) fn shard_views(&self, c: &Collection) -> Vec<ShardView> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        let me = cluster.peer_id().to_string();
        let owners = owners_of(self, c);
        let shards = owners.len() as u32;
        let latest = self.latest(c);
        let admitted = 1 + latest.peers.len();
        let replicas = c.live_meta.lock().replicas.max(1) as usize;
        let peers: Vec<PeerId> = latest.peers.keys().copied().collect();
        let mut here = vec![0u64; shards as usize];
        for doc in latest.mine.keys() {
            here[shard_of(doc, shards) as usize] += 1;
        }
        latest
            .holders(shards, &peers)
            .into_iter()
            .zip(owners)
            .enumerate()
            .map(|(s, (h, owners))| {
                let holders: Vec<String> = h
                    .holders
                    .iter()
                    .map(|src| match src {
                        Source::Local => me.clone(),
                        Source::Peer(p) => p.to_string(),
                    })
                    .collect();
                ShardView {
                    collection: c.meta.name.clone(),
                    shard: s as u32,
                    owners,
                    documents: h.documents as u64,
                    documents_here: here[s],
                    healthy: holders.len() >= replicas.min(admitted),
                    holders,
                }
            })
            .collect()
    }
}
