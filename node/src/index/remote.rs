//! A Qdrant server as the index (`--index qdrant=URL`), through `qdrant-client` over gRPC.
//!
//! What leaves the node: point ids (keyed hashes, meaningless without the master key), vectors
//! rotated by the collection's [`SecretRotation`], keyword vectors (keyed term ids with their
//! weights: the server can see how often an unknown id occurs, never which word it stands for),
//! and nothing else: points carry no payload (chunk
//! text stays sealed in the local store and is read from there). The server's collection is named
//! `prag-<collection id>`, where the id is itself a keyed hash, so collection names stay private.
//!
//! The index traits are synchronous (the node calls them from blocking threads); each call here runs
//! its request on the node's runtime and waits for it.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, DeletePointsBuilder, Distance, NamedVectors, PointStruct, PointsIdsList, Query,
    QueryPointsBuilder, ScrollPointsBuilder, SearchParamsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, UpdateCollectionBuilder, UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder,
};

use super::edge::SPARSE_NAME;
use super::rotation::SecretRotation;
use super::{IndexBackend, IndexError, IndexPoint, IndexRead, IndexStats, IndexWrite, PointId, VectorIndex};
use crate::lexical::SparseVector;

/// The server's keyword-vector configuration: one sparse vector, no IDF modifier (the node sends
/// the question's IDF weights itself; term ids are keyed hashes, see `crate::lexical`).
fn sparse_config() -> SparseVectorsConfigBuilder {
    let mut config = SparseVectorsConfigBuilder::default();
    config.add_named_vector_params(SPARSE_NAME, SparseVectorParamsBuilder::default());
    config
}

/// Points per upsert request: 512 × 384 floats ≈ 0.8 MB, well under gRPC message limits.
const UPSERT_BATCH: usize = 512;
const SCROLL_PAGE: u32 = 4096;

fn engine(url: &str, e: impl std::fmt::Display) -> IndexError {
    IndexError::Engine(format!("Qdrant server at {url}: {e}"))
}

/// Collections in one Qdrant server.
pub struct RemoteBackend {
    client: Arc<Qdrant>,
    url: String,
    runtime: tokio::runtime::Handle,
}

impl RemoteBackend {
    /// Connects to the server at `url` (its gRPC port, e.g. `http://127.0.0.1:6334`) and checks
    /// that it answers. Must be called inside the node's Tokio runtime.
    pub async fn connect(url: &str, api_key: Option<&str>) -> Result<Self, IndexError> {
        let mut builder = Qdrant::from_url(url)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .skip_compatibility_check();
        if let Some(key) = api_key {
            builder = builder.api_key(key.to_string());
        }
        let client = builder.build().map_err(|e| engine(url, e))?;
        client.health_check().await.map_err(|e| engine(url, format!("does not answer: {e}")))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| IndexError::Engine("the remote index needs a Tokio runtime".into()))?;
        Ok(RemoteBackend { client: Arc::new(client), url: url.to_string(), runtime })
    }
}

/// Runs `fut` on `runtime` and waits for it, from a blocking thread or (moving out of the worker
/// first) from inside the runtime.
fn wait<T>(runtime: &tokio::runtime::Handle, fut: impl Future<Output = T>) -> T {
    let in_multi_thread_worker = tokio::runtime::Handle::try_current()
        .map(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .unwrap_or(false);
    if in_multi_thread_worker { tokio::task::block_in_place(|| runtime.block_on(fut)) } else { runtime.block_on(fut) }
}

impl IndexBackend for RemoteBackend {
    fn name(&self) -> String {
        format!("remote Qdrant server ({}), vectors rotated", self.url)
    }

    fn open(&self, cid: &str, dim: usize, secret: &[u8; 32]) -> Result<Arc<dyn VectorIndex>, IndexError> {
        let name = format!("prag-{cid}");
        let client = Arc::clone(&self.client);
        let url = self.url.clone();
        wait(&self.runtime, async {
            let exists = client.collection_exists(&name).await.map_err(|e| engine(&url, e))?;
            if !exists {
                client
                    .create_collection(
                        CreateCollectionBuilder::new(&name)
                            .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine))
                            .sparse_vectors_config(sparse_config()),
                    )
                    .await
                    .map_err(|e| engine(&url, format!("cannot create collection {name}: {e}")))?;
            } else {
                // A collection made before keyword search: give it the sparse vector.
                let info = client.collection_info(&name).await.map_err(|e| engine(&url, e))?;
                let has_sparse = info
                    .result
                    .and_then(|r| r.config)
                    .and_then(|c| c.params)
                    .and_then(|p| p.sparse_vectors_config)
                    .is_some_and(|s| s.map.contains_key(SPARSE_NAME));
                if !has_sparse {
                    client
                        .update_collection(UpdateCollectionBuilder::new(&name).sparse_vectors_config(sparse_config()))
                        .await
                        .map_err(|e| engine(&url, format!("cannot add keyword vectors to collection {name}: {e}")))?;
                }
            }
            Ok::<_, IndexError>(())
        })?;
        Ok(Arc::new(RemoteIndex {
            client: Arc::clone(&self.client),
            runtime: self.runtime.clone(),
            url: self.url.clone(),
            name,
            rotation: SecretRotation::derive(secret, dim),
        }))
    }
}

pub struct RemoteIndex {
    client: Arc<Qdrant>,
    runtime: tokio::runtime::Handle,
    url: String,
    name: String,
    rotation: SecretRotation,
}

impl RemoteIndex {
    fn err(&self, e: impl std::fmt::Display) -> IndexError {
        engine(&self.url, e)
    }

    /// Every point id the server holds for this collection.
    fn remote_ids(&self) -> Result<HashSet<PointId>, IndexError> {
        wait(&self.runtime, async {
            let mut ids = HashSet::new();
            let mut offset = None;
            loop {
                let mut request =
                    ScrollPointsBuilder::new(&self.name).limit(SCROLL_PAGE).with_payload(false).with_vectors(false);
                if let Some(o) = offset.take() {
                    request = request.offset(o);
                }
                let page = self.client.scroll(request).await.map_err(|e| self.err(e))?;
                ids.extend(page.result.iter().filter_map(|p| num_id(p.id.as_ref())));
                match page.next_page_offset {
                    Some(next) => offset = Some(next),
                    None => return Ok(ids),
                }
            }
        })
    }
}

fn num_id(id: Option<&qdrant_client::qdrant::PointId>) -> Option<PointId> {
    match id?.point_id_options.as_ref()? {
        PointIdOptions::Num(n) => Some(*n),
        PointIdOptions::Uuid(_) => None,
    }
}

impl IndexWrite for RemoteIndex {
    fn upsert(&self, points: Vec<IndexPoint>) -> Result<(), IndexError> {
        for batch in points.chunks(UPSERT_BATCH) {
            let structs: Vec<PointStruct> = batch
                .iter()
                .map(|p| {
                    let mut vectors = NamedVectors::default().add_vector("", self.rotation.apply(&p.vector));
                    if !p.sparse.is_empty() {
                        vectors = vectors.add_vector(
                            SPARSE_NAME,
                            Vector::new_sparse(p.sparse.indices.clone(), p.sparse.values.clone()),
                        );
                    }
                    PointStruct::new(p.id, vectors, qdrant_client::Payload::new())
                })
                .collect();
            wait(&self.runtime, self.client.upsert_points(UpsertPointsBuilder::new(&self.name, structs).wait(true)))
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn delete(&self, ids: &[PointId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = PointsIdsList { ids: ids.iter().map(|&i| i.into()).collect() };
        wait(&self.runtime, self.client.delete_points(DeletePointsBuilder::new(&self.name).points(list).wait(true)))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The server runs its own optimizers.
    fn optimize(&self) -> Result<bool, IndexError> {
        Ok(false)
    }

    /// Removes what the server holds beyond `live`: points of documents deleted or replaced while
    /// an earlier run of this node was cut off between its store commit and the index update.
    fn prune(&self, live: &HashSet<PointId>) -> Result<usize, IndexError> {
        let stale: Vec<PointId> = self.remote_ids()?.into_iter().filter(|id| !live.contains(id)).collect();
        self.delete(&stale)?;
        Ok(stale.len())
    }
}

impl IndexRead for RemoteIndex {
    fn search(&self, vector: &[f32], k: usize, exact: bool) -> Result<Vec<(PointId, f32)>, IndexError> {
        let request = QueryPointsBuilder::new(&self.name)
            .query(Query::new_nearest(self.rotation.apply(vector)))
            .limit(k as u64)
            .params(SearchParamsBuilder::default().exact(exact));
        let found = wait(&self.runtime, self.client.query(request)).map_err(|e| self.err(e))?;
        Ok(found.result.iter().filter_map(|p| Some((num_id(p.id.as_ref())?, p.score))).collect())
    }

    fn search_sparse(&self, query: &SparseVector, k: usize) -> Result<Vec<(PointId, f32)>, IndexError> {
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let request = QueryPointsBuilder::new(&self.name)
            .query(Query::new_nearest(VectorInput::new_sparse(query.indices.clone(), query.values.clone())))
            .using(SPARSE_NAME)
            .limit(k as u64);
        let found = wait(&self.runtime, self.client.query(request)).map_err(|e| self.err(e))?;
        Ok(found.result.iter().filter_map(|p| Some((num_id(p.id.as_ref())?, p.score))).collect())
    }

    fn stats(&self) -> Result<IndexStats, IndexError> {
        let info = wait(&self.runtime, self.client.collection_info(&self.name)).map_err(|e| self.err(e))?;
        let info = info.result.unwrap_or_default();
        Ok(IndexStats { points: info.points_count.unwrap_or(0), indexed: info.indexed_vectors_count.unwrap_or(0) })
    }
}
