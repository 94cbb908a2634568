//! A collection's committed snapshot, and deterministic exact search over it.
//!
//! The snapshot root commits to what the collection holds here without revealing it: per shard, a
//! Merkle tree over the documents of that shard in id order, each document's leaf
//! `H("doc" ‖ id ‖ version ‖ chunk commitments)`, each chunk's commitment
//! `H("chunk" ‖ text ‖ vector bits)`; the root `H("prag-snapshot-v1" ‖ shard count ‖ shard roots)`.
//! H is BLAKE2b-256. It is computed from the plaintext the ciphertext opens to, so every replica
//! holding the same documents computes the same root, and it changes exactly when they change.
//!
//! Deterministic search scores every chunk of the snapshot with [`super::kernel::dot`] (one fixed
//! order of operations), orders by score (`f32::total_cmp`, best first) then by document id and
//! chunk, and takes the top `k`: no index, no thread count, no CPU feature changes the answer.
//! Built lazily and kept until the collection changes (its vectors are held for that time).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prag_proto::api::Hit;
use prag_proto::contracts::market::commitment::{blake2b256, merkle_root};

use super::collection::{Collection, Snapshot, SnapshotEntry};
use crate::error::{Error, Result};
use crate::placement::shard_of;

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({}, {} chunks)", hex::encode(self.root), self.entries.len())
    }
}

fn chunk_commitment(text: &str, vector: &[f32]) -> [u8; 32] {
    let bits: Vec<u8> = vector.iter().flat_map(|f| f.to_bits().to_le_bytes()).collect();
    blake2b256(&[b"chunk", &(text.len() as u64).to_le_bytes(), text.as_bytes(), &bits])
}

fn doc_leaf(doc_id: &str, version: u64, chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(chunks.len() + 4);
    let len = (doc_id.len() as u64).to_le_bytes();
    let v = version.to_le_bytes();
    parts.extend([b"doc".as_slice(), &len, doc_id.as_bytes(), &v]);
    parts.extend(chunks.iter().map(|c| c.as_slice()));
    blake2b256(&parts)
}

/// The root of a shard's document leaves (in id order); an empty shard has a fixed root.
fn shard_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    merkle_root(leaves).unwrap_or_else(|| blake2b256(&[b"empty-shard"]))
}

impl Collection {
    /// The snapshot of what is held here now (built when the collection changed since the last
    /// one). Blocking: decrypts every chunk when it builds.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(s) = self.snapshot.lock().as_ref().filter(|s| s.generation == generation) {
            return Ok(Arc::clone(s));
        }
        let built = Arc::new(self.build_snapshot(generation)?);
        *self.snapshot.lock() = Some(Arc::clone(&built));
        Ok(built)
    }

    /// The cached snapshot's root if it is current (never builds one: for status).
    pub fn current_snapshot(&self) -> Option<Arc<Snapshot>> {
        let generation = self.generation.load(Ordering::Acquire);
        self.snapshot.lock().as_ref().filter(|s| s.generation == generation).cloned()
    }

    fn build_snapshot(&self, generation: u64) -> Result<Snapshot> {
        let shards = self.shards();
        // Documents and their files are read under `files`, so no replacement lands half-way.
        let _files = self.files.read();
        let mut docs: Vec<(String, u64, String)> =
            self.contents.read().docs.iter().map(|(id, d)| (id.clone(), d.version, d.path.clone())).collect();
        docs.sort();
        let mut leaves: Vec<Vec<[u8; 32]>> = vec![Vec::new(); shards as usize];
        let mut entries = Vec::new();
        for (doc_id, version, path) in docs {
            let doc = self
                .store
                .load_document(&doc_id)
                .map_err(|e| Error::internal(format!("cannot open document {doc_id} for the snapshot"), e))?;
            let mut commitments = Vec::with_capacity(doc.chunks.len());
            for (i, chunk) in doc.chunks.into_iter().enumerate() {
                let crate::store::LoadedChunk { loc, vector, .. } =
                    chunk.map_err(|e| Error::internal(format!("chunk {i} of {doc_id} cannot be read"), e))?;
                let text = self
                    .store
                    .read_text(&doc_id, i as u32, loc)
                    .map_err(|e| Error::internal(format!("chunk {i} of {doc_id} cannot be read"), e))?;
                commitments.push(chunk_commitment(&text, &vector));
                entries.push(SnapshotEntry {
                    doc_id: doc_id.clone(),
                    path: path.clone(),
                    chunk: i as u32,
                    loc,
                    vector,
                });
            }
            leaves[shard_of(&doc_id, shards) as usize].push(doc_leaf(&doc_id, version, &commitments));
        }
        let shard_documents = leaves.iter().map(|l| l.len() as u64).collect();
        let shard_roots: Vec<[u8; 32]> = leaves.iter().map(|l| shard_root(l)).collect();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(shard_roots.len() + 2);
        let count = shards.to_le_bytes();
        parts.extend([b"prag-snapshot-v1".as_slice(), &count]);
        parts.extend(shard_roots.iter().map(|r| r.as_slice()));
        let root = blake2b256(&parts);
        Ok(Snapshot { generation, root, shard_roots, shard_documents, entries })
    }
}

impl Snapshot {
    pub fn chunks(&self) -> usize {
        self.entries.len()
    }

    /// The top `k` chunks for `vector`, bit for bit the same on every replica of this snapshot;
    /// scored on `threads` threads (the answer does not depend on how many). Texts are read from
    /// `coll`'s store. Blocking.
    pub fn search(&self, coll: &Collection, vector: &[f32], k: usize, threads: usize) -> Result<Vec<Hit>> {
        self.search_with(coll, vector, k, threads, false)
    }

    /// [`Snapshot::search`], with the portable kernel forced when `portable` (for the test that
    /// shows both paths give the same bits).
    pub fn search_with(
        &self,
        coll: &Collection,
        vector: &[f32],
        k: usize,
        threads: usize,
        portable: bool,
    ) -> Result<Vec<Hit>> {
        let scores = self.scores(vector, threads, portable);
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by(|&a, &b| {
            let (ea, eb) = (&self.entries[a], &self.entries[b]);
            scores[b].total_cmp(&scores[a]).then_with(|| ea.doc_id.cmp(&eb.doc_id)).then(ea.chunk.cmp(&eb.chunk))
        });
        let _files = coll.files.read();
        let mut hits = Vec::with_capacity(k);
        for i in order.into_iter().take(k) {
            let e = &self.entries[i];
            let text = coll.store.read_text(&e.doc_id, e.chunk, e.loc).map_err(|err| {
                Error::internal(format!("chunk {} of {} cannot be read for an answer", e.chunk, e.doc_id), err)
            })?;
            hits.push(Hit {
                doc_id: e.doc_id.clone(),
                path: e.path.clone(),
                chunk: e.chunk,
                score: scores[i],
                text: text.as_str().to_string(),
            });
        }
        Ok(hits)
    }

    /// Every chunk's score, each computed whole by one thread.
    pub fn scores(&self, vector: &[f32], threads: usize, portable: bool) -> Vec<f32> {
        let dot = if portable { super::kernel::dot_portable } else { super::kernel::dot };
        let n = self.entries.len();
        let threads = threads.clamp(1, 64).min(n.max(1));
        if threads == 1 {
            return self.entries.iter().map(|e| dot(&e.vector, vector)).collect();
        }
        let mut scores = vec![0f32; n];
        let per = n.div_ceil(threads);
        std::thread::scope(|s| {
            for (part, out) in self.entries.chunks(per).zip(scores.chunks_mut(per)) {
                s.spawn(move || {
                    for (e, o) in part.iter().zip(out.iter_mut()) {
                        *o = dot(&e.vector, vector);
                    }
                });
            }
        });
        scores
    }
}
