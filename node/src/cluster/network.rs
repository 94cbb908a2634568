//! The storage network of a node with peers: what the rest of the node asks of it (who can serve
//! each shard, a peer's search, the network-wide document listing, status), answered from the
//! admission verdicts, the peers' catalogs and placement.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use libp2p::PeerId;
use prag_proto::api::{ClusterStatus, PeerView, ShardView};

use super::StorageNet;
use super::admission::Admission;
use super::catalog::{PeerCatalog, Source};
use super::context::Context;
use super::metrics::ClusterMetrics;
use super::replicator::{Replicator, Throttle, TransferDeps};
use crate::attest::AttestationGate;
use crate::collections::{Collection, Collections, SearchHits, ShardQuery};
use crate::config::ClusterConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::StorageIdentity;
use crate::ledger::LedgerService;
use crate::metrics::PromText;
use crate::net::protocol::cluster::{ClusterRequest, ClusterResponse, Framed, SearchAnswer};
use crate::net::{ClusterInbound, Net};
use crate::tasks::Tasks;

/// The storage network with peers.
pub(crate) struct Replicated {
    cx: Arc<Context>,
}

/// What a networked storage network is built from.
pub(crate) struct Parts {
    pub config: ClusterConfig,
    pub identity: Arc<StorageIdentity>,
    pub net: Net,
    pub inbound: tokio::sync::mpsc::Receiver<ClusterInbound>,
    pub ledger: LedgerService,
    pub gate: Arc<AttestationGate>,
    pub collections: Arc<Collections>,
    pub dimension: usize,
}

impl Replicated {
    /// Starts the storage network's tasks (answering peers, the sync round, the replicator) in
    /// `tasks`.
    pub(crate) fn start(parts: Parts, tasks: &Tasks) -> Result<Replicated> {
        let me = parts.net.local_peer_id().ok_or_else(|| {
            Error::internal("the storage network needs the peer network", std::io::Error::other("offline"))
        })?;
        let metrics = Arc::new(ClusterMetrics::default());
        let deps = TransferDeps {
            net: parts.net.clone(),
            collections: Arc::clone(&parts.collections),
            metrics: Arc::clone(&metrics),
            piece_bytes: parts.config.piece_bytes,
            throttle: Arc::new(Throttle::new(parts.config.transfer_rate)),
        };
        let (replicator, actor) = Replicator::start(deps, parts.config.max_transfers, tasks.token());
        tasks.spawn(actor);
        let cx = Arc::new(Context {
            config: parts.config,
            me,
            identity: parts.identity,
            net: parts.net,
            admission: Admission::new(parts.ledger, parts.gate),
            catalog: PeerCatalog::default(),
            collections: parts.collections,
            metrics,
            replicator,
            dimension: parts.dimension,
            stack_logs: std::sync::OnceLock::new(),
        });
        tasks.spawn(super::peers::serve(Arc::clone(&cx), parts.inbound, tasks.token()));
        tasks.spawn(super::sync::run(Arc::clone(&cx), tasks.token()));
        Ok(Replicated { cx })
    }

    fn shard_views(&self, c: &Collection) -> Vec<ShardView> {
        let me = self.cx.me.to_string();
        let owners = self.cx.owners(c);
        let shards = owners.len() as u32;
        let view = self.cx.view(c);
        let admitted = 1 + view.peers.len();
        let replicas = c.replicas() as usize;
        let peers: Vec<PeerId> = view.peers.keys().copied().collect();
        let here = view.held_here(shards);
        // The status refresh keeps the snapshot current; none is built here.
        let snapshot = c.current_snapshot();
        view.holders(shards, &peers)
            .into_iter()
            .zip(owners)
            .enumerate()
            .map(|(s, (h, owners))| {
                let holders: Vec<String> = h
                    .holders
                    .iter()
                    .map(|src| match src {
                        Source::Local => me.clone(),
                        Source::Peer(p) => p.to_string(),
                    })
                    .collect();
                ShardView {
                    collection: c.name().to_string(),
                    shard: s as u32,
                    owners,
                    documents: h.documents as u64,
                    documents_here: here[s],
                    healthy: holders.len() >= replicas.min(admitted),
                    snapshot_root: snapshot
                        .as_ref()
                        .filter(|_| here[s] == h.documents as u64)
                        .and_then(|sn| sn.shard_roots.get(s))
                        .map(hex::encode),
                    holders,
                }
            })
            .collect()
    }
}

impl StorageNet for Replicated {
    fn hedge_after(&self) -> Duration {
        self.cx.config.hedge_after
    }

    fn search_sources(&self, c: &Collection) -> Option<BTreeMap<u32, Vec<Source>>> {
        if !c.shareable() {
            return None;
        }
        let view = self.cx.view(c);
        let rtt: HashMap<PeerId, f64> =
            self.cx.net.peer_states().into_iter().map(|p| (p.peer_id, p.rtt_ms.unwrap_or(f64::MAX))).collect();
        let mut order: Vec<PeerId> = view.peers.keys().copied().collect();
        order.sort_by(|a, b| rtt.get(a).unwrap_or(&f64::MAX).total_cmp(rtt.get(b).unwrap_or(&f64::MAX)));
        let sources: BTreeMap<u32, Vec<Source>> =
            view.holders(c.shards(), &order).into_iter().enumerate().map(|(s, h)| (s as u32, h.holders)).collect();
        // Everything here: no peer is asked at all.
        if sources.values().all(|l| l.first() == Some(&Source::Local)) { None } else { Some(sources) }
    }

    fn ask_search(
        &self,
        c: Arc<Collection>,
        peer: PeerId,
        shards: Vec<u32>,
        query: Arc<ShardQuery>,
    ) -> BoxFuture<'static, Result<SearchHits>> {
        let cx = Arc::clone(&self.cx);
        Box::pin(async move {
            let started = Instant::now();
            let raw = zeroize::Zeroizing::new(query.encode_vectors());
            let (k, exact) = (query.k, query.exact);
            let json = ask_sealed(
                &cx,
                &c,
                peer,
                &raw,
                |cid, request_id| ClusterRequest::Search { cid, shards, k, exact, request_id },
                |h| matches!(h, ClusterResponse::Hits),
            )
            .await?;
            let a: SearchAnswer = serde_json::from_slice(&json)
                .map_err(|e| Error::new(ErrorKind::Unavailable, format!("peer {peer}'s answer: {e}")))?;
            cx.metrics.remote_search_seconds.observe(started.elapsed().as_secs_f64());
            Ok(SearchHits { hits: a.hits, sparse_hits: a.sparse_hits, unreadable: a.unreadable })
        })
    }

    fn ask_term_counts(
        &self,
        c: Arc<Collection>,
        peer: PeerId,
        shards: Vec<u32>,
        terms: Arc<Vec<u32>>,
    ) -> BoxFuture<'static, Result<(Vec<u64>, u64)>> {
        let cx = Arc::clone(&self.cx);
        Box::pin(async move {
            let raw: Vec<u8> = terms.iter().flat_map(|t| t.to_le_bytes()).collect();
            let plain = ask_sealed(
                &cx,
                &c,
                peer,
                &raw,
                |cid, request_id| ClusterRequest::TermCounts { cid, shards, request_id },
                |h| matches!(h, ClusterResponse::TermCounts),
            )
            .await?;
            let words: Vec<u64> =
                plain.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect();
            match words.split_first() {
                Some((&n, freq)) if plain.len() == 8 * (terms.len() + 1) => Ok((freq.to_vec(), n)),
                _ => Err(Error::new(ErrorKind::Unavailable, format!("peer {peer}'s term counts are malformed"))),
            }
        })
    }

    fn newest_version(&self, c: &Collection, doc_id: &str) -> Option<u64> {
        self.cx.view(c).docs.get(doc_id).map(|n| n.version)
    }

    fn listing(&self, c: &Collection) -> Vec<(String, u64, String, u64)> {
        self.cx
            .catalog
            .of(c.id(), self.cx.admission.admitted())
            .into_iter()
            .flat_map(|(_, docs)| docs.into_iter().map(|(id, h)| (id, h.version, h.path, h.chunks)))
            .collect()
    }

    fn peers(&self) -> Vec<PeerView> {
        self.cx.net.peer_views(|p| self.cx.admission.is_admitted(p))
    }

    fn status(&self) -> Option<ClusterStatus> {
        let mut shards: Vec<ShardView> =
            self.cx.collections.all().iter().filter(|c| c.shareable()).flat_map(|c| self.shard_views(c)).collect();
        shards.sort_by(|a, b| a.collection.cmp(&b.collection).then(a.shard.cmp(&b.shard)));
        let own = self.cx.admission.own();
        let mut status = ClusterStatus {
            admitted: own.is_ok(),
            refusal: own.err(),
            refused_peers: self.cx.admission.refused(),
            shards,
            ..Default::default()
        };
        self.live_counters(&mut status);
        Some(status)
    }

    fn live_counters(&self, s: &mut ClusterStatus) {
        let m = &self.cx.metrics;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        s.peer_requests_refused = load(&m.peer_requests_refused);
        s.bytes_replicated = load(&m.bytes_replicated);
        s.documents_replicated = load(&m.documents_replicated);
        s.transfers_active = load(&m.transfers_active);
        s.transfers_resumed = load(&m.transfers_resumed);
        s.remote_searches = m.remote_search_seconds.count();
        s.remote_search_p50_ms = m.remote_search_seconds.quantile(0.5) * 1e3;
        s.remote_search_p99_ms = m.remote_search_seconds.quantile(0.99) * 1e3;
    }

    fn ask_stack_log(&self, peer: PeerId, stack: u64) -> BoxFuture<'static, Result<zeroize::Zeroizing<Vec<u8>>>> {
        let cx = Arc::clone(&self.cx);
        Box::pin(async move {
            let answer = cx.net.ask_cluster(peer, Framed::new(ClusterRequest::StackLog { stack })).await?;
            match answer.head {
                ClusterResponse::StackLog => super::keywrap::open_with(
                    cx.identity.hpke_private(),
                    &super::keywrap::stack_log_info(stack, &cx.me.to_string()),
                    &answer.body,
                ),
                ClusterResponse::Refused(e) => Err(e.into()),
                other => Err(Error::new(ErrorKind::Unavailable, format!("peer {peer} answered {other:?}"))),
            }
        })
    }

    fn serve_stack_logs(&self, source: Arc<dyn super::StackLogSource>) {
        let _ = self.cx.stack_logs.set(source);
    }

    fn render_metrics(&self, out: &mut PromText, status: Option<&ClusterStatus>) {
        self.cx.metrics.render(out);
        let unhealthy = status.map_or(0, |c| c.shards.iter().filter(|s| !s.healthy).count());
        out.gauge("prag_shards_unhealthy", "Shards with fewer reachable holders than replicas.", unhealthy as f64);
    }
}

/// Asks `peer` about collection `c`: `plain` sealed under the collection key for a fresh request
/// id, sent with the head `request(collection id, request id)` makes; the answer, which must come
/// with a head `expected` accepts, opened.
async fn ask_sealed(
    cx: &Context,
    c: &Collection,
    peer: PeerId,
    plain: &[u8],
    request: impl FnOnce(String, String) -> ClusterRequest,
    expected: impl Fn(&ClusterResponse) -> bool,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let request_id = crate::crypto::random_hex::<16>()?;
    let (q_key, a_key) = c.search_keys(&request_id);
    let body = q_key.seal(plain)?;
    let answer = cx.net.ask_cluster(peer, Framed::with_body(request(c.id().to_string(), request_id), body)).await?;
    let sealed = match answer.head {
        ClusterResponse::Refused(e) => return Err(e.into()),
        h if expected(&h) => answer.body,
        other => return Err(Error::new(ErrorKind::Unavailable, format!("peer {peer} answered {other:?}"))),
    };
    a_key.open(&sealed).map_err(|_| Error::new(ErrorKind::Unavailable, format!("peer {peer}'s answer does not open")))
}
