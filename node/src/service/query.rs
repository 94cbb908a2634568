//! Retrieval: embed the question, search the index, open the matching chunks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{QueryRequest, QueryResponse};

use super::distributed::Found;
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
        let tenant = prag_proto::account::public_key_hex(caller);
        let found = self.retrieve(&tenant, &coll, req.text, k, exact).await?;
        let took = started.elapsed().as_secs_f64();
        Ok(QueryResponse {
            hits: found.hits,
            unreadable: found.unreadable,
            exact,
            took_ms: took * 1e3,
            partial: !found.missing_shards.is_empty(),
            missing_shards: found.missing_shards,
        })
    }

    /// Searches every shard of `collection` for an already embedded question: the distributed
    /// search without the embedder (benchmarks). Returns the hits and the shards no replica served.
    pub async fn search_vector(
        &self,
        collection: &str,
        vector: Vec<f32>,
        k: usize,
        exact: bool,
    ) -> Result<(Vec<prag_proto::api::Hit>, Vec<u32>), NodeError> {
        let coll = self.collection(collection)?;
        let found = self.search_collection(&coll, vector, k, exact).await?;
        Ok((found.hits, found.missing_shards))
    }

    /// Checks the question, embeds it once (on `tenant`'s turn) and searches every shard of the
    /// collection (here, or on peers: see `distributed.rs`). Chunks that fail their integrity
    /// check come back apart.
    pub(crate) async fn retrieve(
        &self,
        tenant: &str,
        coll: &Arc<Collection>,
        text: String,
        k: usize,
        exact: bool,
    ) -> Result<Found, NodeError> {
        let started = Instant::now();
        check_question(&text, k)?;
        let vector = self.embedder.embed_for(tenant, vec![text]).await.map_err(internal)?.pop().unwrap_or_default();
        let found = self.search_collection(coll, vector, k, exact).await?;
        let altered = found.unreadable.iter().filter(|u| u.error.starts_with(crate::store::INTEGRITY_MESSAGE)).count();
        if altered > 0 {
            self.metrics.integrity_errors.fetch_add(altered as u64, Ordering::Relaxed);
            for u in found.unreadable.iter().filter(|u| u.error.starts_with(crate::store::INTEGRITY_MESSAGE)) {
                tracing::error!(collection = %coll.meta.name, doc_id = %u.doc_id, chunk = u.chunk, "stored chunk failed its integrity check");
            }
        }
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        self.metrics.query_seconds.observe(started.elapsed().as_secs_f64());
        Ok(found)
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
