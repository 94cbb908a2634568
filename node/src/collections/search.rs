//! Searching the chunks a collection holds here: the index's nearest points, then their texts
//! opened from the store. Synchronous: callers run it on a blocking thread.

use std::collections::HashSet;

use prag_proto::api::{ChunkError, Hit};

use super::collection::Collection;
use crate::error::Result;
use crate::placement::shard_of;

/// What a search found here.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchHits {
    pub hits: Vec<Hit>,
    /// Chunks that matched but whose ciphertext cannot be read (never a server path).
    pub unreadable: Vec<ChunkError>,
}

impl Collection {
    /// The top `k` chunks held here; with `only`, of those shards only (searching deeper until `k`
    /// of them are found or the index is exhausted, so the answer is exact for them).
    pub(crate) fn search(
        &self,
        vector: &[f32],
        k: usize,
        exact: bool,
        only: Option<&HashSet<u32>>,
    ) -> Result<SearchHits> {
        let shards = self.shards();
        let total = self.contents.read().points.len();
        let mut want = k;
        let found = loop {
            let found = self.index.search(vector, want, exact)?;
            let Some(only) = only else { break found };
            let contents = self.contents.read();
            let kept: Vec<(u64, f32)> = found
                .iter()
                .filter(|(id, _)| contents.points.get(id).is_some_and(|r| only.contains(&shard_of(&r.doc_id, shards))))
                .copied()
                .collect();
            if kept.len() >= k || found.len() < want || want >= total {
                break kept;
            }
            want = (want * 4).min(total.max(k));
        };
        let mut answer = SearchHits::default();
        for (id, score) in found.into_iter().take(k) {
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
                Ok(text) => answer.hits.push(Hit {
                    doc_id: chunk_ref.doc_id,
                    path,
                    chunk: chunk_ref.chunk,
                    score,
                    text: text.as_str().to_string(),
                }),
                Err(e) => {
                    // The full error (with the server's paths) is for the operator's log only.
                    tracing::error!(collection = %self.name(), doc_id = %chunk_ref.doc_id, chunk = chunk_ref.chunk, error = %e, "stored chunk cannot be read");
                    answer.unreadable.push(ChunkError {
                        doc_id: chunk_ref.doc_id,
                        chunk: chunk_ref.chunk,
                        error: e.public_message().to_string(),
                    })
                }
            }
        }
        Ok(answer)
    }
}
