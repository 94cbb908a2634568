//! `POST /v1/sealed`: the node's end of the owner's channel (format in `crate::channel`).
//!
//! In order, each step bounded before the next begins:
//! 1. open the head from the `x-prag-channel` header (a few KiB at most; the body is not touched);
//! 2. authenticate the signed head: signature over method, path, body hash, time, nonce, the
//!    canonical key and this node's id; freshness; replay;
//! 3. admit: the body's declared length against the route's limit, and the caller's and the
//!    node's budget of bytes in flight;
//! 4. hand the inner request to the inner router, the caller in its extensions and the body still
//!    unread (the route reads and opens it if and when it wants it);
//! 5. seal whatever the route answered.
//!
//! Failures at step 1 are answered in clear (there is no key to seal with yet, and nothing in them
//! is private); from step 2 on, every answer — refusals included — is sealed.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use prag_proto::api::ErrorBody;
use tower::ServiceExt;

use super::error::unauthenticated;
use super::inbound::{Authenticated, SMALL_BODY, SealedBody, collect};
use crate::channel::{HEADER_CHANNEL, NodeRequest, ResponseKey, seal_response};
use crate::error::{Error, ErrorKind, Result};
use crate::node::Node;

/// Largest answer sealed (listings of very large collections come close).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct ChannelState {
    pub node: Arc<Node>,
    /// The routes reachable only through the channel.
    pub inner: Router,
}

/// The largest body a route takes.
pub(crate) fn route_body_limit(method: &str, path: &str, max_file_bytes: usize) -> usize {
    let path = path.split('?').next().unwrap_or(path);
    let upload = method == "POST"
        && path
            .strip_prefix("/v1/collections/")
            .and_then(|rest| rest.strip_suffix("/documents"))
            .is_some_and(|name| !name.contains('/'));
    if upload { max_file_bytes } else { SMALL_BODY }
}

/// `POST /v1/sealed`.
#[utoipa::path(
    post,
    path = "/v1/sealed",
    tag = "owner's channel",
    summary = "The owner's channel: one sealed inner request",
    description = "The inner request's head (method, path, content type, body length, signature headers) is sealed \
        with HPKE to the node's channel key in the `x-prag-channel` header; its sealed body is this body. Every route \
        tagged `sealed` is reachable only this way. The answer is `200 application/octet-stream`: the inner status \
        and body, sealed under a key exported from the same HPKE context.",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("x-prag-channel" = String, Header, description = "The sealed head (base64)")),
    responses(
        (status = 200, description = "The sealed answer (refusals included, once the head opened)", content_type = "application/octet-stream"),
        (status = 400, description = "The head does not open (answered in clear)", body = ErrorBody),
    )
)]
pub(crate) async fn sealed(State(state): State<ChannelState>, headers: HeaderMap, body: Body) -> Response {
    let node = &state.node;
    // 1. The head.
    let Some(value) = headers.get(HEADER_CHANNEL).and_then(|v| v.to_str().ok()) else {
        let e = Error::new(ErrorKind::BadChannel, format!("header {HEADER_CHANNEL} is missing"));
        return unauthenticated(node, e).into_response();
    };
    let opened = match NodeRequest::open(value, node.channel_keys().private(), node.node_id()) {
        Ok(r) => r,
        Err(e) => return unauthenticated(node, Error::new(ErrorKind::BadChannel, e.to_string())).into_response(),
    };
    let (head, opener, key) = opened.into_parts();
    let answer = match admit_and_run(&state, head, opener, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    seal(answer, &key).await
}

async fn admit_and_run(
    state: &ChannelState,
    head: prag_proto::api::ChannelHead,
    opener: crate::channel::BodyOpener,
    body: Body,
) -> Result<Response> {
    let node = &state.node;
    // 2. Who, exactly once, for this node.
    if head.auth.audience != node.node_id() {
        return Err(unauthenticated(node, prag_proto::auth::AuthError::WrongAudience.into()));
    }
    let verified = crate::auth::authenticate(node.nonces(), &head.auth, &head.method, &head.path, node.node_id())
        .map_err(|e| unauthenticated(node, e.into()))?;
    // 3. Room for the body.
    let limit = route_body_limit(&head.method, &head.path, node.config().ingest.max_file_bytes);
    if head.body_len > limit as u64 {
        return Err(Error::too_large(format!(
            "the body is {} bytes; {} {} takes at most {limit}",
            head.body_len, head.method, head.path
        )));
    }
    let _grant = node.inflight().try_take(&verified.pubkey_hex, head.body_len)?;
    // 4. The inner request.
    let bad = |what: &str| Error::bad_request(format!("the sealed request's {what} is invalid"));
    if !head.path.starts_with("/v1/") || head.path.len() > 4096 {
        return Err(bad("path"));
    }
    let uri: Uri = head.path.parse().map_err(|_| bad("path"))?;
    let method = Method::from_bytes(head.method.as_bytes()).map_err(|_| bad("method"))?;
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    if let Some(ct) = head.content_type.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
        req.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    req.extensions_mut().insert(Authenticated {
        key: verified.key,
        pubkey_hex: verified.pubkey_hex,
        body_sha256: verified.body_sha256,
    });
    req.extensions_mut().insert(SealedBody(Arc::new(Mutex::new(Some(opener)))));
    let Ok(resp) = state.inner.clone().oneshot(req).await;
    Ok(resp)
}

/// Seals an answer: `200 application/octet-stream`, the route's status inside. The kind of a
/// refusal comes out with it, for the refusal counters.
async fn seal(answer: Response, key: &ResponseKey) -> Response {
    let status = answer.status().as_u16();
    let kind = answer.extensions().get::<ErrorKind>().copied();
    let (status, bytes) = match collect(answer.into_body(), MAX_ANSWER, std::time::Duration::from_secs(600)).await {
        Ok(b) => (status, b),
        Err(e) => (500, serde_json::to_vec(&super::error::body(&e)).unwrap_or_default().into()),
    };
    let mut sealed = match seal_response(key, status, &bytes) {
        Ok(sealed) => sealed_response(sealed),
        Err(e) => {
            tracing::error!(error = %e, "cannot seal an answer");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Some(kind) = kind {
        sealed.extensions_mut().insert(kind);
    }
    sealed
}

fn sealed_response(sealed: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], sealed).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_take_large_bodies() {
        assert_eq!(route_body_limit("POST", "/v1/collections/clinic/documents?path=a.pdf", 99), 99);
        assert_eq!(route_body_limit("POST", "/v1/collections/clinic/documents/delete", 99), SMALL_BODY);
        assert_eq!(route_body_limit("POST", "/v1/collections/a/b/documents", 99), SMALL_BODY);
        assert_eq!(route_body_limit("GET", "/v1/collections/clinic/documents", 99), SMALL_BODY);
        assert_eq!(route_body_limit("POST", "/v1/collections/clinic/query", 99), SMALL_BODY);
    }
}
