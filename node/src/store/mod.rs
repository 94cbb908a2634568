//! The encrypted store: collections and documents on disk, sealed chunk by chunk.
//!
//! ```text
//! <data>/master.key                          the node's master key (0600)
//! <data>/collections/names/<keyed hash>      which collection id owns a name (sealed; `names.rs`)
//! <data>/collections/<cid>/key.sealed        the collection's own key, sealed under the master key
//! <data>/collections/<cid>/meta.sealed       name, owner, shards, grants version, tombstones (sealed)
//! <data>/collections/<cid>/grants.sealed     subscribers granted access (sealed)
//! <data>/collections/<cid>/docs/<id>.doc     one file per document (format in `document.rs`)
//! <data>/collections/<cid>/tmp/              documents being written or received (`*.part`), batch
//!                                            commit records; finished or cleared on start
//! ```
//! A document is committed by writing it under `tmp/`, syncing it, and renaming it into `docs/`:
//! after a crash it is wholly there or absent. Several documents from one upload (JSON lines) are
//! committed together: all or none (`CollectionStore::commit_staged`). Collection and document ids
//! are random or keyed hashes, so no file name reveals a name or path.

pub mod collection;
pub mod document;
pub mod names;

pub use collection::{CollectionMeta, CollectionStore, StagedDocument};
pub use document::{ChunkLocation, DocumentHeader, LoadedChunk, LoadedDocument, NewChunk};
pub use names::{Claim, NameClaims};

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

impl StoreError {
    /// What a caller may be told about a chunk that cannot be read: never a server path.
    pub fn public_message(&self) -> &'static str {
        match self {
            StoreError::Integrity { .. } | StoreError::Crypto(_) => INTEGRITY_MESSAGE,
            StoreError::Damaged { .. } => "the stored document is damaged",
            StoreError::Io { .. } => "the stored chunk cannot be read (storage error)",
        }
    }
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        crate::error::Error::internal("the encrypted store failed", e)
    }
}

/// The start of the message of a chunk that fails its integrity check.
pub const INTEGRITY_MESSAGE: &str = "integrity check failed: the stored ciphertext was altered";

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
