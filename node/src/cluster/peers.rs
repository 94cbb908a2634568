//! Answering peers' storage requests: the card to anyone; the catalog, document pieces and shard
//! searches to admitted peers only. Each request is answered on its own task, so the swarm's loop
//! never waits for the node.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use crate::collections::{Collection, MAX_DEPTH, ShardQuery};
use crate::error::{Error, ErrorKind, Result};
use crate::identity::HpkePublicKey;
use crate::net::ClusterInbound;
use crate::net::protocol::cluster::{
    ClusterRequest, ClusterResponse, CollectionRecord, Framed, Holding, MAX_BODY, SearchAnswer,
};

/// The requests only admitted peers may make (everything but the card carries or reveals
/// collection data).
enum Admitted {
    Sync,
    Fetch { cid: String, doc_id: String, version: u64, offset: u64, max: u32 },
    Search { cid: String, shards: Vec<u32>, k: usize, exact: bool, request_id: String },
    TermCounts { cid: String, shards: Vec<u32>, request_id: String },
    StackLog { stack: u64 },
}

/// Serves peers' storage requests until `cancel` fires or the network stops.
pub(crate) async fn serve(cx: Arc<Context>, mut inbound: mpsc::Receiver<ClusterInbound>, cancel: CancellationToken) {
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => return,
            r = inbound.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let cx = Arc::clone(&cx);
        tokio::spawn(async move {
            let answer = answer(&cx, request.peer, request.request).await;
            let _ = request.reply.send(answer);
        });
    }
}

/// The admission verdict on `peer`, asking for its card first if it is not known yet.
pub(crate) async fn admission(cx: &Context, peer: PeerId) -> Result<HpkePublicKey> {
    if let Some(verdict) = cx.admission.verdict(&peer) {
        return verdict;
    }
    let card = card_of(cx, peer).await?;
    cx.admission.rejudge(peer, &card).0
}

/// `peer`'s storage card, fetched once.
pub(crate) async fn card_of(cx: &Context, peer: PeerId) -> Result<crate::identity::StorageCard> {
    if let Some(card) = cx.admission.card(&peer) {
        return Ok(card);
    }
    match cx.net.ask_cluster(peer, Framed::new(ClusterRequest::Card)).await?.head {
        ClusterResponse::Card(card) => Ok(card),
        other => Err(Error::new(ErrorKind::Unavailable, format!("peer {peer} answered a card request with {other:?}"))),
    }
}

async fn answer(cx: &Context, peer: PeerId, request: Framed<ClusterRequest>) -> Framed<ClusterResponse> {
    let admitted = match request.head {
        ClusterRequest::Card => return Framed::new(ClusterResponse::Card(cx.identity.card(&cx.me.to_string()))),
        ClusterRequest::Sync => Admitted::Sync,
        ClusterRequest::Fetch { cid, doc_id, version, offset, max } => {
            Admitted::Fetch { cid, doc_id, version, offset, max }
        }
        ClusterRequest::Search { cid, shards, k, exact, request_id } => {
            Admitted::Search { cid, shards, k, exact, request_id }
        }
        ClusterRequest::TermCounts { cid, shards, request_id } => Admitted::TermCounts { cid, shards, request_id },
        ClusterRequest::StackLog { stack } => Admitted::StackLog { stack },
    };
    let hpke = match admission(cx, peer).await {
        Ok(k) => k,
        Err(e) => {
            cx.metrics.peer_requests_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %peer, reason = %e, "storage request refused: the peer is not admitted");
            return Framed::refused(&e);
        }
    };
    let result = match admitted {
        Admitted::Sync => Ok(Framed::new(ClusterResponse::Sync(catalog_for(cx, &peer.to_string(), &hpke)))),
        Admitted::Fetch { cid, doc_id, version, offset, max } => {
            Ok(piece(cx, &cid, &doc_id, version, offset, max).await)
        }
        Admitted::Search { cid, shards, k, exact, request_id } => {
            search(cx, &cid, shards, k, exact, &request_id, request.body)
                .await
                .map(|body| Framed::with_body(ClusterResponse::Hits, body))
        }
        Admitted::TermCounts { cid, shards, request_id } => term_counts(cx, &cid, shards, &request_id, request.body)
            .map(|body| Framed::with_body(ClusterResponse::TermCounts, body)),
        Admitted::StackLog { stack } => {
            stack_log(cx, peer, stack, &hpke).map(|body| Framed::with_body(ClusterResponse::StackLog, body))
        }
    };
    result.unwrap_or_else(|e| Framed::refused(&e))
}

/// Every shareable collection, its key wrapped to `peer`, and the documents held here.
fn catalog_for(cx: &Context, peer: &str, hpke: &HpkePublicKey) -> Vec<CollectionRecord> {
    let mut out = Vec::new();
    for c in cx.collections.all().into_iter().filter(|c| c.shareable()) {
        let wrapped = match super::keywrap::wrap(c.store.key(), c.id(), peer, hpke) {
            Ok(w) => hex::encode(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot wrap a collection key");
                continue;
            }
        };
        let holdings = c
            .contents
            .read()
            .docs
            .iter()
            .map(|(id, d)| Holding {
                doc_id: id.clone(),
                version: d.version,
                len: d.bytes,
                path: d.path.clone(),
                chunks: d.point_ids.len() as u64,
            })
            .collect();
        let live = c.live();
        out.push(CollectionRecord {
            cid: c.id().to_string(),
            name: c.name().to_string(),
            owner: c.owner().to_string(),
            created_at: c.created_at(),
            shards: c.shards(),
            replicas: c.replicas(),
            grants: live.grants,
            grants_version: live.grants_version,
            tombstones: live.tombstones,
            wrapped_key: wrapped,
            holdings,
        });
    }
    out
}

/// A piece of a document file, if it is still held at `version`.
async fn piece(cx: &Context, cid: &str, doc_id: &str, version: u64, offset: u64, max: u32) -> Framed<ClusterResponse> {
    let Some(c) = cx.collections.by_id(cid) else { return Framed::new(ClusterResponse::Gone) };
    if c.entry(doc_id).map(|d| d.version) != Some(version) {
        return Framed::new(ClusterResponse::Gone);
    }
    let path = c.store.document_path(doc_id);
    let max = (max as usize).min(MAX_BODY);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Vec<u8>)> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&path)?;
        let total = file.metadata()?.len();
        let len = (total.saturating_sub(offset) as usize).min(max);
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset)?;
        Ok((total, buf))
    })
    .await;
    match read {
        Ok(Ok((total, body))) => Framed::with_body(ClusterResponse::Piece { total }, body),
        _ => Framed::new(ClusterResponse::Gone),
    }
}

/// The collection a peer's search names, once its request id is checked.
fn searched(cx: &Context, cid: &str, request_id: &str) -> Result<Arc<Collection>> {
    if request_id.is_empty() || request_id.len() > 64 {
        return Err(Error::bad_request("bad search request"));
    }
    cx.collections.by_id(cid).ok_or_else(|| Error::new(ErrorKind::UnknownCollection, format!("no collection {cid}")))
}

/// Runs a search for a peer: opens the sealed question, ranks the asked shards, seals the hits.
async fn search(
    cx: &Context,
    cid: &str,
    shards: Vec<u32>,
    k: usize,
    exact: bool,
    request_id: &str,
    sealed_query: Vec<u8>,
) -> Result<Vec<u8>> {
    let c = searched(cx, cid, request_id)?;
    if k == 0 || k > MAX_DEPTH {
        return Err(Error::bad_request("bad search request"));
    }
    let (q_key, a_key) = c.search_keys(request_id);
    let raw = q_key.open(&sealed_query).map_err(|_| Error::bad_request("the sealed query does not open"))?;
    let query = ShardQuery::decode_vectors(&raw, cx.dimension, k, exact)?;
    let only: HashSet<u32> = shards.into_iter().collect();
    let found = tokio::task::spawn_blocking(move || c.search_shards(&query, Some(&only))).await??;
    let answer = SearchAnswer { hits: found.hits, sparse_hits: found.sparse_hits, unreadable: found.unreadable };
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&answer).map_err(|e| Error::internal("cannot encode a search answer", e))?,
    );
    Ok(a_key.seal(&json)?)
}

/// Counts terms for a peer's keyword search: opens the sealed term ids, counts them over the
/// asked shards, seals the counts.
fn term_counts(cx: &Context, cid: &str, shards: Vec<u32>, request_id: &str, sealed_terms: Vec<u8>) -> Result<Vec<u8>> {
    let c = searched(cx, cid, request_id)?;
    let (q_key, a_key) = c.search_keys(request_id);
    let raw = q_key.open(&sealed_terms).map_err(|_| Error::bad_request("the sealed terms do not open"))?;
    if raw.len() % 4 != 0 || raw.len() / 4 > crate::lexical::MAX_TERMS {
        return Err(Error::bad_request("bad term list"));
    }
    let terms: Vec<u32> = raw.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let only: HashSet<u32> = shards.into_iter().collect();
    let (freq, n) = c.term_frequencies(&terms, Some(&only));
    let mut plain = Vec::with_capacity(8 * (freq.len() + 1));
    plain.extend_from_slice(&n.to_le_bytes());
    for f in freq {
        plain.extend_from_slice(&f.to_le_bytes());
    }
    Ok(a_key.seal(&plain)?)
}

/// A stack's log for an attester: the market decides whether this peer's storage key may have
/// it; it travels sealed to the peer's attested HPKE key, bound to the stack and the peer.
fn stack_log(cx: &Context, peer: PeerId, stack: u64, hpke: &HpkePublicKey) -> Result<Vec<u8>> {
    let source =
        cx.stack_logs.get().ok_or_else(|| Error::new(ErrorKind::Unavailable, "this node keeps no stack logs (yet)"))?;
    let card = cx.admission.card(&peer).ok_or_else(|| Error::new(ErrorKind::NotAdmitted, "no card from this peer"))?;
    let plain = source.log_for(stack, &card.signing_key)?;
    if plain.len() + 64 > MAX_BODY {
        return Err(Error::new(ErrorKind::TooLarge, format!("stack {stack}'s log is larger than one message")));
    }
    super::keywrap::seal_to(hpke, &super::keywrap::stack_log_info(stack, &peer.to_string()), &plain)
}
