//! Retrieval: embed the question, search the index, open the matching chunks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{ChunkError, Hit, QueryRequest, QueryResponse};

use super::{Collection, Node, NodeError, internal};

/// Largest `k` a query may ask for.
pub const MAX_K: usize = 100;
/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

impl Node {
    pub async fn query(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        req: QueryRequest,
    ) -> Result<QueryResponse, NodeError> {
        let started = Instant::now();
        let coll = self.collection(collection)?;
        coll.check_owner(caller)?;
        let (k, exact) = (req.k, req.exact);
        let (hits, unreadable) = self.retrieve(&coll, req.text, k, exact).await?;
        let took = started.elapsed().as_secs_f64();
        Ok(QueryResponse { hits, unreadable, exact, took_ms: took * 1e3 })
    }

    /// Checks the question, embeds it once, searches the collection's index and opens the
    /// matching chunks. Chunks that fail their integrity check come back in the second list.
    pub(crate) async fn retrieve(
        &self,
        coll: &Arc<Collection>,
        text: String,
        k: usize,
        exact: bool,
    ) -> Result<(Vec<Hit>, Vec<ChunkError>), NodeError> {
        let started = Instant::now();
        check_question(&text, k)?;
        let vector = self.embedder.embed(vec![text]).await.map_err(internal)?.pop().unwrap_or_default();
        let master = Arc::clone(&self.master);
        let c = Arc::clone(coll);
        let (hits, unreadable) = tokio::task::spawn_blocking(move || {
            let found = c.index.search(&vector, k, exact)?;
            let mut hits = Vec::with_capacity(found.len());
            let mut unreadable = Vec::new();
            for (id, score) in found {
                let (chunk_ref, path) = {
                    let state = c.state.read();
                    let Some(r) = state.points.get(&id).cloned() else { continue };
                    let path = state.docs.get(&r.doc_id).map(|d| d.path.clone()).unwrap_or_default();
                    (r, path)
                };
                match c.store.read_text(&master, &chunk_ref.doc_id, chunk_ref.chunk, chunk_ref.loc) {
                    Ok(text) => hits.push(Hit {
                        doc_id: chunk_ref.doc_id,
                        path,
                        chunk: chunk_ref.chunk,
                        score,
                        text: text.as_str().to_string(),
                    }),
                    Err(e) => unreadable.push(ChunkError {
                        doc_id: chunk_ref.doc_id,
                        chunk: chunk_ref.chunk,
                        error: e.to_string(),
                    }),
                }
            }
            Ok::<_, crate::index::IndexError>((hits, unreadable))
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        if !unreadable.is_empty() {
            self.metrics.integrity_errors.fetch_add(unreadable.len() as u64, Ordering::Relaxed);
            for u in &unreadable {
                tracing::error!(collection = %coll.meta.name, doc_id = %u.doc_id, chunk = u.chunk, "stored chunk failed its integrity check");
            }
        }
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        self.metrics.query_seconds.observe(started.elapsed().as_secs_f64());
        Ok((hits, unreadable))
    }
}

/// A question the node will embed: not empty, not huge, a sensible `k`.
pub(crate) fn check_question(text: &str, k: usize) -> Result<(), NodeError> {
    if text.trim().is_empty() {
        return Err(NodeError::BadRequest("query text is empty".into()));
    }
    if text.len() > MAX_QUERY_BYTES {
        return Err(NodeError::BadRequest(format!("query text is longer than {MAX_QUERY_BYTES} bytes")));
    }
    if k == 0 || k > MAX_K {
        return Err(NodeError::BadRequest(format!("k must be between 1 and {MAX_K}")));
    }
    Ok(())
}
