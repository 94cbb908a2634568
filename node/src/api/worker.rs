//! Attested workers: retrieval for a subscriber, and their own usage. Reachable only through the
//! owner's channel; every refusal of a signed request is audited.

use std::sync::Arc;

use axum::extract::State;
use prag_proto::api::{ErrorBody, SealedAnswer, WorkerQueryRequest, WorkerUsage};

use super::inbound::{Inbound, SMALL_BODY};
use crate::error::Result;
use crate::node::Node;

#[utoipa::path(
    post,
    operation_id = "worker_query",
    path = "/v1/worker/query",
    tag = "sealed",
    summary = "An attested worker's retrieval for a subscriber",
    description = "Signed by the worker's registered key. Refusal codes, in the order checked: unsigned, \
        malformed_signature, bad_signature, stale, replayed, wrong_audience, bad_request, unregistered_worker, \
        attestation, unbound_key, stale_liveliness, revoked_api_key, inactive_subscriber, unknown_collection, \
        no_grant. The answer is a WorkerAnswer sealed to the request's ephemeral X25519 key.",
    request_body = WorkerQueryRequest,
    responses(
        (status = 200, body = SealedAnswer),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "unknown_collection", body = ErrorBody),
    )
)]
pub(crate) async fn query(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<axum::Json<SealedAnswer>> {
    let caller = inbound.caller.key;
    let body = inbound.body.read(SMALL_BODY).await?;
    Ok(axum::Json(node.access().worker_query(&caller, &body).await?))
}

#[utoipa::path(
    get,
    operation_id = "worker_usage",
    path = "/v1/worker/usage",
    tag = "sealed",
    summary = "What this node served the signing worker, per subscriber (for report_work)",
    responses((status = 200, body = Vec<WorkerUsage>), (status = 403, body = ErrorBody))
)]
pub(crate) async fn usage(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<axum::Json<Vec<WorkerUsage>>> {
    Ok(axum::Json(node.access().worker_usage(&inbound.caller.key)?))
}
