//! The encrypted store: collections and documents on disk, sealed chunk by chunk.
//!
//! ```text
//! <data>/master.key                        the node's master key (0600)
//! <data>/collections/<cid>/meta.sealed     collection name, owner, creation time (sealed)
//! <data>/collections/<cid>/docs/<id>.doc   one file per document (format in `document.rs`)
//! <data>/collections/<cid>/tmp/            documents being written; cleared on start
//! ```
//! A document is committed by writing it under `tmp/`, syncing it, and renaming it into `docs/`:
//! after a crash it is wholly there or absent. Collection and document ids are random or keyed
//! hashes, so no file name reveals a name or path.

pub mod collection;
pub mod document;

pub use collection::{CollectionMeta, CollectionStore};
pub use document::{ChunkLocation, DocumentHeader, LoadedDocument, NewChunk};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("integrity check failed for {what}: the stored ciphertext was altered")]
    Integrity { what: String },
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { action, path: path.display().to_string(), source }
}

/// Syncs a directory so a rename or create inside it is durable.
pub(crate) fn sync_dir(dir: &std::path::Path) -> Result<(), StoreError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("cannot sync directory", dir))
}
