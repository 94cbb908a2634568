//! The client of a node's API, used by the `prag` commands: everything it sends about an owner's
//! data goes over the owner's channel (`crate::channel`), and only after it has checked the node.
//!
//! Before the first request, the client fetches `GET /v1/attestation` and verifies it against its
//! [`NodeTrust`]: the report is genuine and allowed by the client's policy, binds the key that
//! signed the node's channel card, and the card names the channel key. A node in attestation
//! development mode is accepted only when the trust allows it, and a warning says so on every
//! run. Requests are then signed (`prag_proto::auth`, the node's id as audience) and sealed to the
//! channel key; answers come back sealed.

use std::fmt::Display;

use k256::ecdsa::SigningKey;
use prag_proto::api::{ChannelHead, ErrorBody, NodeAttestation, UploadResponse};
use prag_proto::auth::sign_request;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::{ClientRequest, HEADER_CHANNEL, NodeTrust, SealedRequest, open_response, verify_node};
use crate::identity::HpkePublicKey;

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with a refusal (its error body).
    #[error("the node refused ({status} {code}): {message}")]
    Refused { status: u16, code: String, message: String },
    /// The node answered something that is neither a result nor an error body.
    #[error("the node answered {status}: {body}")]
    Unexpected { status: u16, body: String },
    /// The request could not be made, or its answer not read (the node unreachable, not
    /// attested, its answer not opening, ...).
    #[error("{context}: {reason}")]
    Failed { context: String, reason: String },
}

impl ClientError {
    /// The node's refusal code, if it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn failed(context: impl Into<String>, reason: impl Display) -> ClientError {
    ClientError::Failed { context: context.into(), reason: reason.to_string() }
}

/// Whether a request failed because its connection closed before any answer came (an EOF or a
/// reset where the answer's head should be), not because the node could not be reached at all or
/// the request timed out.
fn closed_before_answering(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(h) = cause.downcast_ref::<hyper::Error>()
            && h.is_incomplete_message()
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// An error and every cause under it (a refused connection says so, not only "error sending
/// request").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// `Result` with a [`ClientError`].
pub type ClientResult<T> = Result<T, ClientError>;

/// A node this client has verified.
pub struct VerifiedNode {
    pub node_id: String,
    pub channel_key: HpkePublicKey,
}

pub struct NodeClient {
    base: String,
    key: SigningKey,
    http: reqwest::Client,
    trust: NodeTrust,
    node: tokio::sync::OnceCell<VerifiedNode>,
}

/// An answer from the node: status and body (opened, if it came sealed).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `R`, or the node's refusal as an error.
    pub fn json<R: DeserializeOwned>(&self) -> ClientResult<R> {
        let text = String::from_utf8_lossy(&self.body);
        if !(200..300).contains(&self.status) {
            return Err(match serde_json::from_slice::<ErrorBody>(&self.body) {
                Ok(e) => ClientError::Refused { status: self.status, code: e.code, message: e.error },
                Err(_) => ClientError::Unexpected { status: self.status, body: text.trim().to_string() },
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            failed(format!("unexpected answer from the node: {}", text.chars().take(200).collect::<String>()), e)
        })
    }

    /// The error code of a refusal (empty for success or an unreadable body).
    pub fn code(&self) -> String {
        serde_json::from_slice::<ErrorBody>(&self.body).map(|e| e.code).unwrap_or_default()
    }
}

impl NodeClient {
    pub fn new(base: &str, key: SigningKey, trust: NodeTrust) -> ClientResult<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(failed(format!("node URL {base:?}"), "it must start with http:// or https://"));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            // Below the node's shortest idle timeout (1 s): a kept-alive connection is dropped here
            // before the node closes it, rather than a request racing the close.
            .pool_idle_timeout(std::time::Duration::from_millis(800))
            .build()
            .map_err(|e| failed("cannot build the HTTP client", e))?;
        Ok(NodeClient { base, key, http, trust, node: tokio::sync::OnceCell::new() })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        failed(format!("cannot reach the node at {}", self.base), with_causes(&e))
    }

    /// Sends a request, and once more on a new connection if a kept-alive connection was closed
    /// under it before any answer came. The node closes its oldest idle connection to make room
    /// when it is at `--max-connections` (and idle ones after its header timeout), so a pooled
    /// connection can be closed just as a request goes out on it; the node never closes one with
    /// a request in it. Sending again is safe for every request this client makes: reads change
    /// nothing, a ledger transaction carries its own nonce, and a sealed request goes again as
    /// the same signed envelope, which the node refuses as a replay if it did act on the first.
    async fn send_retrying_a_closed_connection(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> ClientResult<reqwest::Response> {
        match build().send().await {
            Ok(resp) => Ok(resp),
            Err(e) if closed_before_answering(&e) => {
                tracing::debug!(node = %self.base, error = %with_causes(&e), "the connection closed under the request; sending it again");
                build().send().await.map_err(|e| self.unreachable(e))
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    fn closed(&self, e: reqwest::Error) -> ClientError {
        failed(format!("the node at {} closed the connection", self.base), with_causes(&e))
    }

    /// The node, verified (once per client).
    pub async fn node(&self) -> ClientResult<&VerifiedNode> {
        self.node.get_or_try_init(|| self.verify()).await
    }

    async fn verify(&self) -> ClientResult<VerifiedNode> {
        let url = format!("{}/v1/attestation", self.base);
        let resp = self.send_retrying_a_closed_connection(|| self.http.get(&url)).await?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.closed(e))?;
        if !status.is_success() {
            let why =
                serde_json::from_slice::<ErrorBody>(&bytes).map(|e| e.error).unwrap_or_else(|_| status.to_string());
            return Err(failed(
                format!("the node at {} cannot prove it is an attested node, so nothing was sent to it", self.base),
                why,
            ));
        }
        let card: NodeAttestation = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("the node at {} sent an unreadable attestation", self.base), e))?;
        let (channel_key, verified) = verify_node(&card, &self.trust, crate::auth::unix_now())
            .map_err(|e| failed(format!("refusing the node at {}: nothing was sent to it", self.base), e))?;
        if verified.kind == "dev" {
            tracing::warn!(
                node = %self.base,
                "the node runs in attestation development mode (--allow-dev-node): its report proves nothing about \
                 its hardware or software; do not send it real data"
            );
        }
        Ok(VerifiedNode { node_id: card.node_id, channel_key })
    }

    /// Signs and seals a request for the node (`audience`: its id), without sending it.
    pub fn seal(
        &self,
        node: &VerifiedNode,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> ClientResult<SealedRequest> {
        let nonce = crate::crypto::random_hex::<16>().map_err(|e| failed("cannot make a nonce", e))?;
        let auth = sign_request(&self.key, method, path, body, crate::auth::unix_now(), &nonce, &node.node_id);
        let head = ChannelHead {
            method: method.to_string(),
            path: path.to_string(),
            content_type: content_type.map(str::to_string),
            body_len: body.len() as u64,
            auth,
        };
        ClientRequest::seal(&node.channel_key, &node.node_id, &head, body)
            .map_err(|e| failed("cannot seal the request", e))
    }

    /// Sends a sealed request and opens the answer. An answer the node could not seal (the
    /// request did not open) comes back as it is.
    pub async fn send_sealed(&self, sealed: &SealedRequest) -> ClientResult<Answer> {
        let url = format!("{}/v1/sealed", self.base);
        let resp = self
            .send_retrying_a_closed_connection(|| {
                self.http
                    .post(&url)
                    .header(HEADER_CHANNEL, &sealed.header)
                    .header("content-type", "application/octet-stream")
                    .body(sealed.body.clone())
            })
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.closed(e))?;
        if status != 200 {
            return Ok(Answer { status, body: bytes.to_vec() });
        }
        let (status, body) =
            open_response(&sealed.response_key, &bytes).map_err(|e| failed("the node's sealed answer", e))?;
        Ok(Answer { status, body: body.to_vec() })
    }

    /// Sends one request over the owner's channel and returns the answer, refusals included.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> ClientResult<Answer> {
        let node = self.node().await?;
        let sealed = self.seal(node, method, path, content_type, body)?;
        self.send_sealed(&sealed).await
    }

    /// Sends a JSON request and decodes the JSON answer; error answers become errors carrying the
    /// node's message.
    pub async fn send<B: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<R> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| failed("cannot encode the request", e))?,
            None => Vec::new(),
        };
        let ct = body.map(|_| "application/json");
        self.request(method, path, ct, &bytes).await?.json()
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> ClientResult<R> {
        self.send::<(), R>("GET", path, None).await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> ClientResult<R> {
        self.send("POST", path, Some(body)).await
    }

    /// A request to a public route (the ledger, status): in clear, unsigned — ledger
    /// transactions carry their own signature, and nothing there is an owner's data.
    pub async fn public<B: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<R> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| failed("bad HTTP method", e))?;
        let url = format!("{}{path}", self.base);
        let json = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| failed("cannot encode the request", e))?),
            None => None,
        };
        let resp = self
            .send_retrying_a_closed_connection(|| {
                let req = self.http.request(m.clone(), &url);
                match &json {
                    Some(json) => req.header("content-type", "application/json").body(json.clone()),
                    None => req,
                }
            })
            .await?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| self.closed(e))?;
        Answer { status, body: body.to_vec() }.json()
    }

    /// Uploads one file's raw bytes to `collection` under the document path `path`.
    pub async fn upload(&self, collection: &str, path: &str, bytes: &[u8]) -> ClientResult<UploadResponse> {
        let endpoint = upload_endpoint(collection, path);
        self.request("POST", &endpoint, Some("application/octet-stream"), bytes).await?.json()
    }
}

/// The upload endpoint for a file stored under `path`.
pub fn upload_endpoint(collection: &str, path: &str) -> String {
    format!("/v1/collections/{}/documents?path={}", segment(collection), query_value(path))
}

/// Percent-encodes a collection name for a URL path segment (names are restricted, but be safe).
pub fn segment(s: &str) -> String {
    percent_encode(s, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Percent-encodes a query value (every byte but unreserved ones and `/`).
pub fn query_value(s: &str) -> String {
    percent_encode(s, |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/'))
}

fn percent_encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    s.bytes().map(|b| if keep(b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct WorkerQuery {
    pub collection: String,
    pub text: String,
    pub k: usize,
    /// Hex public key of the subscriber the worker acts for.
    pub subscriber: String,
    pub api_key: Option<String>,
    /// The market stack that pays (see `WorkerQueryRequest::stack`).
    pub stack: Option<u64>,
}

impl NodeClient {
    /// This node's id (from its verified attestation), the audience a worker's request must name.
    pub async fn node_id(&self) -> ClientResult<String> {
        Ok(self.node().await?.node_id.clone())
    }

    /// A worker's retrieval: signs with this client's key (the worker's), sends a fresh X25519
    /// public key, and opens the sealed answer with its secret half.
    pub async fn worker_query(&self, audience: &str, q: &WorkerQuery) -> ClientResult<prag_proto::api::WorkerAnswer> {
        let ephemeral =
            crate::sealed::EphemeralKey::generate().map_err(|e| failed("cannot make an ephemeral key", e))?;
        let request_id = crate::crypto::random_hex::<16>().map_err(|e| failed("cannot make a request id", e))?;
        let req = prag_proto::api::WorkerQueryRequest {
            collection: q.collection.clone(),
            text: q.text.clone(),
            k: q.k,
            subscriber: q.subscriber.clone(),
            api_key: q.api_key.clone(),
            audience: audience.to_string(),
            request_id: request_id.clone(),
            ephemeral_public_key: ephemeral.public_hex(),
            stack: q.stack,
            mode: None,
        };
        let sealed: prag_proto::api::SealedAnswer = self.post("/v1/worker/query", &req).await?;
        let plain = ephemeral
            .open(&sealed, audience, &request_id)
            .map_err(|e| failed("cannot open the node's sealed answer", e))?;
        serde_json::from_slice(&plain).map_err(|e| failed("the sealed answer does not hold a valid answer", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads one request head (these requests have no body).
    async fn read_head(s: &mut tokio::net::TcpStream) -> bool {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

    #[tokio::test]
    async fn a_request_on_a_kept_alive_connection_the_node_closes_goes_again_on_a_new_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // The first connection answers one request, then takes the second and closes without an
        // answer (as the node does to a pooled connection it picks to make room); the second
        // connection answers.
        let server = tokio::spawn(async move {
            let (mut first, _) = listener.accept().await.unwrap();
            assert!(read_head(&mut first).await);
            first.write_all(OK).await.unwrap();
            assert!(read_head(&mut first).await, "the second request came on the kept-alive connection");
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            assert!(read_head(&mut second).await);
            second.write_all(OK).await.unwrap();
            2
        });
        let client = NodeClient::new(&base, SigningKey::random(&mut rand::rngs::OsRng), NodeTrust::default()).unwrap();
        let a: serde_json::Value = client.public::<(), _>("GET", "/v1/status", None).await.unwrap();
        let b: serde_json::Value = client.public::<(), _>("GET", "/v1/status", None).await.unwrap();
        assert_eq!((a, b), (serde_json::json!({}), serde_json::json!({})));
        assert_eq!(server.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_node_that_closes_every_connection_unanswered_is_an_error_after_one_more_try() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut seen = 0;
            while let Ok(Ok((mut s, _))) =
                tokio::time::timeout(std::time::Duration::from_secs(2), listener.accept()).await
            {
                if read_head(&mut s).await {
                    seen += 1;
                }
            }
            seen
        });
        let client = NodeClient::new(&base, SigningKey::random(&mut rand::rngs::OsRng), NodeTrust::default()).unwrap();
        let e = client.public::<(), serde_json::Value>("GET", "/v1/status", None).await.unwrap_err();
        assert!(e.to_string().contains("cannot reach the node"), "{e}");
        assert_eq!(server.await.unwrap(), 2, "sent twice, not more");
    }
}
