//! Retrieval: embed the question once (on the asker's turn in the embedder), search every shard of
//! the collection — here, or on the peers that hold it — and merge the answers into the top `k`
//! a single node holding everything would give. Shards no replica answered for are named.
//!
//! The plan of a distributed search (who is asked, failover, the hedge, missing shards) is pure
//! code in [`plan`]; [`Retrieval::search`] only runs what the plan says and tells it what came of
//! it.

pub(crate) mod fusion;
pub(crate) mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use k256::ecdsa::VerifyingKey;
use prag_embedder::Embedder;
use prag_proto::api::{Hit, MAX_K, MAX_QUERY_BYTES, QueryRequest, QueryResponse, SearchMode};

use crate::cluster::{Source, StorageNet};
use crate::collections::{Collection, Collections, ShardQuery};
use crate::error::{Error, Result};
use crate::index::PointId;
use crate::lexical::{SparseVector, query_vector};
use crate::metrics::Metrics;
use plan::{Launch, SearchPlan, merge};

/// What a search over a collection found, and which shards it could not reach.
#[derive(Debug, Default)]
pub struct Retrieved {
    pub hits: Vec<prag_proto::api::Hit>,
    pub unreadable: Vec<prag_proto::api::ChunkError>,
    pub missing_shards: Vec<u32>,
}

/// A question ready to search: its vector (empty in keyword mode) and its keyed term ids (empty
/// in dense mode).
#[derive(Debug, Clone)]
pub(crate) struct Question {
    pub vector: Vec<f32>,
    pub terms: Vec<u32>,
    pub k: usize,
    pub exact: bool,
    pub mode: SearchMode,
}

impl Question {
    /// How deep each ranking is taken: the answer's `k`, or deeper when two are fused.
    fn depth(&self) -> usize {
        if self.mode == SearchMode::Hybrid { fusion::depth(self.k) } else { self.k }
    }
}

/// The retrieval component.
pub struct Retrieval {
    embedder: Embedder,
    collections: Arc<Collections>,
    network: Arc<dyn StorageNet>,
    metrics: Arc<Metrics>,
}

type Pending<T> = BoxFuture<'static, (Launch, Result<T>)>;

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
        let found = self.retrieve(&tenant, &coll, req.text, req.k, req.exact, req.mode).await?;
        Ok(QueryResponse {
            hits: found.hits,
            unreadable: found.unreadable,
            exact: req.exact,
            mode: req.mode,
            took_ms: started.elapsed().as_secs_f64() * 1e3,
            partial: !found.missing_shards.is_empty(),
            missing_shards: found.missing_shards,
        })
    }

    /// Checks the question, embeds it on `tenant`'s turn (unless the mode is keywords only),
    /// hashes its terms (unless dense only), and searches every shard of `coll`. Chunks that fail
    /// their integrity check come back apart (and are counted).
    pub(crate) async fn retrieve(
        &self,
        tenant: &str,
        coll: &Arc<Collection>,
        text: String,
        k: usize,
        exact: bool,
        mode: SearchMode,
    ) -> Result<Retrieved> {
        let started = Instant::now();
        check_question(&text, k)?;
        let terms = if mode.uses_sparse() { coll.term_key().query_terms(&text) } else { Vec::new() };
        let vector = if mode.uses_dense() {
            self.embedder
                .embed_for(tenant, vec![text])
                .await
                .map_err(|e| Error::internal("cannot embed the question", e))?
                .pop()
                .ok_or_else(|| Error::internal("the embedder returned no vector", std::io::Error::other("empty")))?
        } else {
            Vec::new()
        };
        let found = self.search(coll, Question { vector, terms, k, exact, mode }).await?;
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

    /// Searches every shard of `collection` for an already embedded question (dense ranking).
    pub async fn search_vector(&self, collection: &str, vector: Vec<f32>, k: usize, exact: bool) -> Result<Retrieved> {
        let coll = self.collections.get(collection)?;
        self.search(&coll, Question { vector, terms: Vec::new(), k, exact, mode: SearchMode::Dense }).await
    }

    /// Searches every shard of `collection` for a question already embedded as `vector` (unused
    /// in keyword mode), whose `text` gives the keywords: a query without the model's time, for
    /// benchmarks.
    pub async fn search_prepared(
        &self,
        collection: &str,
        text: &str,
        vector: Vec<f32>,
        k: usize,
        exact: bool,
        mode: SearchMode,
    ) -> Result<Retrieved> {
        let coll = self.collections.get(collection)?;
        let terms = if mode.uses_sparse() { coll.term_key().query_terms(text) } else { Vec::new() };
        self.search(&coll, Question { vector, terms, k, exact, mode }).await
    }

    /// Searches every shard of `c`: here alone when this node holds everything, else as the plan
    /// says — first the term counts every keyword search needs for one IDF over all shards, then
    /// the rankings; each ranking is merged across shards before the two are fused, so the answer
    /// is the one a single node holding everything would give.
    async fn search(&self, c: &Arc<Collection>, q: Question) -> Result<Retrieved> {
        let Some(sources) = self.network.search_sources(c) else {
            let coll = Arc::clone(c);
            let (hits, unreadable) = tokio::task::spawn_blocking(move || search_here(&coll, &q)).await??;
            return Ok(Retrieved { hits, unreadable, missing_shards: Vec::new() });
        };
        let depth = q.depth();
        let sparse = if q.mode.uses_sparse() { Some(self.idf_weights(c, &sources, &q.terms).await) } else { None };
        let vector = if q.mode.uses_dense() { q.vector } else { Vec::new() };
        let query = Arc::new(ShardQuery { vector, sparse, k: depth, exact: q.exact });
        let (answers, missing) = self
            .fan_out(c, sources, |c, l| match l.source {
                Source::Local => {
                    let (coll, query) = (Arc::clone(c), Arc::clone(&query));
                    let only: HashSet<u32> = l.shards.iter().copied().collect();
                    Box::pin(async move {
                        tokio::task::spawn_blocking(move || coll.search_shards(&query, Some(&only))).await?
                    })
                }
                Source::Peer(peer) => {
                    self.network.ask_search(Arc::clone(c), peer, l.shards.clone(), Arc::clone(&query))
                }
            })
            .await;
        if !missing.is_empty() {
            self.metrics.partial_answers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(collection = %c.name(), shards = ?missing, "partial answer: no replica of these shards answered");
        }
        let (mut dense, mut sparse, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
        for a in answers {
            dense.extend(a.hits);
            sparse.extend(a.sparse_hits);
            unreadable.extend(a.unreadable);
        }
        let hits = combine(q.mode, merge(dense, depth), merge(sparse, depth), q.k);
        Ok(Retrieved { hits, unreadable, missing_shards: missing })
    }

    /// The question's terms weighted by their IDF over every shard of `c`, counted where the
    /// plan finds each shard.
    async fn idf_weights(
        &self,
        c: &Arc<Collection>,
        sources: &std::collections::BTreeMap<u32, Vec<Source>>,
        terms: &[u32],
    ) -> SparseVector {
        if terms.is_empty() {
            return SparseVector::default();
        }
        let terms = Arc::new(terms.to_vec());
        let (answers, _) = self
            .fan_out(c, sources.clone(), |c, l| match l.source {
                Source::Local => {
                    let only: HashSet<u32> = l.shards.iter().copied().collect();
                    let counted = c.term_frequencies(&terms, Some(&only));
                    Box::pin(async move { Ok(counted) })
                }
                Source::Peer(peer) => {
                    self.network.ask_term_counts(Arc::clone(c), peer, l.shards.clone(), Arc::clone(&terms))
                }
            })
            .await;
        let mut freq = vec![0u64; terms.len()];
        let mut n = 0;
        for (f, chunks) in answers {
            n += chunks;
            for (total, x) in freq.iter_mut().zip(f) {
                *total += x;
            }
        }
        query_vector(&terms, &freq, n)
    }

    /// Runs one request per launch of a search plan over `sources` — failing over and hedging
    /// as the plan says — and returns the answers and the shards nobody answered for.
    async fn fan_out<T: Send + 'static>(
        &self,
        c: &Arc<Collection>,
        sources: std::collections::BTreeMap<u32, Vec<Source>>,
        ask: impl Fn(&Arc<Collection>, &Launch) -> BoxFuture<'static, Result<T>>,
    ) -> (Vec<T>, Vec<u32>) {
        let (mut plan, first) = SearchPlan::new(sources);
        let mut pending: FuturesUnordered<Pending<T>> = FuturesUnordered::new();
        let launch = |l: Launch, pending: &mut FuturesUnordered<Pending<T>>| {
            let asked = ask(c, &l);
            pending.push(Box::pin(async move { (l, asked.await) }));
        };
        for l in first {
            launch(l, &mut pending);
        }
        let mut answers = Vec::new();
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
        (answers, plan.missing())
    }
}

/// The answer of `mode` from the two rankings (each merged, best first): one of them, or their
/// fusion with the fused scores.
fn combine(mode: SearchMode, dense: Vec<Hit>, sparse: Vec<Hit>, k: usize) -> Vec<Hit> {
    let key = |h: &Hit| (h.doc_id.clone(), h.chunk);
    let d: Vec<((String, u32), f32)> = dense.iter().map(|h| (key(h), h.score)).collect();
    let s: Vec<((String, u32), f32)> = sparse.iter().map(|h| (key(h), h.score)).collect();
    let mut by_key: HashMap<(String, u32), Hit> = HashMap::new();
    for h in dense.into_iter().chain(sparse) {
        by_key.entry(key(&h)).or_insert(h);
    }
    fusion::choose(mode, &d, &s, k)
        .into_iter()
        .filter_map(|(key, score)| by_key.remove(&key).map(|h| Hit { score, ..h }))
        .collect()
}

/// A search of a collection this node holds whole: both rankings by id, fused, and only the
/// answer's texts read. The same ranking rules as [`combine`] over merged hits (score, then
/// document and chunk), so a node alone answers as a network would.
fn search_here(c: &Collection, q: &Question) -> Result<(Vec<Hit>, Vec<prag_proto::api::ChunkError>)> {
    let depth = q.depth();
    // The point behind each (document, chunk), so the answer's texts are read without computing
    // point ids again.
    let mut ids: HashMap<(String, u32), PointId> = HashMap::new();
    let mut keyed = |ranked: Vec<(PointId, f32)>| -> Vec<((String, u32), f32)> {
        let mut out: Vec<((String, u32), f32)> = ranked
            .into_iter()
            .filter_map(|(id, s)| {
                let key = c.chunk_of(id)?;
                ids.insert(key.clone(), id);
                Some((key, s))
            })
            .collect();
        fusion::rank(&mut out);
        out.truncate(depth);
        out
    };
    let dense = if q.mode.uses_dense() { keyed(c.dense_ranking(&q.vector, depth, q.exact, None)?) } else { Vec::new() };
    let sparse = if q.mode.uses_sparse() && !q.terms.is_empty() {
        let (freq, n) = c.term_frequencies(&q.terms, None);
        keyed(c.sparse_ranking(&query_vector(&q.terms, &freq, n), depth, None)?)
    } else {
        Vec::new()
    };
    let chosen: Vec<(PointId, f32)> = fusion::choose(q.mode, &dense, &sparse, q.k)
        .into_iter()
        .filter_map(|(key, score)| Some((*ids.get(&key)?, score)))
        .collect();
    let mut unreadable = Vec::new();
    let hits = c.read_hits(&chosen, &mut unreadable);
    Ok((hits, unreadable))
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
