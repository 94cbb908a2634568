//! Start-up: every collection directory opened, the name claims deciding which directory owns a
//! name, and each collection's index rebuilt from its encrypted store (nothing is re-embedded).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::collection::{ChunkRef, Collection, Contents, DocEntry};
use super::registry::Collections;
use crate::error::Result;
use crate::index::IndexPoint;
use crate::lexical::counts::document_terms;
use crate::metrics::Metrics;
use crate::store::collection::list_dirs;
use crate::store::{Claim, CollectionMeta, CollectionStore, DocumentHeader, LoadedChunk};

/// What loading found, for the start-up log line.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Loaded {
    pub collections: usize,
    pub documents: usize,
    pub chunks: usize,
}

impl Collections {
    /// Opens every collection directory and rebuilds its index; a damaged collection or document
    /// is reported and skipped, never fatal. Blocking: run it off the async threads.
    pub(crate) fn load_all(&self, metrics: &Metrics) -> Result<Loaded> {
        let started = Instant::now();
        let dirs = list_dirs(&self.root)?;
        let mut loaded = Loaded::default();
        for (store, meta) in self.choose_dirs(dirs)? {
            let (collection, docs, chunks) = self.load_one(store, meta, metrics)?;
            loaded.collections += 1;
            loaded.documents += docs;
            loaded.chunks += chunks;
            self.insert(collection);
        }
        tracing::info!(
            collections = loaded.collections,
            documents = loaded.documents,
            chunks = loaded.chunks,
            seconds = started.elapsed().as_secs_f64(),
            "store opened and index rebuilt from it"
        );
        Ok(loaded)
    }

    /// Opens each directory's metadata and keeps, per name, the directory the name's claim names.
    /// Names without a claim (data written before claims existed) go to the directory holding the
    /// most documents, then the oldest, then the lowest id — and are claimed for it. A losing
    /// directory is left out (and removed when it holds no document).
    fn choose_dirs(&self, dirs: Vec<PathBuf>) -> Result<Vec<(CollectionStore, CollectionMeta)>> {
        let mut by_name: BTreeMap<String, Vec<(CollectionStore, CollectionMeta)>> = BTreeMap::new();
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
                    match self.claims.claim(&name, &id)? {
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

    /// Loads one collection's documents into a fresh index.
    fn load_one(
        &self,
        store: CollectionStore,
        meta: CollectionMeta,
        metrics: &Metrics,
    ) -> Result<(Arc<Collection>, usize, usize)> {
        let index = self.open_index(&store)?;
        let grants = store.read_grants().unwrap_or_else(|e| {
            // Fail closed: no grants, so no worker access, until the owner grants again.
            tracing::error!(collection = %meta.name, error = %e, "cannot read access grants; none apply");
            Default::default()
        });
        let collection = Arc::new(Collection::new(store, meta, grants, index, self.changes()));
        let mut contents = Contents::default();
        let mut batch = Vec::new();
        let mut chunks = 0usize;
        let damaged = |what: &str| {
            metrics.integrity_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(collection = %collection.name(), "{what}");
        };
        for doc_id in collection.store.document_ids()? {
            let doc = match collection.store.load_document(&doc_id) {
                Ok(d) => d,
                Err(e) => {
                    damaged(&format!("cannot read document {doc_id}; skipping it: {e}"));
                    continue;
                }
            };
            let mut point_ids = Vec::with_capacity(doc.chunks.len());
            let first_point = batch.len();
            for (i, chunk) in doc.chunks.into_iter().enumerate() {
                let i = i as u32;
                match chunk {
                    Ok(LoadedChunk { loc, vector, sparse }) => {
                        let id = collection.point_id(&doc_id, i);
                        point_ids.push(id);
                        contents.points.insert(id, ChunkRef { doc_id: doc_id.clone(), chunk: i, loc });
                        batch.push(IndexPoint { id, vector, sparse });
                        chunks += 1;
                    }
                    Err(e) => {
                        damaged(&format!("chunk {i} of document {doc_id} unreadable; left out of the index: {e}"))
                    }
                }
            }
            // This document's points are the batch's last: counted before the batch is flushed.
            let terms = std::sync::Arc::new(document_terms(batch[first_point..].iter().map(|p| &p.sparse)));
            if batch.len() >= 4096 {
                collection.index.upsert(std::mem::take(&mut batch))?;
            }
            let bytes = doc.bytes;
            let DocumentHeader { path, fingerprint, version, .. } = doc.header;
            let entry = DocEntry { path, fingerprint, point_ids, version, bytes, terms };
            contents.count_terms(&doc_id, &entry, collection.shards());
            contents.docs.insert(doc_id, entry);
        }
        collection.index.upsert(batch)?;
        let live: HashSet<u64> = contents.points.keys().copied().collect();
        let pruned = collection.index.prune(&live)?;
        if pruned > 0 {
            tracing::info!(collection = %collection.name(), points = pruned, "removed stale points from the index");
        }
        let docs = contents.docs.len();
        *collection.contents.write() = contents;
        Ok((collection, docs, chunks))
    }
}
