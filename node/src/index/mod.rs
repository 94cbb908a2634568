//! The vector index behind one interface. Ingest and query never name a vector engine: they use
//! [`VectorIndex`]; `edge` runs Qdrant's engine in process, `remote` uses a Qdrant server (vectors
//! rotated by a secret per collection, see `rotation`).
//!
//! The index is derived state: every vector also lives sealed in the store, and the node rebuilds
//! the index from the store at start. The embedded engine keeps its live files on memory-backed
//! storage (`/dev/shm` by default), never in the data directory.

pub mod edge;
pub mod remote;
pub mod rotation;

use std::collections::HashSet;
use std::sync::Arc;

use crate::lexical::SparseVector;

/// A point id: a keyed hash of (collection, document, chunk), stable across restarts.
pub type PointId = u64;

/// A chunk as the index holds it: its id, its dense vector and its keyword vector (keyed term
/// ids, see `crate::lexical`).
#[derive(Debug, Clone)]
pub struct IndexPoint {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub sparse: SparseVector,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("vector index: {0}")]
    Engine(String),
    #[error("vector index directory {path}: {reason}")]
    Dir { path: String, reason: String },
}

impl From<IndexError> for crate::error::Error {
    fn from(e: IndexError) -> Self {
        crate::error::Error::internal("the vector index failed", e)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub points: u64,
    /// Points inside an HNSW graph (the rest are searched by brute force).
    pub indexed: u64,
}

/// Writes to one collection's index.
pub trait IndexWrite {
    fn upsert(&self, points: Vec<IndexPoint>) -> Result<(), IndexError>;
    fn delete(&self, ids: &[PointId]) -> Result<(), IndexError>;
    /// Builds/merges index structures; returns whether anything changed. Slow; run off the
    /// request path.
    fn optimize(&self) -> Result<bool, IndexError>;
    /// Drops every point not in `live` (the store's points after a restart); returns how many.
    /// An index rebuilt empty at each start has nothing to drop.
    fn prune(&self, live: &HashSet<PointId>) -> Result<usize, IndexError> {
        let _ = live;
        Ok(0)
    }
}

/// Reads from one collection's index.
pub trait IndexRead {
    /// Top `k` by cosine similarity, best first. `exact` bypasses the approximate index.
    fn search(&self, vector: &[f32], k: usize, exact: bool) -> Result<Vec<(PointId, f32)>, IndexError>;
    /// Top `k` by the dot product with `query` (BM25 when its weights are IDFs), best first; only
    /// points sharing a term with it.
    fn search_sparse(&self, query: &SparseVector, k: usize) -> Result<Vec<(PointId, f32)>, IndexError>;
    fn stats(&self) -> Result<IndexStats, IndexError>;
}

pub trait VectorIndex: IndexRead + IndexWrite + Send + Sync {}
impl<T: IndexRead + IndexWrite + Send + Sync> VectorIndex for T {}

/// Opens per-collection indexes.
pub trait IndexBackend: Send + Sync {
    fn name(&self) -> String;
    /// Opens (creating if needed) the index of collection `cid` for `dim`-dimensional vectors.
    /// `secret` is the collection's index key (for a backend that transforms what it sends away).
    fn open(&self, cid: &str, dim: usize, secret: &[u8; 32]) -> Result<Arc<dyn VectorIndex>, IndexError>;
}
