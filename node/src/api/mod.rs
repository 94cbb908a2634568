//! The node's HTTP API. A request's path reads top to bottom here: parse and authenticate, then
//! call the node, then map its answer or error to HTTP.
//!
//! | method | path | signed | what |
//! |---|---|---|---|
//! | GET | /v1/status | no | node, embedder and collection status |
//! | GET | /metrics | no | Prometheus metrics |
//! | GET | /v1/openapi.json | no | this API as OpenAPI 3 |
//! | GET | /v1/collections | yes | collections the caller owns |
//! | POST | /v1/collections | yes | create a collection (caller becomes owner) |
//! | GET | /v1/collections/{name}/documents | yes | list documents (owner only) |
//! | POST | /v1/collections/{name}/documents | yes | upload one file |
//! | POST | /v1/collections/{name}/documents/delete | yes | delete one document |
//! | POST | /v1/collections/{name}/query | yes | top-k retrieval |
//! | GET | /v1/collections/{name}/grants | yes | subscribers granted access (owner only) |
//! | POST | /v1/collections/{name}/grants | yes | grant a subscriber's workers access (owner only) |
//! | POST | /v1/collections/{name}/grants/revoke | yes | revoke a grant (owner only) |
//! | POST | /v1/worker/query | worker key | attested worker's retrieval; answer sealed to its ephemeral key |
//! | GET | /v1/worker/usage | worker key | what this node served the worker, per subscriber |
//! | GET | /v1/audit?limit=N | operator | audit log, newest first |
//! | GET | /v1/console | operator | one snapshot of everything the console shows |
//! | GET | /v1/console/events | operator | the same snapshot as server-sent events, every second |
//! | GET | /v1/ledger/status | no | ledger height, head, admin, orderer, damage found at start |
//! | GET | /v1/ledger/entries?from=N&limit=M | no | log entries (replication, inspection) |
//! | POST | /v1/ledger/tx | tx-signed | submit a signed contract transaction |
//! | POST | /v1/ledger/query | no* | contract query (*queries that need it carry their own signature or permit) |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use k256::ecdsa::VerifyingKey;
use prag_proto::api::{
    CreateCollectionRequest, DeleteDocumentRequest, ErrorBody, GrantRequest, QueryRequest, UploadRequest,
    UploadResponse,
};
use prag_proto::auth::{self, SignatureHeaders};
use serde::de::DeserializeOwned;

use crate::service::{Node, NodeError};

/// The OpenAPI document, kept beside the code it describes.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(node: Arc<Node>) -> Router {
    // Base64 makes an upload body 4/3 the file size, plus JSON framing.
    let body_limit = node.config().max_file_bytes / 3 * 4 + 64 * 1024;
    Router::new()
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/collections", get(list_collections).post(create_collection))
        .route("/v1/collections/{name}/documents", post(upload).get(list_documents))
        .route("/v1/collections/{name}/documents/delete", post(delete_document))
        .route("/v1/collections/{name}/query", post(query))
        .route("/v1/collections/{name}/grants", get(list_grants).post(grant))
        .route("/v1/collections/{name}/grants/revoke", post(revoke_grant))
        .route("/v1/worker/query", post(worker_query))
        .route("/v1/worker/usage", get(worker_usage))
        .route("/v1/audit", get(audit))
        .route("/v1/console", get(console_snapshot))
        .route("/v1/console/events", get(console_events))
        .route("/v1/ledger/status", get(ledger_status))
        .route("/v1/ledger/entries", get(ledger_entries))
        .route("/v1/ledger/tx", post(ledger_tx))
        .route("/v1/ledger/query", post(ledger_query))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(node)
}

/// An error answer: JSON body, status from the error's kind; refusals are counted.
struct ApiError(NodeError);

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            NodeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            NodeError::Forbidden(_) => StatusCode::FORBIDDEN,
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::Conflict(_) => StatusCode::CONFLICT,
            NodeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NodeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            NodeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let NodeError::Internal(msg) = &self.0 {
            tracing::error!(error = %msg, "request failed");
        }
        (status, axum::Json(ErrorBody { error: self.0.to_string(), code: self.0.code().to_string() })).into_response()
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The four signature headers, or which one is missing or malformed.
fn signature_headers(headers: &HeaderMap) -> Result<SignatureHeaders, auth::AuthError> {
    let get = |name: &'static str| header_str(headers, name).ok_or(auth::AuthError::Missing(name));
    let pubkey = get(auth::HEADER_PUBKEY)?;
    let timestamp = get(auth::HEADER_TIMESTAMP)?;
    let nonce = get(auth::HEADER_NONCE)?;
    let signature = get(auth::HEADER_SIGNATURE)?;
    let timestamp = timestamp.parse::<u64>().map_err(|_| auth::AuthError::Malformed(auth::HEADER_TIMESTAMP))?;
    Ok(SignatureHeaders {
        pubkey: pubkey.to_string(),
        timestamp,
        nonce: nonce.to_string(),
        signature: signature.to_string(),
    })
}

fn signed_path(uri: &Uri) -> &str {
    uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path())
}

/// Authenticates a request; counts and returns the refusal otherwise.
fn caller(node: &Node, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<VerifyingKey, ApiError> {
    let result = signature_headers(headers).and_then(|h| {
        let missing = auth::HEADER_SIGNATURE;
        crate::auth::authenticate(&node.nonces, Some(h), missing, method.as_str(), signed_path(uri), body)
    });
    result.map_err(|e| {
        let e = NodeError::Unauthorized(e);
        node.metrics.refuse(e.code());
        tracing::warn!(reason = e.code(), path = uri.path(), "request refused");
        ApiError(e)
    })
}

/// A request whose signature checked out: the caller's key and the body it signed. Extracting it
/// is the authentication step of every signed endpoint.
struct Signed {
    caller: VerifyingKey,
    body: Bytes,
}

impl Signed {
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.body)
    }
}

impl axum::extract::FromRequest<Arc<Node>> for Signed {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let request = axum::extract::Request::from_parts(parts.clone(), body);
        // Through `Bytes` so the router's body limit applies.
        let body = Bytes::from_request(request, node).await.map_err(IntoResponse::into_response)?;
        let caller =
            caller(node, &parts.method, &parts.uri, &parts.headers, &body).map_err(IntoResponse::into_response)?;
        Ok(Signed { caller, body })
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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

async fn status(State(node): State<Arc<Node>>) -> impl IntoResponse {
    axum::Json(node.status())
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.render_metrics())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(NodeError::NotFound(format!("no such endpoint: {}", uri.path())))
}

async fn list_collections(State(node): State<Arc<Node>>, signed: Signed) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    let me = prag_proto::account::public_key_hex(&who);
    let mine: Vec<_> = node.collection_infos().into_iter().filter(|c| c.owner == me).collect();
    Ok(axum::Json(mine))
}

async fn create_collection(State(node): State<Arc<Node>>, signed: Signed) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    let req: CreateCollectionRequest = signed.json()?;
    counted(&node, node.create_collection(&req.name, &who).await)?;
    let info = node.collection_infos().into_iter().find(|c| c.name == req.name);
    Ok((StatusCode::CREATED, axum::Json(info)))
}

async fn upload(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    let req: UploadRequest = signed.json()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(req.content_base64.as_bytes())
        .map_err(|e| ApiError(NodeError::BadRequest(format!("content_base64 is not valid base64: {e}"))))?;
    let documents = counted(&node, node.upload(&who, &name, &req.path, bytes).await)?;
    Ok(axum::Json(UploadResponse { documents }))
}

async fn delete_document(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    let req: DeleteDocumentRequest = signed.json()?;
    let outcome = counted(&node, node.delete_document(&who, &name, req.doc_id.as_deref(), req.path.as_deref()).await)?;
    Ok(axum::Json(outcome))
}

async fn query(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    let req: QueryRequest = signed.json()?;
    Ok(axum::Json(counted(&node, node.query(&who, &name, req).await)?))
}

async fn list_documents(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let who = signed.caller;
    Ok(axum::Json(counted(&node, node.documents(&who, &name))?))
}

async fn list_grants(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.grants(&signed.caller, &name))?))
}

async fn grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let req: GrantRequest = signed.json()?;
    Ok(axum::Json(counted(&node, node.set_grant(&signed.caller, &name, &req.subscriber, true).await)?))
}

async fn revoke_grant(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    let req: GrantRequest = signed.json()?;
    Ok(axum::Json(counted(&node, node.set_grant(&signed.caller, &name, &req.subscriber, false).await)?))
}

/// The worker path authenticates inside the node, so that every refusal (unsigned, stale,
/// replayed included) goes through the same decision and the same audit log.
async fn worker_query(
    State(node): State<Arc<Node>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match node.worker_query(signature_headers(&headers), method.as_str(), signed_path(&uri), &body).await {
        Ok(sealed) => axum::Json(sealed).into_response(),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            (status, axum::Json(ErrorBody { error: refusal.to_string(), code: refusal.code().to_string() }))
                .into_response()
        }
    }
}

async fn worker_usage(State(node): State<Arc<Node>>, signed: Signed) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.worker_usage(&signed.caller))?))
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

async fn audit(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
    signed: Signed,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(counted(&node, node.audit_entries(&signed.caller, q.limit.min(2000)))?))
}

fn require_operator(node: &Node, caller: &VerifyingKey) -> Result<(), ApiError> {
    if node.is_operator(caller) {
        Ok(())
    } else {
        node.metrics.refuse("forbidden");
        Err(ApiError(NodeError::Forbidden(
            "the console feed is for the contracts' admin and --operator keys only".into(),
        )))
    }
}

async fn console_snapshot(State(node): State<Arc<Node>>, signed: Signed) -> Result<impl IntoResponse, ApiError> {
    require_operator(&node, &signed.caller)?;
    Ok(axum::Json(node.console_feed()))
}

/// Server-sent events: a `snapshot` event with a [`prag_proto::api::ConsoleFeed`] each second.
/// The request is signed once, when the stream opens.
async fn console_events(State(node): State<Arc<Node>>, signed: Signed) -> Result<impl IntoResponse, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    require_operator(&node, &signed.caller)?;
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

async fn ledger_entries(
    State(node): State<Arc<Node>>,
    axum::extract::Query(q): axum::extract::Query<EntriesQuery>,
) -> impl IntoResponse {
    axum::Json(node.ledger.entries(q.from, q.limit.min(1000)))
}

async fn ledger_tx(State(node): State<Arc<Node>>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let tx: prag_proto::ledger::SignedTx = parse_json(&body)?;
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

async fn ledger_query(State(node): State<Arc<Node>>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let q: serde_json::Value = parse_json(&body)?;
    Ok(axum::Json(counted(&node, node.ledger.query(&q).map_err(NodeError::from))?))
}
