//! Retrieval: embed the question once (on the asker's turn in the embedder), search every shard of
//! the collection — here, or on the peers that hold it — and merge the answers into the top `k`
//! a single node holding everything would give. Shards no replica answered for are named.
//!
//! The plan of a distributed search (who is asked, failover, the hedge, missing shards) is pure
//! code in [`plan`]; [`Retrieval::search`] only runs what the plan says and tells it what came of
//! it.

pub(crate) mod plan;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use k256::ecdsa::VerifyingKey;
use prag_embedder::Embedder;
use prag_proto::api::{MAX_K, MAX_QUERY_BYTES, QueryRequest, QueryResponse};

use crate::cluster::{Source, StorageNet};
use crate::collections::{Collection, Collections, SearchHits};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use plan::{Launch, SearchPlan, merge};

/// What a search over a collection found, and which shards it could not reach.
#[derive(Debug, Default)]
pub struct Retrieved {
    pub hits: Vec<prag_proto::api::Hit>,
    pub unreadable: Vec<prag_proto::api::ChunkError>,
    pub missing_shards: Vec<u32>,
}

/// The retrieval component.
pub struct Retrieval {
    embedder: Embedder,
    collections: Arc<Collections>,
    network: Arc<dyn StorageNet>,
    metrics: Arc<Metrics>,
}

type Pending = BoxFuture<'static, (Launch, Result<SearchHits>)>;

impl Retrieval {
    pub(crate) fn new(
        embedder: Embedder,
        collections: Arc<Collections>,
        network: Arc<dyn StorageNet>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Retrieval { embedder, collections, network, metrics }
    }

    /// An owner's query of their own collection.
    pub async fn query(&self, caller: &VerifyingKey, collection: &str, req: QueryRequest) -> Result<QueryResponse> {
        let started = Instant::now();
        let coll = self.collections.get(collection)?;
        coll.check_owner(caller)?;
        let tenant = prag_proto::account::public_key_hex(caller);
        let found = self.retrieve(&tenant, &coll, req.text, req.k, req.exact).await?;
        Ok(QueryResponse {
            hits: found.hits,
            unreadable: found.unreadable,
            exact: req.exact,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            partial: !found.missing_shards.is_empty(),
            missing_shards: found.missing_shards,
        })
    }

    /// Checks the question, embeds it on `tenant`'s turn, and searches every shard of `coll`.
    /// Chunks that fail their integrity check come back apart (and are counted).
    pub(crate) async fn retrieve(
        &self,
        tenant: &str,
        coll: &Arc<Collection>,
        text: String,
        k: usize,
        exact: bool,
    ) -> Result<Retrieved> {
        let started = Instant::now();
        check_question(&text, k)?;
        let vector = self
            .embedder
            .embed_for(tenant, vec![text])
            .await
            .map_err(|e| Error::internal("cannot embed the question", e))?
            .pop()
            .ok_or_else(|| Error::internal("the embedder returned no vector", std::io::Error::other("empty")))?;
        let found = self.search(coll, vector, k, exact).await?;
        let altered = found.unreadable.iter().filter(|u| u.error.starts_with(crate::store::INTEGRITY_MESSAGE));
        for u in altered {
            self.metrics.integrity_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(collection = %coll.name(), doc_id = %u.doc_id, chunk = u.chunk, "stored chunk failed its integrity check");
        }
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        self.metrics.query_seconds.observe(started.elapsed().as_secs_f64());
        Ok(found)
    }

    /// Tokens of `text` in the model's tokenizer (what metering counts).
    pub(crate) fn count_tokens(&self, text: &str) -> u64 {
        self.embedder.tokenizer().count_tokens(text).unwrap_or(0) as u64
    }

    /// Searches every shard of `collection` for an already embedded question.
    pub async fn search_vector(&self, collection: &str, vector: Vec<f32>, k: usize, exact: bool) -> Result<Retrieved> {
        let coll = self.collections.get(collection)?;
        self.search(&coll, vector, k, exact).await
    }

    /// Searches every shard of `c`: here alone when this node holds everything, else as the plan
    /// says.
    async fn search(&self, c: &Arc<Collection>, vector: Vec<f32>, k: usize, exact: bool) -> Result<Retrieved> {
        let Some(sources) = self.network.search_sources(c) else {
            let found = local(Arc::clone(c), Arc::new(vector), k, exact, None).await?;
            return Ok(Retrieved { hits: found.hits, unreadable: found.unreadable, missing_shards: Vec::new() });
        };
        let vector = Arc::new(vector);
        let (mut plan, first) = SearchPlan::new(sources);
        let mut pending: FuturesUnordered<Pending> = FuturesUnordered::new();
        let launch = |l: Launch, pending: &mut FuturesUnordered<Pending>| {
            let ask: BoxFuture<'static, Result<SearchHits>> = match l.source {
                Source::Local => {
                    let only: HashSet<u32> = l.shards.iter().copied().collect();
                    Box::pin(local(Arc::clone(c), Arc::clone(&vector), k, exact, Some(only)))
                }
                Source::Peer(peer) => {
                    self.network.ask_search(Arc::clone(c), peer, l.shards.clone(), Arc::clone(&vector), k, exact)
                }
            };
            pending.push(Box::pin(async move { (l, ask.await) }));
        };
        for l in first {
            launch(l, &mut pending);
        }
        let mut answers: Vec<SearchHits> = Vec::new();
        let hedge = tokio::time::sleep(self.network.hedge_after());
        tokio::pin!(hedge);
        while !plan.is_done() {
            tokio::select! {
                Some((l, result)) = pending.next() => match result {
                    Ok(found) => {
                        plan.on_answer(l.source, &l.shards);
                        answers.push(found);
                    }
                    Err(e) => {
                        tracing::warn!(source = ?l.source, error = %e, "a replica failed to answer; asking another");
                        for next in plan.on_failure(l.source, &l.shards) {
                            launch(next, &mut pending);
                        }
                    }
                },
                _ = &mut hedge, if !plan.hedged() => {
                    let more = plan.on_hedge();
                    if !more.is_empty() {
                        self.metrics.hedged_searches.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("hedging a slow search to other replicas");
                    }
                    for next in more {
                        launch(next, &mut pending);
                    }
                }
            }
        }
        let missing = plan.missing();
        if !missing.is_empty() {
            self.metrics.partial_answers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(collection = %c.name(), shards = ?missing, "partial answer: no replica of these shards answered");
        }
        let (mut hits, mut unreadable) = (Vec::new(), Vec::new());
        for a in answers {
            hits.extend(a.hits);
            unreadable.extend(a.unreadable);
        }
        Ok(Retrieved { hits: merge(hits, k), unreadable, missing_shards: missing })
    }
}

/// The search of the chunks held here, on a blocking thread.
async fn local(
    c: Arc<Collection>,
    vector: Arc<Vec<f32>>,
    k: usize,
    exact: bool,
    only: Option<HashSet<u32>>,
) -> Result<SearchHits> {
    tokio::task::spawn_blocking(move || c.search(&vector, k, exact, only.as_ref())).await?
}

/// A question the node will embed: not empty, not huge, a sensible `k`.
pub(crate) fn check_question(text: &str, k: usize) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::bad_request("query text is empty"));
    }
    if text.len() > MAX_QUERY_BYTES {
        return Err(Error::bad_request(format!("query text is longer than {MAX_QUERY_BYTES} bytes")));
    }
    if k == 0 || k > MAX_K {
        return Err(Error::bad_request(format!("k must be between 1 and {MAX_K}")));
    }
    Ok(())
}
