//! The one mapping from the node's [`Error`] to an HTTP answer: the kind's status, and a JSON
//! [`ErrorBody`] with the kind's code and the public message. Internal errors are logged in full
//! and answered without their causes. Every refusal is counted once, by its code, by the layer
//! [`count_refusals`] on the outer router (answers of the owner's channel carry their kind out
//! through the sealing).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prag_proto::api::ErrorBody;

use crate::error::{Error, ErrorKind};
use crate::node::Node;

/// The JSON body of an error answer.
pub(crate) fn body(e: &Error) -> ErrorBody {
    ErrorBody { error: e.public_message().to_string(), code: e.code().to_string() }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if self.kind().is_internal() {
            tracing::error!(code = self.code(), error = %self.chain(), "request failed");
        }
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(body(&self))).into_response();
        response.extensions_mut().insert(self.kind());
        response
    }
}

/// Counts the refusal an answer carries (its kind, set by [`Error::into_response`]).
pub(crate) async fn count_refusals(State(node): State<Arc<Node>>, response: Response) -> Response {
    if let Some(kind) = response.extensions().get::<ErrorKind>()
        && !kind.is_internal()
    {
        node.metrics().refuse(kind.code());
    }
    response
}

/// A refusal of a request whose signer is not (yet) known: logged at most a few times a second,
/// since anyone can make these as fast as they can send.
pub(crate) fn unauthenticated(node: &Node, e: Error) -> Error {
    if node.metrics().refusal_log.allow() {
        tracing::warn!(reason = e.code(), "unauthenticated request refused");
    }
    e
}
