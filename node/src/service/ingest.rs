//! Ingest: extract → chunk → embed → seal and commit → index. Embedding happens outside the
//! collection's commit lock, so uploads in flight together keep the embedder busy while earlier
//! documents are being written.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{DocumentOutcome, DocumentStatus};

use super::{Collection, Node, NodeError, internal};
use crate::extract::{self, SourceDocument};
use crate::store::{DocumentHeader, NewChunk};

impl Node {
    /// Ingests one uploaded file into `collection` on behalf of `caller` (its owner).
    pub async fn upload(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<DocumentOutcome>, NodeError> {
        let started = Instant::now();
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        validate_path(path)?;
        if bytes.len() > self.config.max_file_bytes {
            return Err(NodeError::TooLarge(format!(
                "{path} is {} bytes; this node accepts files of at most {} bytes",
                bytes.len(),
                self.config.max_file_bytes
            )));
        }
        let size = bytes.len() as u64;
        let p = path.to_string();
        let docs = tokio::task::spawn_blocking(move || extract::extract(&p, &bytes))
            .await
            .map_err(internal)?
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let mut outcomes = Vec::with_capacity(docs.len());
        for doc in docs {
            outcomes.push(self.ingest_document(&coll, doc).await?);
        }
        self.metrics.ingested_bytes.fetch_add(size, Ordering::Relaxed);
        self.metrics.ingest_seconds.observe(started.elapsed().as_secs_f64());
        let _ = self.optimize_tx.send(coll);
        Ok(outcomes)
    }

    async fn ingest_document(&self, coll: &Arc<Collection>, doc: SourceDocument) -> Result<DocumentOutcome, NodeError> {
        let doc_id = coll.store.document_id(&doc.path);
        let fingerprint = coll.store.fingerprint(&doc.text);
        let unchanged = |chunks: usize| DocumentOutcome {
            doc_id: doc_id.clone(),
            path: doc.path.clone(),
            status: DocumentStatus::Unchanged,
            chunks: chunks as u64,
        };
        if let Some(existing) = coll.state.read().docs.get(&doc_id)
            && existing.fingerprint == fingerprint
        {
            self.metrics.unchanged_documents.fetch_add(1, Ordering::Relaxed);
            return Ok(unchanged(existing.point_ids.len()));
        }

        // Chunk by tokens, then embed: the slow part, done before taking the commit lock.
        let max_tokens =
            self.config.chunk_tokens.clamp(8, self.embedder.info().max_seq_length.saturating_sub(2).max(8));
        let spans = self
            .embedder
            .tokenizer()
            .token_spans(&doc.text, max_tokens, self.config.chunk_overlap)
            .map_err(|e| NodeError::BadRequest(format!("{}: {e}", doc.path)))?;
        let texts: Vec<String> = spans.iter().map(|s| doc.text[s.start..s.end].to_string()).collect();
        if texts.is_empty() {
            return Err(NodeError::BadRequest(format!("{}: no text to index", doc.path)));
        }
        let vectors = self.embedder.embed(texts.clone()).await.map_err(internal)?;

        let _commit = coll.commit.lock().await;
        let previous = coll.state.read().docs.get(&doc_id).cloned();
        if previous.as_ref().is_some_and(|p| p.fingerprint == fingerprint) {
            self.metrics.unchanged_documents.fetch_add(1, Ordering::Relaxed);
            return Ok(unchanged(texts.len()));
        }
        let header = DocumentHeader {
            path: doc.path.clone(),
            fingerprint: fingerprint.clone(),
            chunks: texts.len() as u32,
            created_at: crate::auth::unix_now(),
            key_version: crate::store::document::KEY_VERSION,
            version: crate::store::document::new_version(
                previous.as_ref().map(|p| p.version).max(coll.tombstone(&doc_id)),
            ),
        };
        let (store, id) = (coll.store.clone(), doc_id.clone());
        let (texts, vectors) = (Arc::new(texts), Arc::new(vectors));
        let (t2, v2) = (Arc::clone(&texts), Arc::clone(&vectors));
        let h2 = header.clone();
        let (locations, bytes) = tokio::task::spawn_blocking(move || {
            let chunks: Vec<NewChunk<'_>> =
                t2.iter().zip(v2.iter()).map(|(t, v)| NewChunk { text: t, vector: v }).collect();
            let locations = store.write_document(&id, &h2, &chunks)?;
            let path = store.document_path(&id);
            let bytes = std::fs::metadata(&path).map_err(crate::store::io_err("cannot stat", &path))?.len();
            Ok::<_, crate::store::StoreError>((locations, bytes))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;

        // Committed. Now the index and the in-memory maps follow.
        coll.index_document(&doc_id, &header, bytes, locations.into_iter().zip(vectors.iter().cloned()).collect())?;
        self.metrics.ingested_documents.fetch_add(1, Ordering::Relaxed);
        self.metrics.ingested_chunks.fetch_add(texts.len() as u64, Ordering::Relaxed);
        tracing::info!(collection = %coll.meta.name, doc_id, chunks = texts.len(), replaced = previous.is_some(), "document committed");
        Ok(DocumentOutcome {
            doc_id,
            path: doc.path,
            status: if previous.is_some() { DocumentStatus::Replaced } else { DocumentStatus::Created },
            chunks: texts.len() as u64,
        })
    }

    /// Deletes a document by id or by path.
    pub async fn delete_document(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        doc_id: Option<&str>,
        path: Option<&str>,
    ) -> Result<DocumentOutcome, NodeError> {
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        let doc_id = match (doc_id, path) {
            (Some(id), None) => id.to_string(),
            (None, Some(p)) => coll.store.document_id(p),
            _ => return Err(NodeError::BadRequest("give exactly one of doc_id and path".into())),
        };
        let _commit = coll.commit.lock().await;
        let held = coll.state.read().docs.get(&doc_id).cloned();
        let version = match &held {
            Some(entry) => entry.version,
            None => {
                // Not here, but perhaps on peers (in a network a document lives on its shard's
                // owners): a tombstone at the newest version known makes them drop it.
                let newest = self.latest(&coll).docs.get(&doc_id).map(|(v, _, _)| *v);
                match newest {
                    Some(n) if coll.tombstone(&doc_id).is_none_or(|t| t < n) => n,
                    _ => return Err(NodeError::NotFound(format!("no document {doc_id} in collection {collection:?}"))),
                }
            }
        };
        // The tombstone goes first: peers holding a copy drop it when they next sync.
        coll.update_meta(|m| {
            m.tombstones.insert(doc_id.clone(), version);
        })?;
        if let Some(entry) = &held {
            coll.remove_document(&doc_id, entry).await?;
        }
        self.metrics.deleted_documents.fetch_add(1, Ordering::Relaxed);
        Ok(DocumentOutcome {
            doc_id,
            path: held.as_ref().map_or_else(|| path.unwrap_or_default().to_string(), |e| e.path.clone()),
            status: DocumentStatus::Deleted,
            chunks: held.map_or(0, |e| e.point_ids.len() as u64),
        })
    }
}

/// Upload paths name documents: relative, no `..`, no control characters, at most 1024 bytes.
fn validate_path(path: &str) -> Result<(), NodeError> {
    let bad = |why: &str| Err(NodeError::BadRequest(format!("invalid document path {path:?}: {why}")));
    if path.is_empty() || path.len() > 1024 {
        return bad("must be 1 to 1024 bytes");
    }
    if path.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return bad("must be relative and must not contain '..'");
    }
    if !extract::is_supported(path) {
        return Err(NodeError::BadRequest(format!(
            "{path}: unsupported file type; PRAG reads .txt, .md, .html, .htm, .pdf and .jsonl"
        )));
    }
    Ok(())
}

/// Runs `optimize()` on collections after ingest, in the background and one at a time, so
/// searches move from brute force to HNSW without anyone asking. Requests arriving while one runs
/// are merged.
pub(crate) async fn optimizer_loop(mut rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Collection>>) {
    while let Some(first) = rx.recv().await {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut pending = vec![first];
        while let Ok(c) = rx.try_recv() {
            pending.push(c);
        }
        let mut seen = HashSet::new();
        pending.retain(|c| seen.insert(c.store.id.clone()));
        for coll in pending {
            let started = Instant::now();
            let c = Arc::clone(&coll);
            match tokio::task::spawn_blocking(move || c.index.optimize()).await {
                Ok(Ok(changed)) => {
                    if changed {
                        let stats = coll.index.stats().unwrap_or_default();
                        tracing::info!(
                            collection = %coll.meta.name, points = stats.points, indexed = stats.indexed,
                            seconds = started.elapsed().as_secs_f64(), "index optimized"
                        );
                    }
                }
                Ok(Err(e)) => tracing::warn!(collection = %coll.meta.name, error = %e, "index optimization failed"),
                Err(e) => tracing::warn!(error = %e, "index optimization task failed"),
            }
        }
    }
}
