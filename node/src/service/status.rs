//! What the node reports about itself (`/v1/status`, `/metrics`).

use std::sync::atomic::Ordering;

use prag_proto::api::{API_VERSION, CollectionInfo, EmbedderStatus, NodeStatus, PublicStatus};

use super::Node;

impl Node {
    pub fn collection_infos(&self) -> Vec<CollectionInfo> {
        let mut out: Vec<CollectionInfo> = self
            .collections
            .read()
            .values()
            .map(|c| {
                let (documents, chunks) = {
                    let s = c.state.read();
                    (s.docs.len() as u64, s.points.len() as u64)
                };
                let stats = c.index.stats().unwrap_or_default();
                let owner_address = prag_proto::account::parse_public_key(&c.meta.owner)
                    .map(|k| prag_proto::account::address(&k))
                    .unwrap_or_default();
                CollectionInfo {
                    name: c.meta.name.clone(),
                    owner: c.meta.owner.clone(),
                    owner_address,
                    created_at: c.meta.created_at,
                    documents,
                    chunks,
                    total_points: stats.points,
                    indexed_points: stats.indexed,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The documents of a collection, for its owner.
    pub fn documents(
        &self,
        caller: &k256::ecdsa::VerifyingKey,
        collection: &str,
    ) -> Result<Vec<prag_proto::api::DocumentInfo>, super::NodeError> {
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        // Held here, and (in a network) held by admitted peers: the whole collection, newest
        // versions, deleted ones left out.
        let mut all: std::collections::HashMap<String, (u64, String, u64)> = coll
            .state
            .read()
            .docs
            .iter()
            .map(|(id, d)| (id.clone(), (d.version, d.path.clone(), d.point_ids.len() as u64)))
            .collect();
        if let Some(cluster) = self.cluster.as_ref() {
            for rec in cluster.peers.read().values().filter(|r| matches!(r.admission, Some(Ok(_)))) {
                for (id, (v, path, chunks)) in rec.listing.get(&coll.store.id).into_iter().flatten() {
                    if all.get(id).is_none_or(|(mine, _, _)| mine < v) {
                        all.insert(id.clone(), (*v, path.clone(), *chunks));
                    }
                }
            }
        }
        let mut docs: Vec<_> = all
            .into_iter()
            .filter(|(id, (v, _, _))| coll.tombstone(id).is_none_or(|t| t < *v))
            .map(|(doc_id, (_, path, chunks))| prag_proto::api::DocumentInfo { doc_id, path, chunks })
            .collect();
        docs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(docs)
    }

    /// What anyone may know: that the node is up, its id, and whether it can be talked to.
    pub fn public_status(&self) -> PublicStatus {
        PublicStatus {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: API_VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            node_id: self.node_id.clone(),
            attestation_mode: self.gate.mode().as_str().to_string(),
            attested: self.attestation_card.is_some(),
        }
    }

    /// Everything, for operators.
    pub fn status(&self) -> NodeStatus {
        let info = self.embedder.info();
        let stats = self.embedder.stats();
        let collections = self.collection_infos();
        NodeStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: API_VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            index_backend: self.index.name(),
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
            queries: self.metrics.queries.load(Ordering::Relaxed),
            ingested_documents: self.metrics.ingested_documents.load(Ordering::Relaxed),
            disk_bytes: dir_size(&self.config.data_dir),
            node_id: self.node_id.clone(),
            attestation: {
                let workers: Vec<_> = self.ledger.with_state(|s| s.worker.workers.values().cloned().collect());
                self.gate.status(workers.iter(), crate::auth::unix_now())
            },
            worker_usage: self.usage.snapshot(),
            refusals: self.metrics.refusals(),
            peer_id: self.p2p.as_ref().map(|p| p.peer_id()).unwrap_or_default(),
            listen_addresses: self.p2p.as_ref().map(|p| p.listening()).unwrap_or_default(),
            peers: self.peer_views(),
            cluster: self.cluster_status(),
        }
    }

    pub fn render_metrics(&self) -> String {
        let status = self.status();
        let points: u64 = status.collections.iter().map(|c| c.total_points).sum();
        let indexed: u64 = status.collections.iter().map(|c| c.indexed_points).sum();
        let e = &status.embedder;
        let rate = if e.busy_seconds > 0.0 { e.texts as f64 / e.busy_seconds } else { 0.0 };
        let mut out = self.metrics.render(&[
            ("prag_documents", "Documents stored.", status.documents as f64),
            ("prag_index_points", "Points in the vector index.", points as f64),
            ("prag_index_indexed_points", "Points inside an HNSW graph.", indexed as f64),
            ("prag_embedder_texts", "Texts embedded since start.", e.texts as f64),
            ("prag_embedder_texts_per_busy_second", "Embedder throughput while busy.", rate),
            ("prag_embedder_queue_depth", "Embedding requests waiting.", e.queue_depth as f64),
            (
                "prag_embedder_cancelled_texts",
                "Texts dropped because their request went away.",
                e.cancelled_texts as f64,
            ),
            ("prag_disk_bytes", "Bytes under the data directory.", status.disk_bytes as f64),
        ]);
        if let Some(cluster) = self.cluster.as_ref() {
            cluster.metrics.render(&mut out);
            let unhealthy = status.cluster.as_ref().map_or(0, |c| c.shards.iter().filter(|s| !s.healthy).count());
            out.push_str(&format!(
                "# HELP prag_shards_unhealthy Shards with fewer reachable holders than replicas.\n# TYPE prag_shards_unhealthy gauge\nprag_shards_unhealthy {unhealthy}\n"
            ));
        }
        out
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}
