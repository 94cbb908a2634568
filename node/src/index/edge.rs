//! Qdrant's engine in process (`qdrant-edge`): one `EdgeShard` per collection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParamsBuilder,
    EdgeVectorParamsBuilder, NamedQuery, PointId as QPointId, PointInsertOperations, PointOperations,
    PointStructPersisted, QueryEnum, QueryRequest, ScoringQuery, SearchParams, SparseVector as QSparseVector,
    UpdateOperation, VectorInternal, VectorPersisted, VectorStructPersisted,
};

use super::{IndexBackend, IndexError, IndexPoint, IndexRead, IndexStats, IndexWrite, PointId, VectorIndex};
use crate::lexical::SparseVector;

/// The name of the keyword vector in the engine. No IDF modifier: the node weights the question
/// by IDF itself, over the shards it searches, so a distributed search scores as one node would.
pub(crate) const SPARSE_NAME: &str = "prag-terms";

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
}

/// The embedded index's default directory: memory-backed (`/dev/shm`), named after the data
/// directory and this process, so a restarted node wipes what a killed one left (and the killed
/// one's janitor never touches the new one's).
pub fn default_dir(data: &Path) -> Result<PathBuf, IndexError> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return Err(IndexError::Dir {
            path: shm.display().to_string(),
            reason: "no /dev/shm on this machine: the embedded index keeps vectors in plain files, so it needs \
                     memory-backed storage; pass --index-dir DIR on a tmpfs"
                .into(),
        });
    }
    let canonical = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    let tag = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_encoded_bytes())[..8]);
    let prefix = format!("prag-index-{tag}");
    if let Ok(entries) = std::fs::read_dir(shm) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == prefix || name.starts_with(&format!("{prefix}-")) {
                tracing::info!(dir = %e.path().display(), "removing the index files a previous run left");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(shm.join(format!("{prefix}-{}", std::process::id())))
}

/// Starts `prag internal-janitor`, which removes `dir` when this process's end of its stdin pipe
/// closes — that is, when this process exits in any way, SIGKILL and abort included.
pub fn start_janitor(exe: &Path, dir: &Path) -> Option<tokio::process::Child> {
    use std::process::Stdio;
    let child = tokio::process::Command::new(exe)
        .arg("internal-janitor")
        .arg("--dir")
        .arg(dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C meant for the node must not end it first.
        .process_group(0)
        .spawn();
    match child {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the index janitor; after a crash the index files stay until the next start");
            None
        }
    }
}

/// The janitor's side: waits for its stdin to close (the node exited, however), then removes the
/// index directory — only a directory the node made (`/dev/shm/prag-index-…`, or one holding only
/// collection indexes).
pub fn run_janitor(dir: &Path) {
    use std::io::Read;
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    let named = dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("prag-index-"));
    if named || is_index_dir(dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Whether every entry of `dir` is a collection index (a hex-named directory).
fn is_index_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().all(|e| {
            e.file_type().is_ok_and(|t| t.is_dir())
                && e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
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
            .sparse_vector(SPARSE_NAME, EdgeSparseVectorParamsBuilder::new().build())
            .build();
        let shard = EdgeShard::new(&path, config).map_err(engine)?;
        Ok(Arc::new(EdgeIndex { shard }))
    }
}

pub struct EdgeIndex {
    shard: EdgeShard,
}

impl EdgeIndex {
    fn run(&self, request: QueryRequest) -> Result<Vec<(PointId, f32)>, IndexError> {
        let hits = self.shard.query(request).map_err(engine)?;
        Ok(hits
            .into_iter()
            .filter_map(|p| match p.id {
                QPointId::NumId(id) => Some((id, p.score)),
                _ => None,
            })
            .collect())
    }
}

impl IndexWrite for EdgeIndex {
    fn upsert(&self, points: Vec<IndexPoint>) -> Result<(), IndexError> {
        if points.is_empty() {
            return Ok(());
        }
        let points = points
            .into_iter()
            .map(|p| {
                let mut named = std::collections::HashMap::new();
                named.insert(DEFAULT_VECTOR_NAME.into(), VectorPersisted::Dense(p.vector));
                if !p.sparse.is_empty() {
                    let sparse = QSparseVector { indices: p.sparse.indices, values: p.sparse.values };
                    named.insert(SPARSE_NAME.into(), VectorPersisted::Sparse(sparse));
                }
                PointStructPersisted {
                    id: QPointId::NumId(p.id),
                    vector: VectorStructPersisted::Named(named),
                    payload: None,
                }
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
        self.run(request)
    }

    fn search_sparse(&self, query: &SparseVector, k: usize) -> Result<Vec<(PointId, f32)>, IndexError> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let sparse = QSparseVector { indices: query.indices.clone(), values: query.values.clone() };
        let mut request = QueryRequest::new(k);
        request.query = Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
            VectorInternal::Sparse(sparse),
            SPARSE_NAME,
        ))));
        self.run(request)
    }

    fn stats(&self) -> Result<IndexStats, IndexError> {
        let info = self.shard.info().map_err(engine)?;
        Ok(IndexStats { points: info.points_count as u64, indexed: info.indexed_vectors_count as u64 })
    }
}
