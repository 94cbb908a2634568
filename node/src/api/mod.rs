//! The node's HTTP API: two routers.
//!
//! The **outer** router is what listens on the network. Only what anyone may see, the owner's
//! channel, the operators' console feed and the contracts' ledger are on it:
//!
//! | method | path | who | what |
//! |---|---|---|---|
//! | GET | /v1/status | anyone | that the node is up (no collection, key or count) |
//! | GET | /metrics | anyone | Prometheus metrics (aggregates) |
//! | GET | /v1/openapi.json | anyone | this API as OpenAPI 3 |
//! | GET | /v1/attestation | anyone | the node's channel key and the attestation that vouches for it |
//! | POST | /v1/sealed | signed inside | the owner's channel: a sealed request for the inner router |
//! | GET | /v1/console, /v1/console/events | operator (signed headers) | the console's snapshot / stream |
//! | GET | /v1/audit?limit=N | operator (signed headers) | audit log, newest first |
//! | GET | /v1/ledger/status, /v1/ledger/entries | anyone | the contracts' ledger |
//! | POST | /v1/ledger/tx | tx-signed | submit a signed contract transaction |
//! | POST | /v1/ledger/query | anyone* | contract query (*some carry their own signature or permit) |
//!
//! The **inner** router is reachable only through `/v1/sealed` (`channel.rs`), which has already
//! authenticated the caller; every answer goes back sealed:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | /v1/collections | collections the caller owns; create one |
//! | GET | /v1/collections/{name}/documents | list documents (owner) |
//! | POST | /v1/collections/{name}/documents?path=P | upload one file (raw bytes) |
//! | POST | /v1/collections/{name}/documents/delete | delete one document |
//! | POST | /v1/collections/{name}/query | top-k retrieval |
//! | GET, POST | /v1/collections/{name}/grants, POST .../grants/revoke | grants (owner) |
//! | POST | /v1/worker/query, GET /v1/worker/usage | attested workers |
//! | GET | /v1/status, /v1/audit, /v1/console | the detailed status, audit log, console (operators) |

mod channel;
mod inbound;
pub mod server;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k256::ecdsa::VerifyingKey;
use prag_proto::api::{
    CreateCollectionRequest, DeleteDocumentRequest, ErrorBody, GrantRequest, QueryRequest, UploadResponse,
};
use serde::de::DeserializeOwned;

use inbound::{Inbound, SMALL_BODY, body_deadline, collect};

use crate::service::{Node, NodeError};

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("openapi.json");
/// Largest ledger transaction (a TDX report with its collateral is about 40 KB).
const MAX_LEDGER_TX: usize = 1024 * 1024;
/// Largest ledger query.
const MAX_LEDGER_QUERY: usize = 64 * 1024;

/// The router the node serves.
pub fn router(node: Arc<Node>) -> Router {
    let inner = inner_router(Arc::clone(&node));
    let sealed = post(channel::sealed).with_state(channel::ChannelState { node: Arc::clone(&node), inner });
    Router::new()
        .route("/v1/status", get(public_status))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/attestation", get(attestation))
        .route("/v1/sealed", sealed)
        .route("/v1/audit", get(audit))
        .route("/v1/console", get(console_snapshot))
        .route("/v1/console/events", get(console_events))
        .route("/v1/ledger/status", get(ledger_status))
        .route("/v1/ledger/entries", get(ledger_entries))
        .route("/v1/ledger/tx", post(ledger_tx))
        .route("/v1/ledger/query", post(ledger_query))
        .fallback(not_found)
        .with_state(node)
}

/// The routes reachable only through the owner's channel.
fn inner_router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/collections", get(list_collections).post(create_collection))
        .route("/v1/collections/{name}/documents", post(upload).get(list_documents))
        .route("/v1/collections/{name}/documents/delete", post(delete_document))
        .route("/v1/collections/{name}/query", post(query))
        .route("/v1/collections/{name}/grants", get(list_grants).post(grant))
        .route("/v1/collections/{name}/grants/revoke", post(revoke_grant))
        .route("/v1/worker/query", post(worker_query))
        .route("/v1/worker/usage", get(worker_usage))
        .route("/v1/status", get(detailed_status))
        .route("/v1/audit", get(audit))
        .route("/v1/console", get(console_snapshot))
        .fallback(not_found)
        .with_state(node)
}

/// An error answer: JSON body, status from the error's kind.
pub struct ApiError(pub NodeError);

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.0.to_string(), code: self.0.code().to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let NodeError::Internal(msg) = &self.0 {
            tracing::error!(error = %msg, "request failed");
        }
        (status, axum::Json(self.body())).into_response()
    }
}

/// Counts a refusal of a request whose signer is not (yet) known; the log line is rate-limited,
/// since anyone can make these as fast as they can send.
pub(crate) fn refused_unauthenticated(node: &Node, e: NodeError) -> ApiError {
    node.metrics.refuse(e.code());
    if node.metrics.refusal_log.allow() {
        tracing::warn!(reason = e.code(), "unauthenticated request refused");
    }
    ApiError(e)
}

pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError(NodeError::BadRequest(format!("invalid request body: {e}"))))
}

/// Counts refusals that come from the node's rules (forbidden, not found, ...).
fn counted<T>(node: &Node, r: Result<T, NodeError>) -> Result<T, ApiError> {
    r.map_err(|e| {
        if !matches!(e, NodeError::Internal(_)) {
            node.metrics.refuse(e.code());
        }
        ApiError(e)
    })
}

async fn public_status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    axum::Json(node.public_status())
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.render_metrics())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn attestation(State(node): State<Arc<Node>>) -> Result<impl IntoResponse, ApiError> {
    node.attestation().map(|a| axum::Json(a.clone())).ok_or_else(|| {
        ApiError(NodeError::Busy(
            "this node has no attestation report for its channel key: it is not running in a confidential VM \
             (or was not given --self-report), and is not in --attestation dev mode; clients will not send it data"
                .into(),
        ))
    })
}

async fn not_found(uri: Uri) -> ApiError {
    let path: String = uri.path().chars().take(128).collect();
    ApiError(NodeError::NotFound(format!("no such endpoint: {path}")))
}

async fn list_collections(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    let me = inbound.caller.pubkey_hex;
    let mine: Vec<_> = node.collection_infos().into_iter().filter(|c| c.owner == me).collect();
    Ok(axum::Json(mine))
}

async fn create_collection(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    let (who, req): (_, CreateCollectionRequest) = inbound.json(SMALL_BODY).await?;
    counted(&node, node.create_collection(&req.name, &who.key).await)?;
    let info = node.collection_infos().into_iter().find(|c| c.name == req.name);
    Ok((StatusCode::CREATED, axum::Json(info)))
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    path: String,
}

async fn upload(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<UploadQuery>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    let who = inbound.caller.key;
    // Whether this caller may upload this file here is decided before its body is read.
    counted(&node, node.check_upload(&who, &name, &q.path, inbound.body.declared_len()))?;
    let bytes = inbound.body.read(node.config().max_file_bytes).await?;
    let documents = counted(&node, node.upload(&who, &name, &q.path, bytes).await)?;
    Ok(axum::Json(UploadResponse { documents }))
}

async fn delete_document(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    let (who, req): (_, DeleteDocumentRequest) = inbound.json(SMALL_BODY).await?;
    let outcome =
        counted(&node, node.delete_document(&who.key, &name, req.doc_id.as_deref(), req.path.as_deref()).await)?;
    Ok(axum::Json(outcome))
}

async fn query(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    let (who, req): (_, QueryRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(counted(&node, node.query(&who.key, &name, req).await)?))
}

async fn list_documents(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.documents(&inbound.caller.key, &name))?))
}

async fn list_grants(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.grants(&inbound.caller.key, &name))?))
}

async fn grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    let (who, req): (_, GrantRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(counted(&node, node.set_grant(&who.key, &name, &req.subscriber, true).await)?))
}

async fn revoke_grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    let (who, req): (_, GrantRequest) = inbound.json(SMALL_BODY).await?;
    Ok(axum::Json(counted(&node, node.set_grant(&who.key, &name, &req.subscriber, false).await)?))
}

/// The worker path decides inside the node, so that every refusal of an authenticated worker goes
/// through the same decision and the same audit log.
async fn worker_query(State(node): State<Arc<Node>>, inbound: Inbound) -> Response {
    let caller = inbound.caller.key;
    let body = match inbound.body.read(SMALL_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match node.worker_query(&caller, &body).await {
        Ok(sealed) => axum::Json(sealed).into_response(),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            (status, axum::Json(ErrorBody { error: refusal.to_string(), code: refusal.code().to_string() }))
                .into_response()
        }
    }
}

async fn worker_usage(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.worker_usage(&inbound.caller.key))?))
}

fn require_operator(node: &Node, caller: &VerifyingKey) -> Result<(), ApiError> {
    if node.is_operator(caller) {
        Ok(())
    } else {
        node.metrics.refuse("forbidden");
        Err(ApiError(NodeError::Forbidden(
            "this is for the contracts' admin and the node's --operator keys only".into(),
        )))
    }
}

async fn detailed_status(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    require_operator(&node, &inbound.caller.key)?;
    Ok(axum::Json(node.status()))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn audit(
    State(node): State<Arc<Node>>,
    Query(q): Query<AuditQuery>,
    inbound: Inbound,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.audit_entries(&inbound.caller.key, q.limit.min(2000)))?))
}

async fn console_snapshot(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    require_operator(&node, &inbound.caller.key)?;
    Ok(axum::Json(node.console_feed()))
}

/// Server-sent events: a `snapshot` event with a [`prag_proto::api::ConsoleFeed`] each second.
/// The request is signed once, when the stream opens.
async fn console_events(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    require_operator(&node, &inbound.caller.key)?;
    let weak = Arc::downgrade(&node);
    drop(node);
    let stream = futures::stream::unfold((weak, true), |(weak, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let node = weak.upgrade()?;
        let feed = node.console_feed();
        drop(node);
        let event = Event::default().event("snapshot").json_data(&feed).map_err(|e| e.to_string());
        Some((event.map_err(std::io::Error::other), (weak, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

impl From<crate::ledger::LedgerError> for NodeError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        use crate::ledger::LedgerError as L;
        use prag_proto::contracts::ContractError as C;
        match e {
            L::Contract(C::Unauthorized { rule }) => NodeError::Forbidden(format!("refused by the contract: {rule}")),
            L::Contract(C::NotFound { what }) => NodeError::NotFound(format!("{what} not found")),
            L::Contract(c) => NodeError::BadRequest(format!("refused by the contract: {c}")),
            L::Stale { skew } => NodeError::Unauthorized(prag_proto::auth::AuthError::Stale { skew }),
            L::Replayed => NodeError::Unauthorized(prag_proto::auth::AuthError::Replayed),
            L::NoLedger | L::NotOrderer => NodeError::Conflict(e.to_string()),
            L::Io { .. } => NodeError::Internal(e.to_string()),
            L::Gap { .. } | L::Fork { .. } => NodeError::Conflict(e.to_string()),
        }
    }
}

async fn ledger_status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    axum::Json(node.ledger.status())
}

#[derive(serde::Deserialize)]
struct EntriesQuery {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn ledger_entries(State(node): State<Arc<Node>>, Query(q): Query<EntriesQuery>) -> impl IntoResponse {
    axum::Json(node.ledger.entries(q.from, q.limit.min(1000)))
}

/// Reads the body of an unsigned route: at most `limit` bytes, within the node's budget for
/// bodies nobody has vouched for.
async fn public_body(node: &Node, body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let _grant = node
        .public_inflight()
        .try_take("", limit as u64)
        .map_err(|e| refused_unauthenticated(node, NodeError::Busy(e.to_string())))?;
    collect(body, limit, body_deadline(limit as u64)).await.map_err(|e| refused_unauthenticated(node, e.0))
}

async fn ledger_tx(State(node): State<Arc<Node>>, body: Body) -> Result<impl IntoResponse, ApiError> {
    let body = public_body(&node, body, MAX_LEDGER_TX).await?;
    let tx: prag_proto::ledger::SignedTx = parse_json(&body)?;
    // The transaction's own signature first: nothing is fetched or checked for a forgery.
    tx.clone()
        .normalized()
        .verify()
        .map_err(|e| refused_unauthenticated(&node, NodeError::BadRequest(format!("transaction: {e}"))))?;
    node.fetch_collateral_for(&tx).await;
    counted(&node, node.check_transaction(&tx))?;
    if !node.ledger.is_orderer()
        && let Some(p2p) = node.p2p()
    {
        // This node does not order: hand the transaction to the one that does.
        let receipt = p2p.submit(tx).await.map_err(|e| ApiError(NodeError::Conflict(format!("forwarded: {e}"))))?;
        return Ok(axum::Json(receipt).into_response());
    }
    let ledger = Arc::clone(&node.ledger);
    let result = tokio::task::spawn_blocking(move || ledger.submit(tx))
        .await
        .map_err(|e| ApiError(NodeError::Internal(e.to_string())))?;
    let receipt = counted(&node, result.map_err(NodeError::from))?;
    tracing::info!(height = receipt.height, "ledger transaction committed");
    Ok(axum::Json(receipt).into_response())
}

async fn ledger_query(State(node): State<Arc<Node>>, body: Body) -> Result<impl IntoResponse, ApiError> {
    let body = public_body(&node, body, MAX_LEDGER_QUERY).await?;
    let q: serde_json::Value = parse_json(&body)?;
    Ok(axum::Json(counted(&node, node.ledger.query(&q).map_err(NodeError::from))?))
}
