//! Distributed retrieval: the node a client talks to embeds the question once, then asks one
//! replica of every shard — itself first, when it holds a shard whole — hedges to another replica
//! when one is slow or fails, and merges the answers into the top `k` a single node holding
//! everything would give. Shards no replica answered for are named in the answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use futures::future::BoxFuture;
use prag_proto::api::{ChunkError, Hit};

use super::cluster::search_keys;
use super::{Collection, Node, NodeError, internal};
use crate::cluster::placement::shard_of;
use crate::cluster::search::{Source, assign, merge};
use crate::cluster::wire::{ClusterRequest, ClusterResponse, Framed, SearchAnswer};

/// What a search over a collection found, and which shards it could not reach.
pub(crate) struct Found {
    pub hits: Vec<Hit>,
    pub unreadable: Vec<ChunkError>,
    pub missing_shards: Vec<u32>,
}

/// Searches the chunks held here; with `only`, the chunks of those shards only (searching deeper
/// until `k` of them are found or the index is exhausted, so the answer is exact for them).
pub(crate) fn search_local(
    c: &Collection,
    vector: &[f32],
    k: usize,
    exact: bool,
    only: Option<&HashSet<u32>>,
) -> Result<SearchAnswer, crate::index::IndexError> {
    let shards = c.live_meta.lock().shard_count();
    let total = c.state.read().points.len();
    let mut want = k;
    let found = loop {
        let found = c.index.search(vector, want, exact)?;
        let Some(only) = only else { break found };
        let state = c.state.read();
        let kept: Vec<(u64, f32)> = found
            .iter()
            .filter(|(id, _)| state.points.get(id).is_some_and(|r| only.contains(&shard_of(&r.doc_id, shards))))
            .copied()
            .collect();
        if kept.len() >= k || found.len() < want || want >= total {
            break kept;
        }
        want = (want * 4).min(total.max(k));
    };
    let mut answer = SearchAnswer::default();
    for (id, score) in found.into_iter().take(k) {
        // The location and the file it points into are read under `files`, so a document being
        // replaced or deleted meanwhile is either wholly the old one or gone, never a mix.
        let _files = c.files.read();
        let (chunk_ref, path) = {
            let state = c.state.read();
            // Gone since the index answered (deleted, or a shorter new version): not a hit.
            let Some(r) = state.points.get(&id).cloned() else { continue };
            let path = state.docs.get(&r.doc_id).map(|d| d.path.clone()).unwrap_or_default();
            (r, path)
        };
        match c.store.read_text(&chunk_ref.doc_id, chunk_ref.chunk, chunk_ref.loc) {
            Ok(text) => answer.hits.push(Hit {
                doc_id: chunk_ref.doc_id,
                path,
                chunk: chunk_ref.chunk,
                score,
                text: text.as_str().to_string(),
            }),
            Err(e) => {
                // The full error (with the server's paths) is for the operator's log only.
                tracing::error!(collection = %c.meta.name, doc_id = %chunk_ref.doc_id, chunk = chunk_ref.chunk, error = %e, "stored chunk cannot be read");
                answer.unreadable.push(ChunkError {
                    doc_id: chunk_ref.doc_id,
                    chunk: chunk_ref.chunk,
                    error: e.public_message().to_string(),
                })
            }
        }
    }
    Ok(answer)
}

type Pending = BoxFuture<'static, (Source, Vec<u32>, Result<SearchAnswer, String>)>;

impl Node {
    /// Searches every shard of `c` for `vector`.
    pub(crate) async fn search_collection(
        &self,
        c: &Arc<Collection>,
        vector: Vec<f32>,
        k: usize,
        exact: bool,
    ) -> Result<Found, NodeError> {
        let local = |only: Option<HashSet<u32>>| {
            let (c, v) = (Arc::clone(c), vector.clone());
            async move {
                tokio::task::spawn_blocking(move || search_local(&c, &v, k, exact, only.as_ref()))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        };
        // Who holds each shard whole: this node first, then peers by round-trip time. With no
        // network, or everything here, no peer is asked at all.
        let plan = self.cluster.clone().filter(|_| c.store.shareable()).map(|cluster| {
            let shards = c.live_meta.lock().shard_count();
            let latest = self.latest(c);
            let rtt: HashMap<libp2p::PeerId, f64> =
                cluster.p2p.peer_states().into_iter().map(|p| (p.peer_id, p.rtt_ms.unwrap_or(f64::MAX))).collect();
            let mut peers: Vec<libp2p::PeerId> = latest.peers.keys().copied().collect();
            peers.sort_by(|a, b| rtt.get(a).unwrap_or(&f64::MAX).total_cmp(rtt.get(b).unwrap_or(&f64::MAX)));
            let candidates: BTreeMap<u32, Vec<Source>> =
                latest.holders(shards, &peers).into_iter().enumerate().map(|(s, h)| (s as u32, h.holders)).collect();
            (cluster, shards, candidates)
        });
        let Some((cluster, shards, candidates)) =
            plan.filter(|(_, _, cands)| !cands.values().all(|l| l.first() == Some(&Source::Local)))
        else {
            let a = local(None).await.map_err(internal)?;
            return Ok(Found { hits: a.hits, unreadable: a.unreadable, missing_shards: Vec::new() });
        };

        let all: Vec<u32> = (0..shards).collect();
        let mut tried: HashMap<u32, HashSet<Source>> = HashMap::new();
        let mut in_flight: HashMap<u32, usize> = HashMap::new();
        let mut unanswered: HashSet<u32> = all.iter().copied().collect();
        let mut missing: Vec<u32> = Vec::new();
        let mut pending: futures::stream::FuturesUnordered<Pending> = Default::default();
        let launch = |groups: BTreeMap<Source, Vec<u32>>,
                      tried: &mut HashMap<u32, HashSet<Source>>,
                      in_flight: &mut HashMap<u32, usize>,
                      pending: &mut futures::stream::FuturesUnordered<Pending>| {
            for (src, group) in groups {
                for s in &group {
                    tried.entry(*s).or_default().insert(src);
                    *in_flight.entry(*s).or_default() += 1;
                }
                let fut: Pending = match src {
                    Source::Local => {
                        let only: HashSet<u32> = group.iter().copied().collect();
                        let f = local(Some(only));
                        Box::pin(async move { (src, group, f.await) })
                    }
                    Source::Peer(peer) => {
                        let f = self.ask_search(c, peer, group.clone(), &vector, k, exact);
                        Box::pin(async move { (src, group, f.await) })
                    }
                };
                pending.push(fut);
            }
        };
        let (groups, none) = assign(&all, &candidates, &tried);
        for s in none {
            unanswered.remove(&s);
            missing.push(s);
        }
        launch(groups, &mut tried, &mut in_flight, &mut pending);

        let mut answers: Vec<SearchAnswer> = Vec::new();
        let hedge = tokio::time::sleep(cluster.config.hedge_after);
        tokio::pin!(hedge);
        let mut hedged = false;
        while !unanswered.is_empty() && !pending.is_empty() {
            tokio::select! {
                Some((src, group, result)) = pending.next() => {
                    for s in &group {
                        if let Some(n) = in_flight.get_mut(s) { *n = n.saturating_sub(1); }
                    }
                    match result {
                        Ok(a) => {
                            for s in &group { unanswered.remove(s); }
                            answers.push(a);
                        }
                        Err(e) => {
                            tracing::warn!(source = ?src, error = %e, "a replica failed to answer; asking another");
                            let orphaned: Vec<u32> = group
                                .iter()
                                .copied()
                                .filter(|s| unanswered.contains(s) && in_flight.get(s).copied().unwrap_or(0) == 0)
                                .collect();
                            let (groups, none) = assign(&orphaned, &candidates, &tried);
                            for s in none {
                                unanswered.remove(&s);
                                missing.push(s);
                            }
                            launch(groups, &mut tried, &mut in_flight, &mut pending);
                        }
                    }
                }
                _ = &mut hedge, if !hedged => {
                    hedged = true;
                    let slow: Vec<u32> = unanswered.iter().copied().collect();
                    let (groups, _) = assign(&slow, &candidates, &tried);
                    if !groups.is_empty() {
                        cluster.metrics.hedged_searches.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(shards = ?slow, "hedging a slow search to other replicas");
                    }
                    launch(groups, &mut tried, &mut in_flight, &mut pending);
                }
            }
        }
        missing.extend(unanswered);
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            cluster.metrics.partial_answers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(collection = %c.meta.name, shards = ?missing, "partial answer: no replica of these shards answered");
        }
        let mut unreadable = Vec::new();
        let mut hits = Vec::new();
        for a in answers {
            hits.extend(a.hits);
            unreadable.extend(a.unreadable);
        }
        Ok(Found { hits: merge(hits, k), unreadable, missing_shards: missing })
    }

    /// Asks `peer` for the top `k` of `shards`; question and answer sealed under the collection key.
    fn ask_search(
        &self,
        c: &Arc<Collection>,
        peer: libp2p::PeerId,
        shards: Vec<u32>,
        vector: &[f32],
        k: usize,
        exact: bool,
    ) -> BoxFuture<'static, Result<SearchAnswer, String>> {
        let Some(cluster) = self.cluster.clone() else { return Box::pin(async { Err("alone".to_string()) }) };
        let c = Arc::clone(c);
        let raw: zeroize::Zeroizing<Vec<u8>> =
            zeroize::Zeroizing::new(vector.iter().flat_map(|f| f.to_le_bytes()).collect());
        Box::pin(async move {
            let started = Instant::now();
            let request_id = crate::crypto::random_hex::<16>().map_err(|e| e.to_string())?;
            let (q_key, a_key) = search_keys(&c, &request_id);
            let body = q_key.seal(&raw).map_err(|e| e.to_string())?;
            let request = ClusterRequest::Search { cid: c.store.id.clone(), shards, k, exact, request_id };
            let answer = cluster.p2p.ask(peer, Framed::with_body(request, body)).await?;
            let sealed = match answer.head {
                ClusterResponse::Hits => answer.body,
                ClusterResponse::Refused { reason, .. } => return Err(format!("peer {peer} refused: {reason}")),
                other => return Err(format!("peer {peer} answered {other:?}")),
            };
            let json = a_key.open(&sealed).map_err(|_| format!("peer {peer}'s answer does not open"))?;
            let a: SearchAnswer = serde_json::from_slice(&json).map_err(|e| format!("peer {peer}'s answer: {e}"))?;
            cluster.metrics.remote_search_seconds.observe(started.elapsed().as_secs_f64());
            Ok(a)
        })
    }
}
