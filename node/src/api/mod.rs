//! The node's HTTP API: two routers, and the OpenAPI document generated from the same
//! registrations (`utoipa`), so the document cannot drift from what is served.
//!
//! The **outer** router is what listens on the network: the public routes, the owner's channel
//! (`POST /v1/sealed`), the operators' console feed and audit log (signed headers), and the
//! contracts' ledger. The **inner** router (tag `sealed` in the document) is reachable only
//! through `/v1/sealed`, which authenticated the caller before the route sees the request; every
//! answer goes back sealed.

mod channel;
mod collections;
mod error;
mod inbound;
mod ledger;
mod market;
mod operators;
mod public;
pub mod server;
mod worker;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::Uri;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{Error, ErrorKind};
use crate::node::Node;

/// The router the node serves.
pub fn router(node: Arc<Node>) -> Router {
    let (inner, _) = inner_routes().split_for_parts();
    let inner = inner.fallback(not_found).with_state(Arc::clone(&node));
    let sealed =
        axum::routing::post(channel::sealed).with_state(channel::ChannelState { node: Arc::clone(&node), inner });
    let (outer, _) = outer_routes().split_for_parts();
    outer
        .route(CHANNEL_PATH, sealed)
        .fallback(not_found)
        .layer(axum::middleware::map_response_with_state(Arc::clone(&node), error::count_refusals))
        .with_state(node)
}

/// The owner's channel (documented by `channel::sealed`'s annotation).
const CHANNEL_PATH: &str = "/v1/sealed";

/// The routes outside the channel.
fn outer_routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(public::status))
        .routes(routes!(public::metrics))
        .routes(routes!(public::openapi))
        .routes(routes!(public::attestation))
        .routes(routes!(operators::audit))
        .routes(routes!(operators::console))
        .routes(routes!(operators::console_events))
        .routes(routes!(ledger::status))
        .routes(routes!(ledger::entries))
        .routes(routes!(ledger::tx))
        .routes(routes!(ledger::query))
        .routes(routes!(market::proof))
}

/// The routes reachable only through the owner's channel.
fn inner_routes() -> OpenApiRouter<Arc<Node>> {
    OpenApiRouter::new()
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(collections::upload, collections::documents))
        .routes(routes!(collections::delete))
        .routes(routes!(collections::query))
        .routes(routes!(collections::grants, collections::grant))
        .routes(routes!(collections::revoke))
        .routes(routes!(worker::query))
        .routes(routes!(worker::usage))
        .routes(routes!(market::node_msg))
        .routes(routes!(market::settle))
        .routes(routes!(operators::detailed_status))
        .routes(routes!(operators::audit))
        .routes(routes!(operators::console))
}

/// The OpenAPI document: the outer routes at their paths; the inner ones (tag `sealed`, and the
/// operators' routes reachable both ways) at theirs, inside `POST /v1/sealed`. Where an inner
/// route shares a path and method with an outer one (`GET /v1/status`), the outer one is
/// documented at the path and the inner one under its own operation id with the `sealed` tag.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = outer_routes().split_for_parts();
    let (_, channel) = OpenApiRouter::<channel::ChannelState>::new().routes(routes!(channel::sealed)).split_for_parts();
    doc.merge(channel);
    let (_, inner) = inner_routes().split_for_parts();
    for (path, item) in inner.paths.paths {
        let entry = doc.paths.paths.entry(path.clone());
        match entry {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(item);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                // Same path outside and inside: keep the outer operation at the path, and add the
                // inner one under an extension so nothing served is undocumented.
                let existing = o.get_mut();
                if existing.get.is_none() {
                    existing.get = item.get;
                } else if let Some(op) = item.get
                    && op.operation_id.as_deref() != existing.get.as_ref().and_then(|g| g.operation_id.as_deref())
                {
                    let ext = existing.extensions.get_or_insert_with(Default::default);
                    ext.insert("x-sealed-get".to_string(), serde_json::to_value(op).unwrap_or_default());
                }
                if existing.post.is_none() {
                    existing.post = item.post;
                }
            }
        }
    }
    if let (Some(components), Some(more)) = (doc.components.as_mut(), inner.components) {
        components.schemas.extend(more.schemas);
    }
    // The one list of what the extractor reads, not a copy in an attribute.
    if let Some(upload) = doc.paths.paths.get_mut("/v1/collections/{name}/documents").and_then(|p| p.post.as_mut()) {
        let rest = upload.description.take().unwrap_or_default();
        upload.description = Some(format!("Reads {}. {rest}", crate::extract::SUPPORTED));
    }
    doc
}

/// The document as served, built once.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "PRAG node API",
        version = "2",
        description = "Two kinds of routes. Public, operator and ledger routes are plain HTTP. Everything about an \
owner's data (collections, documents, uploads, queries, grants) and the attested workers' path is reachable only \
through POST /v1/sealed, the owner's channel: the routes tagged `sealed` describe the *inner* request, sealed with \
HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the node's channel key from GET \
/v1/attestation, after the client has verified that attestation. Signatures: ECDSA secp256k1 over SHA-256 of \
PRAG-REQUEST-V2\\nMETHOD\\nPATH?QUERY\\nhex(SHA-256(body))\\nTIMESTAMP\\nNONCE\\nCANONICAL_PUBKEY\\nAUDIENCE \
(CANONICAL_PUBKEY: lower-case hex of the 33-byte compressed key; AUDIENCE: the node's id). Every error answer is an \
ErrorBody whose `code` comes from one table: the same condition has the same status and code on every route and \
every node."
    ),
    components(schemas(prag_proto::api::WorkerAnswer, prag_proto::api::ChannelHead)),
    tags(
        (name = "public", description = "Anyone"),
        (name = "sealed", description = "Only inside POST /v1/sealed (the owner's channel)"),
        (name = "owner's channel", description = "The channel itself"),
        (name = "operators", description = "The contracts' admin and --operator keys; signed headers or the channel"),
        (name = "ledger", description = "The contracts' ledger"),
    )
)]
struct ApiDoc;

/// A JSON request body.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> crate::error::Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("invalid request body: {e}")))
}

async fn not_found(uri: Uri) -> Error {
    let path: String = uri.path().chars().take(128).collect();
    Error::new(ErrorKind::NotFound, format!("no such endpoint: {path}"))
}
