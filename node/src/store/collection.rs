//! One collection's directory: its sealed metadata and its document files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::document::{self, ChunkLocation, DocumentHeader, LoadedDocument, NewChunk};
use super::{StoreError, io_err, sync_dir};
use crate::crypto::{KeyContext, MasterKey, Purpose, write_private_file};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectionMeta {
    pub name: String,
    /// Hex of the owner's compressed secp256k1 public key.
    pub owner: String,
    pub created_at: u64,
}

/// The files of one collection.
#[derive(Debug, Clone)]
pub struct CollectionStore {
    pub id: String,
    dir: PathBuf,
}

impl CollectionStore {
    fn meta_key(master: &MasterKey, id: &str) -> crate::crypto::DataKey {
        master.derive(&KeyContext::new(Purpose::CollectionMeta, id, "", 0, document::KEY_VERSION))
    }

    /// Creates a new collection directory with a random id.
    pub fn create(master: &MasterKey, root: &Path, meta: &CollectionMeta) -> Result<Self, StoreError> {
        let mut raw = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
            .map_err(|_| crate::crypto::CryptoError::Random)?;
        let id = hex::encode(raw);
        let dir = root.join(&id);
        for d in [dir.join("docs"), dir.join("tmp")] {
            std::fs::create_dir_all(&d).map_err(io_err("cannot create", &d))?;
        }
        let json =
            serde_json::to_vec(meta).map_err(|e| StoreError::Damaged { path: id.clone(), reason: e.to_string() })?;
        let sealed = Self::meta_key(master, &id).seal(&json)?;
        let meta_path = dir.join("meta.sealed");
        write_private_file(&meta_path, &sealed).map_err(io_err("cannot write", &meta_path))?;
        sync_dir(root)?;
        Ok(CollectionStore { id, dir })
    }

    /// Opens an existing collection directory; clears documents left half-written by a crash.
    pub fn open(master: &MasterKey, dir: &Path) -> Result<(Self, CollectionMeta), StoreError> {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let meta_path = dir.join("meta.sealed");
        let sealed = std::fs::read(&meta_path).map_err(io_err("cannot read", &meta_path))?;
        let json = Self::meta_key(master, &id)
            .open(&sealed)
            .map_err(|_| StoreError::Integrity { what: format!("collection metadata {}", meta_path.display()) })?;
        let meta: CollectionMeta = serde_json::from_slice(&json)
            .map_err(|e| StoreError::Damaged { path: meta_path.display().to_string(), reason: e.to_string() })?;
        let tmp = dir.join("tmp");
        if tmp.is_dir() {
            for entry in std::fs::read_dir(&tmp).map_err(io_err("cannot list", &tmp))?.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        } else {
            std::fs::create_dir_all(&tmp).map_err(io_err("cannot create", &tmp))?;
        }
        std::fs::create_dir_all(dir.join("docs")).map_err(io_err("cannot create", dir))?;
        Ok((CollectionStore { id, dir: dir.to_path_buf() }, meta))
    }

    fn grants_key(master: &MasterKey, id: &str) -> crate::crypto::DataKey {
        master.derive(&KeyContext::new(Purpose::Grants, id, "", 0, document::KEY_VERSION))
    }

    /// The subscribers (hex public keys) the owner has granted access; none if never written.
    pub fn read_grants(&self, master: &MasterKey) -> Result<std::collections::BTreeSet<String>, StoreError> {
        let path = self.dir.join("grants.sealed");
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let json = Self::grants_key(master, &self.id)
            .open(&sealed)
            .map_err(|_| StoreError::Integrity { what: format!("access grants {}", path.display()) })?;
        serde_json::from_slice(&json)
            .map_err(|e| StoreError::Damaged { path: path.display().to_string(), reason: e.to_string() })
    }

    /// Replaces the grants atomically (temporary file, sync, rename).
    pub fn write_grants(
        &self,
        master: &MasterKey,
        grants: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_vec(grants)
            .map_err(|e| StoreError::Damaged { path: self.id.clone(), reason: e.to_string() })?;
        let sealed = Self::grants_key(master, &self.id).seal(&json)?;
        let tmp = self.dir.join("tmp").join("grants.sealed.tmp");
        let _ = std::fs::remove_file(&tmp);
        write_private_file(&tmp, &sealed).map_err(io_err("cannot write", &tmp))?;
        let path = self.dir.join("grants.sealed");
        std::fs::rename(&tmp, &path).map_err(io_err("cannot replace", &path))?;
        sync_dir(&self.dir)
    }

    /// Keyed, path-derived document id: stable for a path, reveals nothing about it.
    pub fn document_id(&self, master: &MasterKey, path: &str) -> String {
        let k = master.derive(&KeyContext::new(Purpose::Mac, &self.id, "document-id", 0, document::KEY_VERSION));
        hex::encode(&k.mac(path.as_bytes())[..16])
    }

    /// Keyed fingerprint of a document's text.
    pub fn fingerprint(&self, master: &MasterKey, text: &str) -> String {
        let k = master.derive(&KeyContext::new(Purpose::Mac, &self.id, "fingerprint", 0, document::KEY_VERSION));
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
        master: &MasterKey,
        doc_id: &str,
        header: &DocumentHeader,
        chunks: &[NewChunk<'_>],
    ) -> Result<Vec<ChunkLocation>, StoreError> {
        document::write(master, &self.id, doc_id, header, chunks, &self.dir.join("tmp"), &self.document_path(doc_id))
    }

    pub fn load_document(&self, master: &MasterKey, doc_id: &str) -> Result<LoadedDocument, StoreError> {
        document::load(master, &self.id, doc_id, &self.document_path(doc_id))
    }

    pub fn read_text(
        &self,
        master: &MasterKey,
        doc_id: &str,
        chunk: u32,
        loc: ChunkLocation,
    ) -> Result<zeroize::Zeroizing<String>, StoreError> {
        document::read_text(master, &self.id, doc_id, chunk, &self.document_path(doc_id), loc)
    }

    /// Removes a document durably.
    pub fn delete_document(&self, doc_id: &str) -> Result<(), StoreError> {
        let p = self.document_path(doc_id);
        std::fs::remove_file(&p).map_err(io_err("cannot delete", &p))?;
        sync_dir(&self.dir.join("docs"))
    }
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
