//! One collection at run time: its files, its index, what is in them, and its metadata — one copy,
//! written through to the store (write first, then swap in memory, so memory and disk never
//! disagree after a failed write).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k256::ecdsa::VerifyingKey;
use parking_lot::{Mutex, RwLock};

use crate::crypto::{DataKey, KeyContext, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{IndexPoint, PointId, VectorIndex};
use crate::lexical::counts::{DocumentTerms, document_terms};
use crate::lexical::{SparseVector, TermCounts, TermKey};
use crate::placement::shard_of;
use crate::store::{ChunkLocation, CollectionMeta, CollectionStore, DocumentHeader, StoreError};

/// Where a chunk lives: its document and its sealed text's place in the document file.
#[derive(Debug, Clone)]
pub(crate) struct ChunkRef {
    pub doc_id: String,
    pub chunk: u32,
    pub loc: ChunkLocation,
}

/// A document held here.
#[derive(Debug, Clone)]
pub(crate) struct DocEntry {
    pub path: String,
    pub fingerprint: String,
    pub point_ids: Vec<PointId>,
    /// The document's version (see [`DocumentHeader::version`]).
    pub version: u64,
    /// The document file's length (what peers are told they can fetch).
    pub bytes: u64,
    /// Its terms (keyed ids) and how many of its chunks hold each: what it adds to
    /// [`Contents::terms`].
    pub terms: Arc<DocumentTerms>,
}

/// The documents held here and the index points that lead to their chunks.
#[derive(Default)]
pub(crate) struct Contents {
    pub docs: HashMap<String, DocEntry>,
    pub points: HashMap<PointId, ChunkRef>,
    /// Per shard, chunks holding each term (what keyword search's IDF comes from).
    pub terms: TermCounts,
}

impl Contents {
    /// Puts `entry` in the maps' term counts (its points are the caller's).
    pub(crate) fn count_terms(&mut self, doc_id: &str, entry: &DocEntry, shards: u32) {
        self.terms.add(shard_of(doc_id, shards), entry.point_ids.len() as u64, &entry.terms);
    }

    pub(crate) fn uncount_terms(&mut self, doc_id: &str, entry: &DocEntry, shards: u32) {
        self.terms.remove(shard_of(doc_id, shards), entry.point_ids.len() as u64, &entry.terms);
    }
}

/// The metadata that changes after creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Live {
    /// Subscribers (canonical hex public keys) whose workers may query.
    pub grants: BTreeSet<String>,
    /// When the grants last changed (unix nanoseconds): across replicas, the newest grants win.
    pub grants_version: u64,
    /// Deleted documents: id → the version deleted.
    pub tombstones: BTreeMap<String, u64>,
}

/// A document whose file is ready to be put in place ([`Collection::commit`]): what the maps and
/// the index need of it, in chunk order.
pub(crate) struct ReadyDocument {
    pub doc_id: String,
    pub header: DocumentHeader,
    /// The file's length.
    pub bytes: u64,
    pub locations: Vec<ChunkLocation>,
    pub vectors: Vec<Vec<f32>>,
    /// The chunks' keyword vectors, in the same order.
    pub sparse: Vec<SparseVector>,
}

/// One chunk of the snapshot.
pub(super) struct SnapshotEntry {
    pub(super) doc_id: String,
    pub(super) path: String,
    pub(super) chunk: u32,
    pub(super) loc: ChunkLocation,
    pub(super) vector: Vec<f32>,
}

/// What a collection holds here, committed (built and searched in `snapshot`).
pub struct Snapshot {
    /// The collection's change counter when this was built.
    pub(crate) generation: u64,
    pub root: [u8; 32],
    /// Per shard: the root of its documents held here.
    pub shard_roots: Vec<[u8; 32]>,
    /// Per shard: how many documents of it are held here.
    pub shard_documents: Vec<u64>,
    /// Every chunk, ordered by (document id, chunk).
    pub(super) entries: Vec<SnapshotEntry>,
}

/// A collection.
pub struct Collection {
    pub(crate) store: CollectionStore,
    /// Fixed at creation.
    name: String,
    owner: String,
    created_at: u64,
    shards: u32,
    replicas: u32,
    live: Mutex<Live>,
    pub(crate) index: Arc<dyn VectorIndex>,
    /// Turns terms into ids (derived from the collection key once).
    term_key: TermKey,
    pub(crate) contents: RwLock<Contents>,
    /// Serialises changes (file writes, index updates, metadata writes) within the collection.
    pub(crate) commit: tokio::sync::Mutex<()>,
    /// Held for reading while a chunk's location is looked up and its text read; held for writing
    /// while a document file is put in place or removed together with the maps that point into
    /// it. So a reader never reads one version's offsets in another version's file (which would
    /// look like tampering), nor a file that is gone.
    pub(crate) files: RwLock<()>,
    /// Raised after every change of what the collection holds or says.
    changes: Arc<tokio::sync::Notify>,
    /// Counts changes of what the collection holds (documents put in place or removed).
    pub(crate) generation: std::sync::atomic::AtomicU64,
    /// The last snapshot built (see `snapshot`), current while `generation` has not moved.
    pub(crate) snapshot: Mutex<Option<Arc<Snapshot>>>,
}

impl Collection {
    pub(crate) fn new(
        store: CollectionStore,
        meta: CollectionMeta,
        grants: BTreeSet<String>,
        index: Arc<dyn VectorIndex>,
        changes: Arc<tokio::sync::Notify>,
    ) -> Self {
        Collection {
            term_key: store.term_key(),
            store,
            name: meta.name,
            owner: meta.owner,
            created_at: meta.created_at,
            shards: meta.shards.max(1),
            replicas: meta.replicas.max(1),
            live: Mutex::new(Live { grants, grants_version: meta.grants_version, tombstones: meta.tombstones }),
            index,
            contents: RwLock::new(Contents::default()),
            commit: tokio::sync::Mutex::new(()),
            files: RwLock::new(()),
            changes,
            generation: Default::default(),
            snapshot: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        &self.store.id
    }

    /// The owner's canonical hex public key.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Whether the collection may be replicated (it has a key of its own).
    pub fn shareable(&self) -> bool {
        self.store.shareable()
    }

    pub(crate) fn live(&self) -> Live {
        self.live.lock().clone()
    }

    pub(crate) fn is_granted(&self, subscriber: &str) -> bool {
        self.live.lock().grants.contains(subscriber)
    }

    /// The newest version of `doc_id` deleted, if any.
    pub(crate) fn tombstone(&self, doc_id: &str) -> Option<u64> {
        self.live.lock().tombstones.get(doc_id).copied()
    }

    /// The metadata as the store keeps it.
    fn meta_of(&self, live: &Live) -> CollectionMeta {
        CollectionMeta {
            name: self.name.clone(),
            owner: self.owner.clone(),
            created_at: self.created_at,
            shards: self.shards,
            replicas: self.replicas,
            grants_version: live.grants_version,
            tombstones: live.tombstones.clone(),
        }
    }

    /// Changes the live metadata: `change` edits a copy, the copy is written to the store off the
    /// async threads, and only then replaces the one in memory. Returns whether anything changed.
    /// Callers hold the commit lock.
    pub(crate) async fn update_live(self: &Arc<Self>, change: impl FnOnce(&mut Live)) -> Result<bool> {
        let before = self.live();
        let mut next = before.clone();
        change(&mut next);
        if next == before {
            return Ok(false);
        }
        let (coll, written) = (Arc::clone(self), next.clone());
        tokio::task::spawn_blocking(move || {
            if written.grants != before.grants {
                coll.store.write_grants(&written.grants)?;
            }
            coll.store.write_meta(&coll.meta_of(&written))
        })
        .await?
        .map_err(|e| Error::internal(format!("cannot write collection {:?}'s metadata", self.name), e))?;
        *self.live.lock() = next;
        self.changes.notify_one();
        Ok(true)
    }

    pub(crate) fn check_owner(&self, caller: &VerifyingKey) -> Result<()> {
        if prag_proto::account::public_key_hex(caller) == self.owner {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "only the owner of collection {:?} may do this; the request was signed by another key",
                self.name
            )))
        }
    }

    /// Keyed point id of a chunk: stable across restarts and replicas, meaningless outside.
    pub(crate) fn point_id(&self, doc_id: &str, chunk: u32) -> PointId {
        let k = self.store.key().derive(&KeyContext::new(Purpose::Mac, &self.store.id, "point-id", 0, 1));
        let mac = k.mac(format!("{doc_id}/{chunk}").as_bytes());
        u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7]])
    }

    /// The key that turns this collection's terms into ids.
    pub(crate) fn term_key(&self) -> &TermKey {
        &self.term_key
    }

    /// The keys that seal a remote search's question (chunk 0) and answer (chunk 1).
    pub(crate) fn search_keys(&self, request_id: &str) -> (DataKey, DataKey) {
        let k = self.store.key();
        (
            k.derive(&KeyContext::new(Purpose::RemoteSearch, &self.store.id, request_id, 0, 1)),
            k.derive(&KeyContext::new(Purpose::RemoteSearch, &self.store.id, request_id, 1, 1)),
        )
    }

    /// Builds the index's structures now (HNSW above the engine's threshold); whether anything
    /// changed. Blocking.
    pub fn build_index(&self) -> Result<bool> {
        Ok(self.index.optimize()?)
    }

    /// Doc id → version of every document held here.
    pub(crate) fn versions(&self) -> HashMap<String, u64> {
        self.contents.read().docs.iter().map(|(id, d)| (id.clone(), d.version)).collect()
    }

    pub(crate) fn entry(&self, doc_id: &str) -> Option<DocEntry> {
        self.contents.read().docs.get(doc_id).cloned()
    }

    /// (documents, chunks) held here.
    pub fn counts(&self) -> (u64, u64) {
        let c = self.contents.read();
        (c.docs.len() as u64, c.points.len() as u64)
    }

    /// Puts documents in place, the one way uploads and replicas both take: `place` moves their
    /// files, under `files` for writing together with the maps that point into them, so a reader
    /// sees all of them or none; then their vectors go into the index (a search meanwhile meets
    /// the previous version's vectors, whose chunks still exist, or none), and points a replaced
    /// version no longer has leave it. All of it off the async threads. Returns, per document,
    /// whether it replaced one. Callers hold the commit lock.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        docs: Vec<ReadyDocument>,
        place: impl FnOnce(&CollectionStore) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Vec<bool>> {
        let coll = Arc::clone(self);
        tokio::task::spawn_blocking(move || coll.commit_blocking(docs, place)).await?
    }

    fn commit_blocking(
        &self,
        mut docs: Vec<ReadyDocument>,
        place: impl FnOnce(&CollectionStore) -> Result<(), StoreError>,
    ) -> Result<Vec<bool>> {
        // Point ids are keyed hashes, and term counts a walk over every chunk: computed once,
        // outside the lock.
        let ids: Vec<Vec<PointId>> =
            docs.iter().map(|d| (0..d.locations.len() as u32).map(|i| self.point_id(&d.doc_id, i)).collect()).collect();
        let terms: Vec<Arc<DocumentTerms>> = docs.iter().map(|d| Arc::new(document_terms(&d.sparse))).collect();
        let shards = self.shards();
        let previous = {
            let _files = self.files.write();
            place(&self.store).map_err(|e| Error::internal("cannot put documents in place", e))?;
            let mut contents = self.contents.write();
            let mut previous = Vec::with_capacity(docs.len());
            for ((d, point_ids), terms) in docs.iter_mut().zip(&ids).zip(terms) {
                let old = contents.docs.get(&d.doc_id).cloned();
                for id in old.iter().flat_map(|o| &o.point_ids) {
                    contents.points.remove(id);
                }
                if let Some(o) = &old {
                    contents.uncount_terms(&d.doc_id, o, shards);
                }
                for (i, (id, loc)) in point_ids.iter().zip(std::mem::take(&mut d.locations)).enumerate() {
                    contents.points.insert(*id, ChunkRef { doc_id: d.doc_id.clone(), chunk: i as u32, loc });
                }
                let entry = DocEntry {
                    path: d.header.path.clone(),
                    fingerprint: d.header.fingerprint.clone(),
                    point_ids: point_ids.clone(),
                    version: d.header.version,
                    bytes: d.bytes,
                    terms,
                };
                contents.count_terms(&d.doc_id, &entry, shards);
                contents.docs.insert(d.doc_id.clone(), entry);
                previous.push(old);
            }
            self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            previous
        };
        let mut replaced = Vec::with_capacity(docs.len());
        for ((d, point_ids), old) in docs.into_iter().zip(ids).zip(previous) {
            let points = point_ids
                .iter()
                .zip(d.vectors)
                .zip(d.sparse)
                .map(|((&id, vector), sparse)| IndexPoint { id, vector, sparse })
                .collect();
            self.index.upsert(points)?;
            if let Some(old) = &old {
                let keep: HashSet<PointId> = point_ids.iter().copied().collect();
                let stale: Vec<PointId> = old.point_ids.iter().copied().filter(|id| !keep.contains(id)).collect();
                self.index.delete(&stale)?;
            }
            replaced.push(old.is_some());
        }
        self.changes.notify_one();
        Ok(replaced)
    }

    /// Deletes a document held here — its file and its entry together, under `files`, then its
    /// points — unless a version newer than `upto` is held (a tombstone does not delete what came
    /// after it). Returns the entry removed. Callers hold the commit lock.
    pub(crate) async fn remove_document(self: &Arc<Self>, doc_id: &str, upto: Option<u64>) -> Result<Option<DocEntry>> {
        let (coll, id) = (Arc::clone(self), doc_id.to_string());
        tokio::task::spawn_blocking(move || {
            let removed = {
                let _files = coll.files.write();
                let Some(entry) = coll.entry(&id) else { return Ok(None) };
                if upto.is_some_and(|u| entry.version > u) {
                    return Ok(None);
                }
                coll.store.delete_document(&id).map_err(|e| Error::internal("cannot delete a document", e))?;
                let mut contents = coll.contents.write();
                for p in &entry.point_ids {
                    contents.points.remove(p);
                }
                contents.uncount_terms(&id, &entry, coll.shards());
                contents.docs.remove(&id);
                coll.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                entry
            };
            coll.index.delete(&removed.point_ids)?;
            coll.changes.notify_one();
            Ok(Some(removed))
        })
        .await?
    }
}

/// Collection names: 1–64 characters of letters, digits, `-`, `_`, `.`, not starting with `.`
/// (no `.`, `..` or hidden names).
pub fn validate_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadRequest,
            format!(
                "invalid collection name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
            ),
        ))
    }
}
