//! Ingest: extract → chunk → embed → seal and commit → index; and deleting documents.
//!
//! - Extraction of HTML and PDF runs in the sandbox (`crate::extract::sandbox`): a hostile file
//!   costs bounded time and memory and is refused with the limit it hit.
//! - Embedding happens outside the collection's commit lock, on the caller's turn in the
//!   embedder's fair queue (the caller's key is its tenant); dropping the upload (the client went
//!   away) drops the texts not yet embedded and kills a running extraction.
//! - The documents of one upload (a JSON-lines file holds many) are committed together: all of
//!   them or none, across a crash (`CollectionStore::commit_staged`).
//! - File writes and index updates run on blocking threads; the optimizer builds HNSW in the
//!   background, one collection at a time.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k256::ecdsa::VerifyingKey;
use prag_embedder::Embedder;
use prag_proto::api::{DocumentInfo, DocumentOutcome, DocumentStatus};
use tokio_util::sync::CancellationToken;

use crate::cluster::StorageNet;
use crate::collections::{Collection, Collections, ReadyDocument};
use crate::config::IngestConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::extract::{self, ExtractError, Kind, Sandbox, SourceDocument};
use crate::lexical::SparseVector;
use crate::metrics::Metrics;
use crate::store::{DocumentHeader, NewChunk, StagedDocument};

/// A changed document, chunked and embedded, waiting for the commit lock.
struct Prepared {
    doc_id: String,
    path: String,
    fingerprint: String,
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
    sparse: Vec<SparseVector>,
}

/// The ingest component.
pub struct Ingest {
    config: IngestConfig,
    embedder: Embedder,
    collections: Arc<Collections>,
    network: Arc<dyn StorageNet>,
    sandbox: Sandbox,
    metrics: Arc<Metrics>,
    optimize: tokio::sync::mpsc::UnboundedSender<Arc<Collection>>,
}

impl Ingest {
    /// The component, and its optimizer loop to run.
    pub(crate) fn new(
        config: IngestConfig,
        embedder: Embedder,
        collections: Arc<Collections>,
        network: Arc<dyn StorageNet>,
        sandbox: Sandbox,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (optimize, rx) = tokio::sync::mpsc::unbounded_channel();
        let debounce = config.optimize_debounce;
        let ingest = Ingest { config, embedder, collections, network, sandbox, metrics, optimize };
        (ingest, optimizer_loop(rx, debounce, cancel))
    }

    /// Asks the optimizer to look at `c` (after it changed, or after loading).
    pub(crate) fn optimize(&self, c: &Arc<Collection>) {
        let _ = self.optimize.send(Arc::clone(c));
    }

    /// What can be decided about an upload before its body is read: the collection exists, the
    /// caller owns it, the path is valid, and the declared size is allowed.
    pub fn check_upload(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        path: &str,
        declared_len: Option<u64>,
    ) -> Result<()> {
        self.collections.get(collection)?.check_owner(caller)?;
        extract::check_upload_path(path)?;
        match declared_len {
            Some(n) if n > self.config.max_file_bytes as u64 => Err(Error::too_large(format!(
                "{path} is {n} bytes; this node accepts files of at most {} bytes",
                self.config.max_file_bytes
            ))),
            _ => Ok(()),
        }
    }

    /// Ingests one uploaded file into `collection` on behalf of `caller` (its owner).
    pub async fn upload(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        path: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<DocumentOutcome>> {
        let started = Instant::now();
        self.check_upload(caller, collection, path, Some(bytes.len() as u64))?;
        let coll = self.collections.get(collection)?;
        let tenant = prag_proto::account::public_key_hex(caller);
        let size = bytes.len() as u64;
        let docs = self.extract_documents(&tenant, path, bytes).await?;
        let outcomes = self.ingest_documents(&coll, &tenant, docs).await?;
        self.metrics.ingested_bytes.fetch_add(size, Ordering::Relaxed);
        self.metrics.ingest_seconds.observe(started.elapsed().as_secs_f64());
        self.optimize(&coll);
        Ok(outcomes)
    }

    /// The documents in one file: hostile formats through the sandbox, the rest in process.
    async fn extract_documents(&self, tenant: &str, path: &str, bytes: Vec<u8>) -> Result<Vec<SourceDocument>> {
        let kind = Kind::of(path).ok_or_else(|| ExtractError::Unsupported { path: path.to_string() })?;
        if bytes.is_empty() {
            return Err(ExtractError::Empty { path: path.to_string() }.into());
        }
        if kind.is_hostile() {
            let outcome = self.sandbox.extract(tenant, path, kind, Arc::new(bytes)).await;
            match &outcome {
                Ok((_, stats)) => {
                    tracing::debug!(kind = kind.as_str(), seconds = stats.seconds, "file extracted in the sandbox")
                }
                Err(e @ (ExtractError::Limit { .. } | ExtractError::TooMuchText { .. })) => {
                    tracing::warn!(kind = kind.as_str(), reason = %limit_reason(e), "upload refused by the extractor's limits");
                }
                Err(_) => {}
            }
            let (text, _) = outcome?;
            return Ok(extract::keep_texts(path, vec![SourceDocument { path: path.to_string(), text }])?);
        }
        let p = path.to_string();
        Ok(tokio::task::spawn_blocking(move || extract::extract(&p, &bytes)).await??)
    }

    /// Chunks and embeds every changed document, then commits them all at once.
    async fn ingest_documents(
        &self,
        coll: &Arc<Collection>,
        tenant: &str,
        docs: Vec<SourceDocument>,
    ) -> Result<Vec<DocumentOutcome>> {
        let total_text: usize = docs.iter().map(|d| d.text.len()).sum();
        if total_text > self.config.max_file_bytes {
            return Err(Error::too_large(format!(
                "the file's text is {total_text} bytes; this node takes at most {} bytes of text per upload",
                self.config.max_file_bytes
            )));
        }
        let mut outcomes: Vec<Option<DocumentOutcome>> = Vec::with_capacity(docs.len());
        let mut prepared: Vec<(usize, Prepared)> = Vec::new();
        for SourceDocument { path, text } in docs {
            let doc_id = coll.store.document_id(&path);
            let fingerprint = coll.store.fingerprint(&text);
            if let Some(existing) = coll.entry(&doc_id).filter(|e| e.fingerprint == fingerprint) {
                self.metrics.unchanged_documents.fetch_add(1, Ordering::Relaxed);
                let chunks = existing.point_ids.len() as u64;
                outcomes.push(Some(DocumentOutcome { doc_id, path, status: DocumentStatus::Unchanged, chunks }));
                continue;
            }
            let (texts, sparse) = self.chunk(coll, text, &path).await?;
            // The slow part, on this caller's turns; done before taking the commit lock.
            let vectors = self
                .embedder
                .embed_for(tenant, texts.clone())
                .await
                .map_err(|e| Error::internal("cannot embed the document", e))?;
            prepared.push((outcomes.len(), Prepared { doc_id, path, fingerprint, texts, vectors, sparse }));
            outcomes.push(None);
        }
        if !prepared.is_empty() {
            for (slot, outcome) in self.commit_documents(coll, prepared).await? {
                outcomes[slot] = Some(outcome);
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Splits a document's text into chunks of at most `--chunk-tokens` tokens, and gives each
    /// its keyword vector (off the async threads: tokenising megabytes takes a while).
    async fn chunk(
        &self,
        coll: &Arc<Collection>,
        text: String,
        path: &str,
    ) -> Result<(Vec<String>, Vec<SparseVector>)> {
        let (embedder, max, overlap) = (self.embedder.clone(), self.config.chunk_tokens, self.config.chunk_overlap);
        let (c, p, structured) = (Arc::clone(coll), path.to_string(), self.config.structured_chunks);
        let (texts, sparse) = tokio::task::spawn_blocking(move || {
            let texts = if structured {
                crate::chunking::chunk_document(&p, &text, max, overlap, embedder.tokenizer())?
            } else {
                let spans = embedder.tokenizer().token_spans(&text, max, overlap)?;
                spans.iter().map(|s| text[s.start..s.end].to_string()).collect()
            };
            let sparse: Vec<SparseVector> = texts.iter().map(|t| c.term_key().document_vector(t)).collect();
            Ok::<_, prag_embedder::EmbedError>((texts, sparse))
        })
        .await?
        .map_err(|e| Error::bad_request(format!("{path}: {e}")))?;
        if texts.is_empty() {
            return Err(Error::bad_request(format!("{path}: no text to index")));
        }
        Ok((texts, sparse))
    }

    /// Seals, stages and commits prepared documents together, then indexes them.
    async fn commit_documents(
        &self,
        coll: &Arc<Collection>,
        prepared: Vec<(usize, Prepared)>,
    ) -> Result<Vec<(usize, DocumentOutcome)>> {
        let _commit = coll.commit.lock().await;
        let mut out = Vec::with_capacity(prepared.len());
        let mut to_write = Vec::with_capacity(prepared.len());
        for (slot, p) in prepared {
            let previous = coll.entry(&p.doc_id);
            if previous.as_ref().is_some_and(|e| e.fingerprint == p.fingerprint) {
                // The same content was committed while this one was being embedded.
                self.metrics.unchanged_documents.fetch_add(1, Ordering::Relaxed);
                let chunks = p.texts.len() as u64;
                out.push((
                    slot,
                    DocumentOutcome { doc_id: p.doc_id, path: p.path, status: DocumentStatus::Unchanged, chunks },
                ));
                continue;
            }
            let header = DocumentHeader {
                path: p.path.clone(),
                fingerprint: p.fingerprint.clone(),
                chunks: p.texts.len() as u32,
                created_at: crate::auth::unix_now(),
                key_version: crate::store::document::KEY_VERSION,
                version: crate::store::document::new_version(
                    previous.as_ref().map(|e| e.version).max(coll.tombstone(&p.doc_id)),
                ),
            };
            to_write.push((slot, p, header));
        }
        if to_write.is_empty() {
            return Ok(out);
        }
        let store = coll.store.clone();
        let (to_write, mut staged) = tokio::task::spawn_blocking(move || {
            let mut staged: Vec<StagedDocument> = Vec::with_capacity(to_write.len());
            for (_, p, header) in &to_write {
                let chunks: Vec<NewChunk<'_>> = p
                    .texts
                    .iter()
                    .zip(&p.vectors)
                    .zip(&p.sparse)
                    .map(|((t, v), s)| NewChunk { text: t, vector: v, sparse: s })
                    .collect();
                match store.stage_document(&p.doc_id, header, &chunks) {
                    Ok(s) => staged.push(s),
                    Err(e) => {
                        store.discard_staged(&staged);
                        return Err(e);
                    }
                }
            }
            Ok((to_write, staged))
        })
        .await??;
        let mut ready = Vec::with_capacity(to_write.len());
        let mut done = Vec::with_capacity(to_write.len());
        for ((slot, p, header), s) in to_write.into_iter().zip(staged.iter_mut()) {
            let chunks = p.texts.len();
            ready.push(ReadyDocument {
                doc_id: p.doc_id.clone(),
                header,
                bytes: s.staged.bytes,
                locations: std::mem::take(&mut s.staged.locations),
                vectors: p.vectors,
                sparse: p.sparse,
            });
            done.push((slot, p.doc_id, p.path, chunks));
        }
        // All of them in place together: readers see all or none, a crash leaves all or none.
        let replaced = coll
            .commit(ready, move |store| store.commit_staged(&staged).inspect_err(|_| store.discard_staged(&staged)))
            .await?;
        for ((slot, doc_id, path, chunks), was_there) in done.into_iter().zip(replaced) {
            self.metrics.ingested_documents.fetch_add(1, Ordering::Relaxed);
            self.metrics.ingested_chunks.fetch_add(chunks as u64, Ordering::Relaxed);
            tracing::info!(collection = %coll.name(), doc_id = %doc_id, chunks, replaced = was_there, "document committed");
            let status = if was_there { DocumentStatus::Replaced } else { DocumentStatus::Created };
            out.push((slot, DocumentOutcome { doc_id, path, status, chunks: chunks as u64 }));
        }
        Ok(out)
    }

    /// Deletes a document by id or by path. In a network a document lives on its shard's owners:
    /// one not held here but known on peers is deleted by a tombstone at its newest version.
    pub async fn delete_document(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        doc_id: Option<&str>,
        path: Option<&str>,
    ) -> Result<DocumentOutcome> {
        let coll = self.collections.get(collection)?;
        coll.check_owner(caller)?;
        let doc_id = match (doc_id, path) {
            (Some(id), None) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => id.to_ascii_lowercase(),
            (Some(_), None) => return Err(Error::bad_request("doc_id is 32 hex characters")),
            (None, Some(p)) => coll.store.document_id(p),
            _ => return Err(Error::bad_request("give exactly one of doc_id and path")),
        };
        let _commit = coll.commit.lock().await;
        let held = coll.entry(&doc_id);
        let version = match &held {
            Some(entry) => entry.version,
            None => match self.network.newest_version(&coll, &doc_id) {
                Some(n) if coll.tombstone(&doc_id).is_none_or(|t| t < n) => n,
                _ => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no document {doc_id} in collection {collection:?}"),
                    ));
                }
            },
        };
        // The tombstone goes first: peers holding a copy drop it when they next sync.
        coll.update_live(|l| {
            l.tombstones.insert(doc_id.clone(), version);
        })
        .await?;
        if held.is_some() {
            coll.remove_document(&doc_id, None).await?;
        }
        self.metrics.deleted_documents.fetch_add(1, Ordering::Relaxed);
        Ok(DocumentOutcome {
            doc_id,
            path: held.as_ref().map_or_else(|| path.unwrap_or_default().to_string(), |e| e.path.clone()),
            status: DocumentStatus::Deleted,
            chunks: held.map_or(0, |e| e.point_ids.len() as u64),
        })
    }

    /// The documents of a collection, for its owner: held here, and (in a network) held by
    /// admitted peers — the whole collection at its newest versions, deleted ones left out.
    pub fn documents(&self, caller: &VerifyingKey, collection: &str) -> Result<Vec<DocumentInfo>> {
        let coll = self.collections.get(collection)?;
        coll.check_owner(caller)?;
        let mut all: std::collections::HashMap<String, (u64, String, u64)> = coll
            .contents
            .read()
            .docs
            .iter()
            .map(|(id, d)| (id.clone(), (d.version, d.path.clone(), d.point_ids.len() as u64)))
            .collect();
        for (id, v, path, chunks) in self.network.listing(&coll) {
            if all.get(&id).is_none_or(|(mine, _, _)| *mine < v) {
                all.insert(id, (v, path, chunks));
            }
        }
        let tombstones = coll.live().tombstones;
        let mut docs: Vec<DocumentInfo> = all
            .into_iter()
            .filter(|(id, (v, _, _))| tombstones.get(id).is_none_or(|t| t < v))
            .map(|(doc_id, (_, path, chunks))| DocumentInfo { doc_id, path, chunks })
            .collect();
        docs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(docs)
    }
}

/// The reason part of an extractor refusal, for logs (never the file's path: it is the owner's).
fn limit_reason(e: &ExtractError) -> String {
    match e {
        ExtractError::Limit { limit, .. } => limit.clone(),
        ExtractError::TooMuchText { limit, .. } => format!("more than {limit} bytes of text"),
        other => other.to_string(),
    }
}

/// Runs `optimize()` on collections after ingest, in the background and one at a time, so
/// searches move from brute force to HNSW without anyone asking. Requests arriving while one runs
/// (or within `debounce` of the first) are merged.
async fn optimizer_loop(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Collection>>,
    debounce: Duration,
    cancel: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            c = rx.recv() => match c {
                Some(c) => c,
                None => return,
            },
        };
        tokio::time::sleep(debounce).await;
        let mut pending = vec![first];
        while let Ok(c) = rx.try_recv() {
            pending.push(c);
        }
        let mut seen = HashSet::new();
        pending.retain(|c| seen.insert(c.id().to_string()));
        for coll in pending {
            let started = Instant::now();
            let c = Arc::clone(&coll);
            match tokio::task::spawn_blocking(move || c.index.optimize()).await {
                Ok(Ok(true)) => {
                    let stats = coll.index.stats().unwrap_or_default();
                    tracing::info!(
                        collection = %coll.name(), points = stats.points, indexed = stats.indexed,
                        seconds = started.elapsed().as_secs_f64(), "index optimized"
                    );
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(collection = %coll.name(), error = %e, "index optimization failed"),
                Err(e) => tracing::warn!(error = %e, "index optimization task failed"),
            }
        }
    }
}
