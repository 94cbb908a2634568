//! The client of a node's API, used by the `prag` commands: everything it sends about an owner's
//! data goes over the owner's channel (`crate::channel`), and only after it has checked the node.
//!
//! Before the first request, the client fetches `GET /v1/attestation` and verifies it against its
//! [`NodeTrust`]: the report is genuine and allowed by the client's policy, binds the key that
//! signed the node's channel card, and the card names the channel key. A node in attestation
//! development mode is accepted only when the trust allows it, and a warning says so on every
//! run. Requests are then signed (`prag_proto::auth`, the node's id as audience) and sealed to the
//! channel key; answers come back sealed.

use anyhow::{Context, bail};
use k256::ecdsa::SigningKey;
use prag_proto::api::{ChannelHead, ErrorBody, NodeAttestation, UploadResponse};
use prag_proto::auth::sign_request;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::{ClientRequest, HEADER_CHANNEL, NodeTrust, SealedRequest, open_response, verify_node};
use crate::cluster::HpkePublicKey;

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
    pub fn json<R: DeserializeOwned>(&self) -> anyhow::Result<R> {
        let text = String::from_utf8_lossy(&self.body);
        if !(200..300).contains(&self.status) {
            match serde_json::from_slice::<ErrorBody>(&self.body) {
                Ok(e) => bail!("the node refused ({} {}): {}", self.status, e.code, e.error),
                Err(_) => bail!("the node answered {}: {}", self.status, text.trim()),
            }
        }
        serde_json::from_slice(&self.body)
            .with_context(|| format!("unexpected answer from the node: {}", text.chars().take(200).collect::<String>()))
    }

    /// The error code of a refusal (empty for success or an unreadable body).
    pub fn code(&self) -> String {
        serde_json::from_slice::<ErrorBody>(&self.body).map(|e| e.code).unwrap_or_default()
    }
}

impl NodeClient {
    pub fn new(base: &str, key: SigningKey, trust: NodeTrust) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("node URL {base:?} must start with http:// or https://");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(NodeClient { base, key, http, trust, node: tokio::sync::OnceCell::new() })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The node, verified (once per client).
    pub async fn node(&self) -> anyhow::Result<&VerifiedNode> {
        self.node.get_or_try_init(|| self.verify()).await
    }

    async fn verify(&self) -> anyhow::Result<VerifiedNode> {
        let url = format!("{}/v1/attestation", self.base);
        let resp =
            self.http.get(&url).send().await.with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await.with_context(|| format!("the node at {} closed the connection", self.base))?;
        if !status.is_success() {
            let why =
                serde_json::from_slice::<ErrorBody>(&bytes).map(|e| e.error).unwrap_or_else(|_| status.to_string());
            bail!("the node at {} cannot prove it is an attested node, so nothing was sent to it: {why}", self.base);
        }
        let card: NodeAttestation = serde_json::from_slice(&bytes)
            .with_context(|| format!("the node at {} sent an unreadable attestation", self.base))?;
        let (channel_key, verified) = verify_node(&card, &self.trust, crate::auth::unix_now())
            .with_context(|| format!("refusing the node at {}: nothing was sent to it", self.base))?;
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
    ) -> anyhow::Result<SealedRequest> {
        let nonce = crate::crypto::random_hex::<16>()?;
        let auth = sign_request(&self.key, method, path, body, crate::auth::unix_now(), &nonce, &node.node_id);
        let head = ChannelHead {
            method: method.to_string(),
            path: path.to_string(),
            content_type: content_type.map(str::to_string),
            body_len: body.len() as u64,
            auth,
        };
        Ok(ClientRequest::seal(&node.channel_key, &node.node_id, &head, body)?)
    }

    /// Sends a sealed request and opens the answer. An answer the node could not seal (the
    /// request did not open) comes back as it is.
    pub async fn send_sealed(&self, sealed: &SealedRequest) -> anyhow::Result<Answer> {
        let resp = self
            .http
            .post(format!("{}/v1/sealed", self.base))
            .header(HEADER_CHANNEL, &sealed.header)
            .header("content-type", "application/octet-stream")
            .body(sealed.body.clone())
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.with_context(|| format!("the node at {} closed the connection", self.base))?;
        if status != 200 {
            return Ok(Answer { status, body: bytes.to_vec() });
        }
        let (status, body) = open_response(&sealed.response_key, &bytes).context("the node's sealed answer")?;
        Ok(Answer { status, body: body.to_vec() })
    }

    /// Sends one request over the owner's channel and returns the answer, refusals included.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<Answer> {
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
    ) -> anyhow::Result<R> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)?,
            None => Vec::new(),
        };
        let ct = body.map(|_| "application/json");
        self.request(method, path, ct, &bytes).await?.json()
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.send::<(), R>("GET", path, None).await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<R> {
        self.send("POST", path, Some(body)).await
    }

    /// A request to a public route (the ledger, status): in clear, unsigned — ledger
    /// transactions carry their own signature, and nothing there is an owner's data.
    pub async fn public<B: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<R> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("bad HTTP method")?;
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(serde_json::to_vec(b)?);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.with_context(|| format!("the node at {} closed the connection", self.base))?;
        Answer { status, body: body.to_vec() }.json()
    }

    /// Uploads one file's raw bytes to `collection` under the document path `path`.
    pub async fn upload(&self, collection: &str, path: &str, bytes: &[u8]) -> anyhow::Result<UploadResponse> {
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
}

impl NodeClient {
    /// This node's id (from its verified attestation), the audience a worker's request must name.
    pub async fn node_id(&self) -> anyhow::Result<String> {
        Ok(self.node().await?.node_id.clone())
    }

    /// A worker's retrieval: signs with this client's key (the worker's), sends a fresh X25519
    /// public key, and opens the sealed answer with its secret half.
    pub async fn worker_query(&self, audience: &str, q: &WorkerQuery) -> anyhow::Result<prag_proto::api::WorkerAnswer> {
        let ephemeral = crate::sealed::EphemeralKey::generate()?;
        let request_id = crate::crypto::random_hex::<16>()?;
        let req = prag_proto::api::WorkerQueryRequest {
            collection: q.collection.clone(),
            text: q.text.clone(),
            k: q.k,
            subscriber: q.subscriber.clone(),
            api_key: q.api_key.clone(),
            audience: audience.to_string(),
            request_id: request_id.clone(),
            ephemeral_public_key: ephemeral.public_hex(),
        };
        let sealed: prag_proto::api::SealedAnswer = self.post("/v1/worker/query", &req).await?;
        let plain = ephemeral.open(&sealed, audience, &request_id).context("cannot open the node's sealed answer")?;
        serde_json::from_slice(&plain).context("the sealed answer does not hold a valid answer")
    }
}
