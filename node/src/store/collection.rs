//! One collection's directory: its sealed metadata and its document files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::document::{self, ChunkLocation, DocumentHeader, LoadedDocument, NewChunk, Staged};
use super::{StoreError, io_err, sync_dir};
use crate::crypto::{KeyContext, MasterKey, Purpose, write_private_file};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectionMeta {
    pub name: String,
    /// Hex of the owner's compressed secp256k1 public key.
    pub owner: String,
    pub created_at: u64,
    /// Shards the collection is split into (0 in collections made before sharding: one shard).
    #[serde(default)]
    pub shards: u32,
    /// Copies of each shard the network keeps.
    #[serde(default)]
    pub replicas: u32,
    /// When the grants last changed (unix nanoseconds): across replicas, the newest grants win.
    #[serde(default)]
    pub grants_version: u64,
    /// Deleted documents: id → the version deleted. Replicas drop every version up to it.
    #[serde(default)]
    pub tombstones: std::collections::BTreeMap<String, u64>,
}

impl CollectionMeta {
    pub fn shard_count(&self) -> u32 {
        self.shards.max(1)
    }
}

/// The files of one collection, and the collection's key.
///
/// Every collection has its own random 32-byte key, the root of all of its data keys. It is kept
/// in `key.sealed`, sealed under the node's master key, and travels to the peers that hold the
/// collection's shards wrapped to their attested keys, so a document file is the same ciphertext
/// on every node that holds it. Collections written before collection keys existed have no
/// `key.sealed`: their key is the node's master key, and they are never shared.
#[derive(Debug, Clone)]
pub struct CollectionStore {
    pub id: String,
    dir: PathBuf,
    key: Arc<MasterKey>,
    shareable: bool,
}

impl CollectionStore {
    fn meta_key(key: &MasterKey, id: &str) -> crate::crypto::DataKey {
        key.derive(&KeyContext::new(Purpose::CollectionMeta, id, "", 0, document::KEY_VERSION))
    }

    fn key_file_key(master: &MasterKey, id: &str) -> crate::crypto::DataKey {
        master.derive(&KeyContext::new(Purpose::CollectionKey, id, "", 0, document::KEY_VERSION))
    }

    /// Creates a new collection directory with a random id and a random collection key.
    pub fn create(master: &MasterKey, root: &Path, meta: &CollectionMeta) -> Result<Self, StoreError> {
        let key = MasterKey::generate()?;
        Self::create_with(master, root, &Self::new_id()?, key, meta)
    }

    /// A fresh random collection id.
    pub fn new_id() -> Result<String, StoreError> {
        Ok(crate::crypto::random_hex::<16>()?)
    }

    /// Creates the local directory of a collection first made elsewhere: same id, same key.
    pub fn create_with(
        master: &MasterKey,
        root: &Path,
        id: &str,
        key: MasterKey,
        meta: &CollectionMeta,
    ) -> Result<Self, StoreError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Damaged { path: id.to_string(), reason: "collection ids are hex".into() });
        }
        let dir = root.join(id);
        let tmp = dir.join("tmp");
        for d in [dir.join("docs"), tmp.clone()] {
            std::fs::create_dir_all(&d).map_err(io_err("cannot create", &d))?;
        }
        let store = CollectionStore { id: id.to_string(), dir: dir.clone(), key: Arc::new(key), shareable: true };
        let sealed_key = Self::key_file_key(master, id).seal(store.key.secret_bytes())?;
        store.replace_file("key.sealed", &sealed_key)?;
        store.write_meta(meta)?;
        sync_dir(root)?;
        Ok(store)
    }

    /// Opens an existing collection directory; clears documents left half-written by a crash.
    pub fn open(master: &MasterKey, dir: &Path) -> Result<(Self, CollectionMeta), StoreError> {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let key_path = dir.join("key.sealed");
        let (key, shareable) = match std::fs::read(&key_path) {
            Ok(sealed) => {
                let raw = Self::key_file_key(master, &id)
                    .open(&sealed)
                    .map_err(|_| StoreError::Integrity { what: format!("collection key {}", key_path.display()) })?;
                let bytes: [u8; 32] = raw[..].try_into().map_err(|_| StoreError::Damaged {
                    path: key_path.display().to_string(),
                    reason: "a collection key is 32 bytes".into(),
                })?;
                (MasterKey::from_bytes(bytes), true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (master.duplicate(), false),
            Err(e) => return Err(io_err("cannot read", &key_path)(e)),
        };
        let meta_path = dir.join("meta.sealed");
        let sealed = std::fs::read(&meta_path).map_err(io_err("cannot read", &meta_path))?;
        let json = Self::meta_key(&key, &id)
            .open(&sealed)
            .map_err(|_| StoreError::Integrity { what: format!("collection metadata {}", meta_path.display()) })?;
        let meta: CollectionMeta = serde_json::from_slice(&json)
            .map_err(|e| StoreError::Damaged { path: meta_path.display().to_string(), reason: e.to_string() })?;
        std::fs::create_dir_all(dir.join("docs")).map_err(io_err("cannot create", dir))?;
        let store = CollectionStore { id, dir: dir.to_path_buf(), key: Arc::new(key), shareable };
        let tmp = dir.join("tmp");
        if tmp.is_dir() {
            // A batch whose commit record was written is finished; anything else in tmp/ was never
            // committed and goes.
            store.roll_forward_batches()?;
            for entry in std::fs::read_dir(&tmp).map_err(io_err("cannot list", &tmp))?.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        } else {
            std::fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
        }
        Ok((store, meta))
    }

    /// The collection's key: the root of its data keys.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// Whether the collection may be replicated (it has a key of its own).
    pub fn shareable(&self) -> bool {
        self.shareable
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the sealed metadata atomically.
    pub fn write_meta(&self, meta: &CollectionMeta) -> Result<(), StoreError> {
        let json = serde_json::to_vec(meta)
            .map_err(|e| StoreError::Damaged { path: self.id.clone(), reason: e.to_string() })?;
        let sealed = Self::meta_key(&self.key, &self.id).seal(&json)?;
        self.replace_file("meta.sealed", &sealed)
    }

    /// Writes `name` in the collection directory atomically (temporary file, sync, rename), 0600.
    fn replace_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = self.dir.join("tmp").join(format!("{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        write_private_file(&tmp, bytes).map_err(io_err("cannot write", &tmp))?;
        let path = self.dir.join(name);
        std::fs::rename(&tmp, &path).map_err(io_err("cannot replace", &path))?;
        sync_dir(&self.dir)
    }

    fn grants_key(master: &MasterKey, id: &str) -> crate::crypto::DataKey {
        master.derive(&KeyContext::new(Purpose::Grants, id, "", 0, document::KEY_VERSION))
    }

    /// The subscribers (hex public keys) the owner has granted access; none if never written.
    pub fn read_grants(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let path = self.dir.join("grants.sealed");
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let json = Self::grants_key(&self.key, &self.id)
            .open(&sealed)
            .map_err(|_| StoreError::Integrity { what: format!("access grants {}", path.display()) })?;
        serde_json::from_slice(&json)
            .map_err(|e| StoreError::Damaged { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Replaces the grants atomically.
    pub fn write_grants(&self, grants: &std::collections::BTreeSet<String>) -> Result<(), StoreError> {
        let json = serde_json::to_vec(grants)
            .map_err(|e| StoreError::Damaged { path: self.id.clone(), reason: e.to_string() })?;
        let sealed = Self::grants_key(&self.key, &self.id).seal(&json)?;
        self.replace_file("grants.sealed", &sealed)
    }

    /// Keyed, path-derived document id: stable for a path, reveals nothing about it.
    pub fn document_id(&self, path: &str) -> String {
        let k = self.key.derive(&KeyContext::new(Purpose::Mac, &self.id, "document-id", 0, document::KEY_VERSION));
        hex::encode(&k.mac(path.as_bytes())[..16])
    }

    /// Keyed fingerprint of a document's text.
    pub fn fingerprint(&self, text: &str) -> String {
        let k = self.key.derive(&KeyContext::new(Purpose::Mac, &self.id, "fingerprint", 0, document::KEY_VERSION));
        hex::encode(k.mac(text.as_bytes()))
    }

    pub fn document_path(&self, doc_id: &str) -> PathBuf {
        self.dir.join("docs").join(format!("{doc_id}.doc"))
    }

    /// Ids of every committed document.
    pub fn document_ids(&self) -> Result<Vec<String>, StoreError> {
        let docs = self.dir.join("docs");
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&docs).map_err(io_err("cannot list", &docs))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".doc") {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub fn write_document(
        &self,
        doc_id: &str,
        header: &DocumentHeader,
        chunks: &[NewChunk<'_>],
    ) -> Result<Vec<ChunkLocation>, StoreError> {
        document::write(&self.key, &self.id, doc_id, header, chunks, &self.dir.join("tmp"), &self.document_path(doc_id))
    }

    /// Writes a document's file under `tmp/` and syncs it; [`commit_staged`](Self::commit_staged)
    /// puts it in place.
    pub fn stage_document(
        &self,
        doc_id: &str,
        header: &DocumentHeader,
        chunks: &[NewChunk<'_>],
    ) -> Result<StagedDocument, StoreError> {
        let tmp = self.dir.join("tmp").join(format!("{doc_id}.{}.stage", crate::crypto::random_hex::<8>()?));
        let staged = document::stage(&self.key, &self.id, doc_id, header, chunks, &tmp)?;
        Ok(StagedDocument { doc_id: doc_id.to_string(), staged })
    }

    /// Puts staged documents in place, all or none across a crash: with more than one, a commit
    /// record naming them is written (synced and renamed into place) first, and a node that dies
    /// part-way finishes the renames when it next opens the collection; without the record, the
    /// staged files are discarded at open.
    pub fn commit_staged(&self, docs: &[StagedDocument]) -> Result<(), StoreError> {
        let tmp_dir = self.dir.join("tmp");
        let record = if docs.len() > 1 {
            let names: Vec<(&str, String)> = docs
                .iter()
                .map(|d| {
                    let name = d.staged.tmp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    (d.doc_id.as_str(), name)
                })
                .collect();
            let json = serde_json::to_vec(&names)
                .map_err(|e| StoreError::Damaged { path: self.id.clone(), reason: e.to_string() })?;
            let tag = crate::crypto::random_hex::<8>()?;
            let pending = tmp_dir.join(format!("batch-{tag}.pending"));
            let record = tmp_dir.join(format!("batch-{tag}.commit"));
            write_private_file(&pending, &json).map_err(io_err("cannot write", &pending))?;
            std::fs::rename(&pending, &record).map_err(io_err("cannot commit", &record))?;
            sync_dir(&tmp_dir)?;
            Some(record)
        } else {
            None
        };
        for d in docs {
            let dest = self.document_path(&d.doc_id);
            std::fs::rename(&d.staged.tmp, &dest).map_err(io_err("cannot commit", &dest))?;
        }
        sync_dir(&self.dir.join("docs"))?;
        if let Some(record) = record {
            std::fs::remove_file(&record).map_err(io_err("cannot remove", &record))?;
        }
        Ok(())
    }

    /// Removes staged files that will not be committed.
    pub fn discard_staged(&self, docs: &[StagedDocument]) {
        for d in docs {
            let _ = std::fs::remove_file(&d.staged.tmp);
        }
    }

    /// Finishes the renames of batches whose commit record exists (see `commit_staged`).
    fn roll_forward_batches(&self) -> Result<(), StoreError> {
        let tmp_dir = self.dir.join("tmp");
        for entry in std::fs::read_dir(&tmp_dir).map_err(io_err("cannot list", &tmp_dir))?.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(".commit") {
                continue;
            }
            let names: Vec<(String, String)> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| StoreError::Damaged { path: path.display().to_string(), reason: "unreadable".into() })?;
            for (doc_id, file) in names {
                let valid =
                    doc_id.bytes().all(|b| b.is_ascii_hexdigit()) && !file.contains('/') && !file.starts_with('.');
                let staged = tmp_dir.join(&file);
                if valid && staged.is_file() {
                    let dest = self.document_path(&doc_id);
                    std::fs::rename(&staged, &dest).map_err(io_err("cannot commit", &dest))?;
                }
            }
            sync_dir(&self.dir.join("docs"))?;
            std::fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
            tracing::info!(collection = %self.id, "finished a batch of documents committed before a crash");
        }
        Ok(())
    }

    /// The key that turns this collection's terms into ids (the same on every replica).
    pub fn term_key(&self) -> crate::lexical::TermKey {
        crate::lexical::TermKey::of_collection(&self.key, &self.id)
    }

    pub fn load_document(&self, doc_id: &str) -> Result<LoadedDocument, StoreError> {
        document::load(&self.key, &self.id, doc_id, &self.document_path(doc_id))
    }

    pub fn read_text(
        &self,
        doc_id: &str,
        chunk: u32,
        loc: ChunkLocation,
    ) -> Result<zeroize::Zeroizing<String>, StoreError> {
        document::read_text(&self.key, &self.id, doc_id, chunk, &self.document_path(doc_id), loc)
    }

    /// Where a document being received at `version` is assembled.
    pub fn part_path(&self, doc_id: &str, version: u64) -> PathBuf {
        self.dir.join("tmp").join(format!("{doc_id}.{version}.part"))
    }

    /// Checks a received document file completely — header, every vector and every text open
    /// under the collection key, the version is the one asked for. A file that fails is deleted;
    /// one that passes is put in place with [`place_replica`](Self::place_replica).
    pub fn verify_replica(&self, doc_id: &str, part: &Path, version: u64) -> Result<LoadedDocument, StoreError> {
        let check = || -> Result<LoadedDocument, StoreError> {
            std::fs::File::open(part).and_then(|f| f.sync_all()).map_err(io_err("cannot sync", part))?;
            let loaded = document::load_checked(&self.key, &self.id, doc_id, part, true)?;
            if loaded.header.version != version {
                return Err(StoreError::Damaged {
                    path: part.display().to_string(),
                    reason: format!("version {} where {version} was asked for", loaded.header.version),
                });
            }
            if let Some(Err(e)) = loaded.chunks.iter().find(|c| c.is_err()) {
                return Err(StoreError::Damaged { path: part.display().to_string(), reason: e.to_string() });
            }
            Ok(loaded)
        };
        check().inspect_err(|_| {
            let _ = std::fs::remove_file(part);
        })
    }

    /// Moves a verified received file into place.
    pub fn place_replica(&self, doc_id: &str, part: &Path) -> Result<(), StoreError> {
        let dest = self.document_path(doc_id);
        std::fs::rename(part, &dest).map_err(io_err("cannot commit", &dest))?;
        sync_dir(&self.dir.join("docs"))
    }

    /// Removes a document durably.
    pub fn delete_document(&self, doc_id: &str) -> Result<(), StoreError> {
        let p = self.document_path(doc_id);
        std::fs::remove_file(&p).map_err(io_err("cannot delete", &p))?;
        sync_dir(&self.dir.join("docs"))
    }
}

/// A document file staged by [`CollectionStore::stage_document`].
#[derive(Debug)]
pub struct StagedDocument {
    pub doc_id: String,
    pub staged: Staged,
}

/// Lists collection directories under `root`.
pub fn list_dirs(root: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err("cannot list", root))?.flatten() {
        if entry.path().join("meta.sealed").is_file() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}
