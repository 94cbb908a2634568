//! A signed HTTP client for the node's API, used by the `prag` commands.

use anyhow::{Context, bail};
use k256::ecdsa::SigningKey;
use prag_proto::api::ErrorBody;
use prag_proto::auth::{self, sign_request};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct NodeClient {
    base: String,
    key: SigningKey,
    http: reqwest::Client,
}

impl NodeClient {
    pub fn new(base: &str, key: SigningKey) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("node URL {base:?} must start with http:// or https://");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(NodeClient { base, key, http })
    }

    /// Sends a signed request and decodes the JSON answer; error answers become errors carrying
    /// the node's message.
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
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let h = sign_request(&self.key, method, path, &bytes, crate::auth::unix_now(), &hex::encode(nonce));
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("bad HTTP method")?;
        let resp = self
            .http
            .request(m, format!("{}{path}", self.base))
            .header(auth::HEADER_PUBKEY, h.pubkey)
            .header(auth::HEADER_TIMESTAMP, h.timestamp.to_string())
            .header(auth::HEADER_NONCE, h.nonce)
            .header(auth::HEADER_SIGNATURE, h.signature)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("the node at {} closed the connection", self.base))?;
        if !status.is_success() {
            match serde_json::from_str::<ErrorBody>(&text) {
                Ok(e) => bail!("the node refused ({} {}): {}", status.as_u16(), e.code, e.error),
                Err(_) => bail!("the node answered {}: {}", status, text.trim()),
            }
        }
        serde_json::from_str(&text)
            .with_context(|| format!("unexpected answer from the node: {}", text.chars().take(200).collect::<String>()))
    }

    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> anyhow::Result<R> {
        self.send::<(), R>("GET", path, None).await
    }

    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<R> {
        self.send("POST", path, Some(body)).await
    }
}

/// Percent-encodes a collection name for a URL path segment (names are restricted, but be safe).
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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
    /// This node's id (its `/v1/status`), the audience a worker's request must name.
    pub async fn node_id(&self) -> anyhow::Result<String> {
        let status: prag_proto::api::NodeStatus = self.get("/v1/status").await?;
        if status.node_id.is_empty() {
            bail!("the node at {} reports no node id (an older node?)", self.base);
        }
        Ok(status.node_id)
    }

    /// A worker's retrieval: signs with this client's key (the worker's), sends a fresh X25519
    /// public key, and opens the sealed answer with its secret half.
    pub async fn worker_query(&self, audience: &str, q: &WorkerQuery) -> anyhow::Result<prag_proto::api::WorkerAnswer> {
        let ephemeral = crate::sealed::EphemeralKey::generate()?;
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let request_id = hex::encode(id);
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
