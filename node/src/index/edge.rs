//! Qdrant's engine in process (`qdrant-edge`): one `EdgeShard` per collection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, NamedQuery,
    PointId as QPointId, PointInsertOperations, PointOperations, PointStructPersisted, QueryEnum, QueryRequest,
    ScoringQuery, SearchParams, UpdateOperation, VectorInternal, VectorStructPersisted,
};

use super::{IndexBackend, IndexError, IndexRead, IndexStats, IndexWrite, PointId, VectorIndex};

fn engine(e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(e.to_string())
}

/// Embedded indexes under `root`, a directory this backend owns: it is wiped at start (the index
/// is rebuilt from the encrypted store) and removed when the backend is dropped.
pub struct EdgeBackend {
    root: PathBuf,
}

impl EdgeBackend {
    /// `root` must be on memory-backed storage unless the operator chose otherwise.
    pub fn new(root: &Path) -> Result<Self, IndexError> {
        let err = |reason: String| IndexError::Dir { path: root.display().to_string(), reason };
        if root.exists() {
            std::fs::remove_dir_all(root).map_err(|e| err(e.to_string()))?;
        }
        std::fs::create_dir_all(root).map_err(|e| err(e.to_string()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).map_err(|e| err(e.to_string()))?;
        }
        Ok(EdgeBackend { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for EdgeBackend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl IndexBackend for EdgeBackend {
    fn name(&self) -> String {
        format!("embedded qdrant-edge ({})", self.root.display())
    }

    fn open(&self, cid: &str, dim: usize, _secret: &[u8; 32]) -> Result<Arc<dyn VectorIndex>, IndexError> {
        let path = self.root.join(cid);
        std::fs::create_dir_all(&path)
            .map_err(|e| IndexError::Dir { path: path.display().to_string(), reason: e.to_string() })?;
        let config = EdgeConfigBuilder::new()
            .vector(DEFAULT_VECTOR_NAME, EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build())
            .build();
        let shard = EdgeShard::new(&path, config).map_err(engine)?;
        Ok(Arc::new(EdgeIndex { shard }))
    }
}

pub struct EdgeIndex {
    shard: EdgeShard,
}

impl IndexWrite for EdgeIndex {
    fn upsert(&self, points: Vec<(PointId, Vec<f32>)>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(|(id, v)| PointStructPersisted {
                id: QPointId::NumId(id),
                vector: VectorStructPersisted::Single(v),
                payload: None,
            })
            .collect();
        self.shard
            .update(UpdateOperation::PointOperation(PointOperations::UpsertPoints(PointInsertOperations::PointsList(
                points,
            ))))
            .map_err(engine)
    }

    fn delete(&self, ids: &[PointId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.iter().map(|&i| QPointId::NumId(i)).collect();
        self.shard.update(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids })).map_err(engine)
    }

    fn optimize(&self) -> Result<bool, IndexError> {
        self.shard.optimize().map_err(engine)
    }
}

impl IndexRead for EdgeIndex {
    fn search(&self, vector: &[f32], k: usize, exact: bool) -> Result<Vec<(PointId, f32)>, IndexError> {
        let mut request = QueryRequest::new(k);
        request.query = Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
            VectorInternal::from(vector.to_vec()),
            DEFAULT_VECTOR_NAME,
        ))));
        request.params = Some(SearchParams { exact, ..Default::default() });
        let hits = self.shard.query(request).map_err(engine)?;
        Ok(hits
            .into_iter()
            .filter_map(|p| match p.id {
                QPointId::NumId(id) => Some((id, p.score)),
                _ => None,
            })
            .collect())
    }

    fn stats(&self) -> Result<IndexStats, IndexError> {
        let info = self.shard.info().map_err(engine)?;
        Ok(IndexStats { points: info.points_count as u64, indexed: info.indexed_vectors_count as u64 })
    }
}
