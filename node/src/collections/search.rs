//! Searching the chunks a collection holds here: the index's nearest points (dense) and best
//! keyword matches (sparse), then their texts opened from the store. Synchronous: callers run it
//! on a blocking thread.

use std::collections::HashSet;

use prag_proto::api::{ChunkError, Hit};

use super::collection::Collection;
use crate::error::{Error, Result};
use crate::index::PointId;
use crate::lexical::SparseVector;
use crate::placement::shard_of;

/// The most hits of one ranking a search may ask for (fusion looks deeper than the answer's `k`).
pub(crate) const MAX_DEPTH: usize = 3 * prag_proto::api::MAX_K;

/// What a search found here: the dense ranking's hits, the keyword ranking's hits (each best
/// first), and chunks that matched but cannot be read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchHits {
    pub hits: Vec<Hit>,
    pub sparse_hits: Vec<Hit>,
    /// Chunks that matched but whose ciphertext cannot be read (never a server path).
    pub unreadable: Vec<ChunkError>,
}

/// One search of some shards, as a node asks it of itself or of a peer: the question's vector
/// (empty for keywords only), its IDF-weighted terms (none for dense only), how many of each
/// ranking to return, and whether to bypass HNSW.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ShardQuery {
    pub vector: Vec<f32>,
    pub sparse: Option<SparseVector>,
    pub k: usize,
    pub exact: bool,
}

impl ShardQuery {
    /// `u32 n ‖ n × f32 ‖ u8 has_sparse ‖ sparse`, little-endian (sealed before it leaves).
    pub(crate) fn encode_vectors(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + 4 * self.vector.len());
        out.extend_from_slice(&(self.vector.len() as u32).to_le_bytes());
        for f in &self.vector {
            out.extend_from_slice(&f.to_le_bytes());
        }
        match &self.sparse {
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&s.encode());
            }
            None => out.push(0),
        }
        out
    }

    /// The inverse of [`encode_vectors`](Self::encode_vectors), for a question of `dim`
    /// dimensions (or none).
    pub(crate) fn decode_vectors(bytes: &[u8], dim: usize, k: usize, exact: bool) -> Result<Self> {
        let bad = |why: &str| Error::bad_request(format!("bad search query: {why}"));
        let n = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad("truncated"))?;
        if n != 0 && n != dim {
            return Err(bad("the query vector has the wrong dimension"));
        }
        let end = 4 + 4 * n;
        let floats = bytes.get(4..end).ok_or_else(|| bad("truncated"))?;
        let vector: Vec<f32> = floats.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if vector.iter().any(|f| !f.is_finite()) {
            return Err(bad("the query vector is not finite"));
        }
        let sparse = match bytes.get(end) {
            Some(0) if bytes.len() == end + 1 => None,
            Some(1) => Some(SparseVector::decode(&bytes[end + 1..]).map_err(|e| bad(&e.to_string()))?),
            _ => return Err(bad("bad keyword part")),
        };
        Ok(ShardQuery { vector, sparse, k, exact })
    }
}

impl Collection {
    /// How many chunks of the shards in `only` (all with `None`) hold each of `terms`, and how
    /// many chunks those shards hold.
    pub(crate) fn term_frequencies(&self, terms: &[u32], only: Option<&HashSet<u32>>) -> (Vec<u64>, u64) {
        self.contents.read().terms.frequencies(terms, only)
    }

    /// The top `k` of a ranking `run(want)` gives, restricted to the shards in `only` (asking
    /// deeper until `k` of them are found or the ranking is exhausted, so the answer is exact for
    /// them).
    fn top_in_shards(
        &self,
        k: usize,
        only: Option<&HashSet<u32>>,
        run: impl Fn(usize) -> Result<Vec<(PointId, f32)>>,
    ) -> Result<Vec<(PointId, f32)>> {
        let shards = self.shards();
        let total = self.contents.read().points.len();
        let mut want = k;
        loop {
            let found = run(want)?;
            let Some(only) = only else { return Ok(found) };
            let contents = self.contents.read();
            let kept: Vec<(PointId, f32)> = found
                .iter()
                .filter(|(id, _)| contents.points.get(id).is_some_and(|r| only.contains(&shard_of(&r.doc_id, shards))))
                .copied()
                .collect();
            if kept.len() >= k || found.len() < want || want >= total {
                return Ok(kept);
            }
            want = (want * 4).min(total.max(k));
        }
    }

    /// The dense ranking's top `k` ids.
    pub(crate) fn dense_ranking(
        &self,
        vector: &[f32],
        k: usize,
        exact: bool,
        only: Option<&HashSet<u32>>,
    ) -> Result<Vec<(PointId, f32)>> {
        self.top_in_shards(k, only, |want| Ok(self.index.search(vector, want, exact)?))
    }

    /// The keyword ranking's top `k` ids (BM25, when `query`'s weights are IDFs).
    pub(crate) fn sparse_ranking(
        &self,
        query: &SparseVector,
        k: usize,
        only: Option<&HashSet<u32>>,
    ) -> Result<Vec<(PointId, f32)>> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        self.top_in_shards(k, only, |want| Ok(self.index.search_sparse(query, want)?))
    }

    /// The (document, chunk) of a point still held, for ranking ties and fusion.
    pub(crate) fn chunk_of(&self, id: PointId) -> Option<(String, u32)> {
        self.contents.read().points.get(&id).map(|r| (r.doc_id.clone(), r.chunk))
    }

    /// Both rankings a [`ShardQuery`] asks for, with their texts: what a node answers a peer.
    pub(crate) fn search_shards(&self, q: &ShardQuery, only: Option<&HashSet<u32>>) -> Result<SearchHits> {
        let mut answer = SearchHits::default();
        if !q.vector.is_empty() {
            let ranked = self.dense_ranking(&q.vector, q.k, q.exact, only)?;
            answer.hits = self.read_hits(&ranked, &mut answer.unreadable);
        }
        if let Some(sparse) = &q.sparse {
            let ranked = self.sparse_ranking(sparse, q.k, only)?;
            answer.sparse_hits = self.read_hits(&ranked, &mut answer.unreadable);
        }
        Ok(answer)
    }

    /// The hits of ranked points, texts opened; points gone since they were ranked are skipped,
    /// chunks that cannot be read go to `unreadable`.
    pub(crate) fn read_hits(&self, ranked: &[(PointId, f32)], unreadable: &mut Vec<ChunkError>) -> Vec<Hit> {
        let mut hits = Vec::with_capacity(ranked.len());
        for &(id, score) in ranked {
            // The location and the file it points into are read under `files`, so a document being
            // replaced or deleted meanwhile is either wholly the old one or gone, never a mix.
            let _files = self.files.read();
            let (chunk_ref, path) = {
                let contents = self.contents.read();
                // Gone since the index answered (deleted, or a shorter new version): not a hit.
                let Some(r) = contents.points.get(&id).cloned() else { continue };
                let path = contents.docs.get(&r.doc_id).map(|d| d.path.clone()).unwrap_or_default();
                (r, path)
            };
            match self.store.read_text(&chunk_ref.doc_id, chunk_ref.chunk, chunk_ref.loc) {
                Ok(text) => hits.push(Hit {
                    doc_id: chunk_ref.doc_id,
                    path,
                    chunk: chunk_ref.chunk,
                    score,
                    text: text.as_str().to_string(),
                }),
                Err(e) => {
                    // The full error (with the server's paths) is for the operator's log only.
                    tracing::error!(collection = %self.name(), doc_id = %chunk_ref.doc_id, chunk = chunk_ref.chunk, error = %e, "stored chunk cannot be read");
                    unreadable.push(ChunkError {
                        doc_id: chunk_ref.doc_id,
                        chunk: chunk_ref.chunk,
                        error: e.public_message().to_string(),
                    })
                }
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_queries_round_trip_and_bad_ones_are_refused() {
        let q = ShardQuery {
            vector: vec![0.5, -1.0, 2.0],
            sparse: Some(SparseVector { indices: vec![1, 7], values: vec![0.3, 2.5] }),
            k: 9,
            exact: true,
        };
        let bytes = q.encode_vectors();
        assert_eq!(ShardQuery::decode_vectors(&bytes, 3, 9, true).ok(), Some(q.clone()));
        assert!(ShardQuery::decode_vectors(&bytes, 4, 9, true).is_err(), "wrong dimension");
        assert!(ShardQuery::decode_vectors(&bytes[..bytes.len() - 2], 3, 9, true).is_err(), "truncated");
        let keywords_only = ShardQuery { vector: Vec::new(), ..q.clone() };
        assert_eq!(ShardQuery::decode_vectors(&keywords_only.encode_vectors(), 3, 9, true).ok(), Some(keywords_only));
        let dense_only = ShardQuery { sparse: None, ..q.clone() };
        let mut b = dense_only.encode_vectors();
        assert_eq!(ShardQuery::decode_vectors(&b, 3, 9, true).ok(), Some(dense_only));
        b.push(0);
        assert!(ShardQuery::decode_vectors(&b, 3, 9, true).is_err(), "trailing bytes");
        let mut nan = q.encode_vectors();
        nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(ShardQuery::decode_vectors(&nan, 3, 9, true).is_err(), "a NaN");
    }
}
