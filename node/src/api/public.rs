//! What anyone may ask: that the node is up, its metrics, this API, and the attestation that
//! vouches for its channel key.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prag_proto::api::{ErrorBody, NodeAttestation, PublicStatus};

use crate::error::{Error, ErrorKind, Result};
use crate::node::Node;

/// `GET /v1/status`.
#[utoipa::path(
    get,
    operation_id = "public_status",
    path = "/v1/status",
    tag = "public",
    summary = "That the node is up",
    description = "Version, uptime, node id, attestation mode, whether it has a report for its channel key. \
        Nothing about collections, keys or counts: the detailed status is for operators, on the owner's channel \
        (the sealed `GET /v1/status`).",
    responses((status = 200, body = PublicStatus))
)]
pub(crate) async fn status(State(node): State<Arc<Node>>) -> axum::Json<PublicStatus> {
    axum::Json(node.status().public())
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "public",
    summary = "Prometheus metrics (aggregates only)",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], node.status().prometheus())
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "public",
    summary = "This document",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json"))
)]
pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi_json())
}

/// `GET /v1/attestation`.
#[utoipa::path(
    get,
    path = "/v1/attestation",
    tag = "public",
    summary = "The node's channel key and the attestation that vouches for it",
    description = "An attestation report binding the node's storage key, and the storage key's signature over the \
        node id and the channel key. Clients verify it before they send anything.",
    responses(
        (status = 200, body = NodeAttestation),
        (status = 503, description = "No report: clients send this node nothing", body = ErrorBody)
    )
)]
pub(crate) async fn attestation(State(node): State<Arc<Node>>) -> Result<axum::Json<NodeAttestation>> {
    node.attestation().map(|a| axum::Json(a.clone())).ok_or_else(|| {
        Error::new(
            ErrorKind::Busy,
            "this node has no attestation report for its channel key: it is not running in a confidential VM \
             (or was not given --self-report), and is not in --attestation dev mode; clients will not send it data",
        )
    })
}
