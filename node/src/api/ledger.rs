//! The contracts' ledger: its status and entries, transactions (each carrying its own signature:
//! the route is unsigned) and queries. A node that does not order forwards transactions to the one
//! that does; either way the orderer's gate and contract decide, and a refusal has the same status
//! and code through any node.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use prag_proto::api::ErrorBody;
use prag_proto::ledger::{Entry, SignedTx};

use super::error::unauthenticated;
use super::inbound::{body_deadline, collect};
use crate::error::Result;
use crate::ledger::{LedgerStatus, Receipt};
use crate::node::Node;

/// Largest ledger transaction (a TDX report with its collateral is about 40 KB).
const MAX_LEDGER_TX: usize = 1024 * 1024;
/// Largest ledger query.
const MAX_LEDGER_QUERY: usize = 64 * 1024;

#[utoipa::path(
    get,
    operation_id = "ledger_status",
    path = "/v1/ledger/status",
    tag = "ledger",
    summary = "Ledger height, head hash, admin, orderer, damage found at start",
    responses((status = 200, body = LedgerStatus))
)]
pub(crate) async fn status(State(node): State<Arc<Node>>) -> axum::Json<LedgerStatus> {
    axum::Json(node.ledger().status_with_hash())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct EntriesQuery {
    /// First height.
    #[serde(default)]
    from: u64,
    /// Most entries (at most 1000).
    #[serde(default = "super::operators::default_limit")]
    limit: usize,
}

#[utoipa::path(
    get,
    operation_id = "ledger_entries",
    path = "/v1/ledger/entries",
    tag = "ledger",
    summary = "Ledger entries from `from`, at most `limit`",
    params(EntriesQuery),
    responses((status = 200, body = Vec<Entry>))
)]
pub(crate) async fn entries(State(node): State<Arc<Node>>, Query(q): Query<EntriesQuery>) -> axum::Json<Vec<Entry>> {
    axum::Json(node.ledger().entries(q.from, q.limit.min(1000)))
}

/// Reads the body of an unsigned route: at most `limit` bytes, within the node's budget for
/// bodies nobody has vouched for.
async fn public_body(node: &Node, body: Body, limit: usize) -> Result<axum::body::Bytes> {
    let _grant = node.public_inflight().try_take("", limit as u64).map_err(|e| unauthenticated(node, e.into()))?;
    collect(body, limit, body_deadline(limit as u64)).await.map_err(|e| unauthenticated(node, e))
}

#[utoipa::path(
    post,
    operation_id = "ledger_tx",
    path = "/v1/ledger/tx",
    tag = "ledger",
    summary = "Submit a signed contract transaction",
    description = "SignedTx: body {sender, nonce, timestamp, msg} and a secp256k1 signature over `prag-tx-v1\\n` + \
        the body's canonical JSON. Ordered by the admin's node; others forward it there.",
    request_body = SignedTx,
    responses(
        (status = 200, body = Receipt),
        (status = 400, body = ErrorBody),
        (status = 401, description = "stale or replayed", body = ErrorBody),
        (status = 403, description = "refused by the contract or the attestation gate", body = ErrorBody),
        (status = 409, description = "no_ledger, not_orderer", body = ErrorBody),
    )
)]
pub(crate) async fn tx(State(node): State<Arc<Node>>, body: Body) -> Result<axum::Json<Receipt>> {
    let body = public_body(&node, body, MAX_LEDGER_TX).await?;
    let tx: SignedTx = super::parse_json(&body)?;
    Ok(axum::Json(node.ledger().submit(tx).await?))
}

#[utoipa::path(
    post,
    operation_id = "ledger_query",
    path = "/v1/ledger/query",
    tag = "ledger",
    summary = "A contract query in the published JSON shape",
    description = "Some queries carry their own signature or a SNIP-24 permit.",
    request_body(content = Object),
    responses((status = 200, description = "The contract's answer", body = Object), (status = 400, body = ErrorBody))
)]
pub(crate) async fn query(State(node): State<Arc<Node>>, body: Body) -> Result<axum::Json<serde_json::Value>> {
    let body = public_body(&node, body, MAX_LEDGER_QUERY).await?;
    let q: serde_json::Value = super::parse_json(&body)?;
    Ok(axum::Json(node.ledger().query(&q)?))
}
