//! This node in the compute market: an operator has it sign its own market messages; a stack's
//! owner asks it to settle; anyone fetches the inclusion proof of an answer it served.

use std::sync::Arc;

use axum::extract::{Path, State};
use prag_proto::api::ErrorBody;
use prag_proto::verifiable::InclusionProof;

use super::inbound::{Inbound, SMALL_BODY};
use crate::error::Result;
use crate::ledger::Receipt;
use crate::node::Node;

/// `POST /v1/operator/market`: a market message for this node to sign.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeMarketMsg {
    /// One market message, e.g. `{"register_node": {"collateral": "5000"}}`.
    msg: serde_json::Value,
}

#[utoipa::path(
    post,
    operation_id = "node_market_msg",
    path = "/v1/operator/market",
    tag = "sealed",
    summary = "Have this node sign one of its own market messages with its storage key (operators)",
    description = "Only the messages a node sends about itself: register_node, subscribe_node_to_task, \
        update_node_subscription, unsubscribe_node_from_task, withdraw_fees, permanently_disable_node, \
        destroy_disabled_node, claim_funds, claim_funds_for_stacks.",
    request_body = NodeMarketMsg,
    responses((status = 200, body = Receipt), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub(crate) async fn node_msg(State(node): State<Arc<Node>>, inbound: Inbound) -> Result<axum::Json<Receipt>> {
    node.access().require_operator(&inbound.caller.key)?;
    let body = inbound.body.read(SMALL_BODY).await?;
    let m: NodeMarketMsg = super::parse_json(&body)?;
    Ok(axum::Json(node.market().submit_for_operator(m.msg).await?))
}

#[utoipa::path(
    post,
    operation_id = "settle_stack",
    path = "/v1/market/stacks/{id}/settle",
    tag = "sealed",
    summary = "The stack's owner asks its serving node to settle it now (from the node's request log)",
    params(("id" = u64, Path, description = "Stack id")),
    responses((status = 200, body = Receipt), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody))
)]
pub(crate) async fn settle(
    State(node): State<Arc<Node>>,
    Path(id): Path<u64>,
    inbound: Inbound,
) -> Result<axum::Json<Receipt>> {
    Ok(axum::Json(node.market().owner_asks_settlement(&inbound.caller.key, id).await?))
}

#[utoipa::path(
    get,
    operation_id = "stack_inclusion_proof",
    path = "/v1/market/stacks/{id}/proof/{index}",
    tag = "market",
    summary = "The Merkle inclusion proof of answer `index` of a stack this node served",
    description = "Hashes only: the leaf, its path, the request count and the units bound into the stack root.",
    params(("id" = u64, Path, description = "Stack id"), ("index" = u64, Path, description = "Answer index")),
    responses((status = 200, body = InclusionProof), (status = 404, body = ErrorBody))
)]
pub(crate) async fn proof(
    State(node): State<Arc<Node>>,
    Path((id, index)): Path<(u64, u64)>,
) -> Result<axum::Json<InclusionProof>> {
    Ok(axum::Json(node.market().inclusion(id, index).await?))
}
