//! Who is asking, and the body they sent — in that order.
//!
//! [`Inbound`] is the authentication step of every signed route. A request that came through the
//! owner's channel was authenticated by the channel (`channel.rs`) before the route saw it: the
//! route finds the caller in the request's extensions. A plain signed request (the operator
//! console) is authenticated here from its headers. Either way the signature covers the body's
//! hash, so it is checked **before** any body byte is read; the body is read later, only by routes
//! that want it, each with its own size limit and deadline ([`PendingBody::read`]), and must have
//! the signed hash.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use k256::ecdsa::VerifyingKey;
use parking_lot::Mutex;
use prag_proto::auth::{self, AuthError, SignatureHeaders};

use crate::channel::BodyOpener;
use crate::error::{Error, ErrorKind, Result};
use crate::node::Node;

/// Largest body of any route but uploads.
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated {
    pub(crate) key: VerifyingKey,
    /// The key's canonical spelling.
    pub(crate) pubkey_hex: String,
    pub(crate) body_sha256: [u8; 32],
}

/// The sealed body of a channel request, to be opened once by the route.
#[derive(Clone)]
pub(crate) struct SealedBody(pub(crate) Arc<Mutex<Option<BodyOpener>>>);

/// A body not read yet.
pub(crate) struct PendingBody {
    kind: BodyKind,
}

enum BodyKind {
    Plain { body: Body, sha256: [u8; 32] },
    // Boxed: the HPKE context is large, and most bodies are plain or small.
    Sealed { body: Body, opener: Option<Box<BodyOpener>>, sha256: [u8; 32] },
}

/// An authenticated request: the caller, and the body still unread.
pub(crate) struct Inbound {
    pub(crate) caller: Authenticated,
    pub(crate) body: PendingBody,
}

/// How long reading a body of `len` bytes may take: 30 s, plus a second per MiB.
pub(crate) fn body_deadline(len: u64) -> Duration {
    Duration::from_secs(30 + len / (1024 * 1024))
}

impl PendingBody {
    /// The declared length of a sealed body (plain bodies declare none).
    pub(crate) fn declared_len(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Sealed { opener: Some(o), .. } => Some(o.body_len()),
            _ => None,
        }
    }

    /// Reads the body — at most `limit` bytes, within [`body_deadline`] — opens it if sealed, and
    /// checks it against the signed hash.
    pub(crate) async fn read(self, limit: usize) -> Result<Vec<u8>> {
        match self.kind {
            BodyKind::Plain { body, sha256 } => {
                let bytes = collect(body, limit, body_deadline(limit as u64)).await?;
                auth::check_body(&sha256, &bytes)?;
                Ok(Vec::from(bytes))
            }
            BodyKind::Sealed { body, opener, sha256 } => {
                let opener = opener.ok_or_else(|| Error::new(ErrorKind::Internal, "the body was already read"))?;
                let (sealed_len, plain_len) = (opener.sealed_len(), opener.body_len());
                if plain_len > limit as u64 {
                    return Err(Error::too_large(format!(
                        "the body is {plain_len} bytes; this route takes at most {limit}"
                    )));
                }
                let sealed = collect(body, sealed_len as usize, body_deadline(sealed_len)).await?;
                // Without a copy when the buffer is not shared.
                let plain =
                    (*opener).open(Vec::from(sealed)).map_err(|e| Error::bad_request(format!("sealed body: {e}")))?;
                auth::check_body(&sha256, &plain)?;
                Ok(plain)
            }
        }
    }
}

/// Reads at most `limit` bytes within `deadline`.
pub(crate) async fn collect(body: Body, limit: usize, deadline: Duration) -> Result<Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(deadline, limited.collect()).await {
        Err(_) => {
            Err(Error::new(ErrorKind::Timeout, format!("the body did not arrive within {} s", deadline.as_secs())))
        }
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(Error::too_large(format!("the body is larger than {limit} bytes")))
        }
        Ok(Err(e)) => Err(Error::bad_request(format!("cannot read the body: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The signature headers of a plain request, or which one is missing or malformed.
pub(crate) fn signature_headers(headers: &HeaderMap) -> Result<SignatureHeaders, AuthError> {
    let get = |name: &'static str| header_str(headers, name).ok_or(AuthError::Missing(name));
    let pubkey = get(auth::HEADER_PUBKEY)?;
    let timestamp = get(auth::HEADER_TIMESTAMP)?;
    let nonce = get(auth::HEADER_NONCE)?;
    let signature = get(auth::HEADER_SIGNATURE)?;
    let content_sha256 = get(auth::HEADER_CONTENT_SHA256)?;
    let timestamp = timestamp.parse::<u64>().map_err(|_| AuthError::Malformed(auth::HEADER_TIMESTAMP))?;
    Ok(SignatureHeaders {
        pubkey: pubkey.to_string(),
        timestamp,
        nonce: nonce.to_string(),
        signature: signature.to_string(),
        content_sha256: content_sha256.to_string(),
        audience: header_str(headers, auth::HEADER_AUDIENCE).unwrap_or_default().to_string(),
    })
}

impl FromRequest<Arc<Node>> for Inbound {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        if let Some(caller) = parts.extensions.remove::<Authenticated>() {
            let opener = parts.extensions.remove::<SealedBody>().and_then(|s| s.0.lock().take()).map(Box::new);
            let sha256 = caller.body_sha256;
            let body = PendingBody { kind: BodyKind::Sealed { body, opener, sha256 } };
            return Ok(Inbound { caller, body });
        }
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(parts.uri.path());
        let verified = signature_headers(&parts.headers)
            .and_then(|h| crate::auth::authenticate(node.nonces(), &h, parts.method.as_str(), path, node.node_id()));
        let verified = verified.map_err(|e| super::error::unauthenticated(node, e.into()))?;
        let sha256 = verified.body_sha256;
        Ok(Inbound {
            caller: Authenticated { key: verified.key, pubkey_hex: verified.pubkey_hex, body_sha256: sha256 },
            body: PendingBody { kind: BodyKind::Plain { body, sha256 } },
        })
    }
}

impl Inbound {
    /// Reads the body (at most `limit` bytes) and parses it as JSON.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(self, limit: usize) -> Result<(Authenticated, T)> {
        let bytes = self.body.read(limit).await?;
        let value = super::parse_json(&bytes)?;
        Ok((self.caller, value))
    }
}
