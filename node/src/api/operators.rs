//! Operators' routes (the contracts' admin and `--operator` keys): the detailed status, the audit
//! log and the console's snapshot and stream. Signed, on the owner's channel or (for the console,
//! which streams) with plain signature headers.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use prag_proto::api::{AuditEntry, ConsoleFeed, ErrorBody, NodeStatus};

use super::inbound::Inbound;
use crate::error::Result;
use crate::node::Node;

#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "sealed",
    operation_id = "detailed_status",
    summary = "The detailed status (operators)",
    description = "On the owner's channel only. Outside it, `GET /v1/status` is the public status.",
    responses((status = 200, body = NodeStatus), (status = 403, body = ErrorBody))
)]
pub(crate) async fn detailed_status(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<axum::Json<NodeStatus>> {
    node.access().require_operator(&inbound.caller.key)?;
    Ok(axum::Json(node.status().detailed()))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct AuditQuery {
    /// Entries to return, newest first (at most 2000).
    #[serde(default = "default_limit")]
    limit: usize,
}

pub(crate) fn default_limit() -> usize {
    100
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "operators",
    summary = "The audit log, newest first",
    description = "Signed headers, or on the owner's channel.",
    params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub(crate) async fn audit(
    State(node): State<Arc<Node>>,
    Query(q): Query<AuditQuery>,
    inbound: Inbound,
) -> Result<axum::Json<Vec<AuditEntry>>> {
    Ok(axum::Json(node.access().audit_entries(&inbound.caller.key, q.limit.min(2000))?))
}

#[utoipa::path(
    get,
    path = "/v1/console",
    tag = "operators",
    summary = "One console snapshot",
    description = "Signed headers, or on the owner's channel.",
    responses((status = 200, body = ConsoleFeed), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub(crate) async fn console(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<axum::Json<ConsoleFeed>> {
    node.access().require_operator(&inbound.caller.key)?;
    Ok(axum::Json(node.status().console()))
}

#[utoipa::path(
    get,
    path = "/v1/console/events",
    tag = "operators",
    summary = "The console's stream: a `snapshot` event with a ConsoleFeed each second",
    description = "Server-sent events; the request is signed (headers) once, when the stream opens.",
    responses(
        (status = 200, description = "text/event-stream of `snapshot` events, each a ConsoleFeed", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)
    )
)]
pub(crate) async fn console_events(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<impl IntoResponse> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    node.access().require_operator(&inbound.caller.key)?;
    let weak = Arc::downgrade(&node);
    drop(node);
    let stream = futures::stream::unfold((weak, true), |(weak, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let node = weak.upgrade()?;
        let feed = node.status().console();
        drop(node);
        let event = Event::default().event("snapshot").json_data(&feed).map_err(std::io::Error::other);
        Some((event, (weak, false)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
