//! Bodies of the node's HTTP API (`/v1/...`). The node, the CLI and the console share them.

use serde::{Deserialize, Serialize};

/// Version of this API; `/v1/status` reports it so clients can refuse a node they do not speak.
pub const API_VERSION: u32 = 2;

/// Largest `k` a query may ask for (of a node, or of a peer).
pub const MAX_K: usize = 100;
/// Longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Every error answer: a message a person can act on and a stable machine code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionInfo {
    pub name: String,
    /// Hex of the owner's compressed secp256k1 public key.
    pub owner: String,
    pub owner_address: String,
    pub created_at: u64,
    pub documents: u64,
    pub chunks: u64,
    /// Points in the vector index, and how many of them are in its HNSW graph.
    pub total_points: u64,
    pub indexed_points: u64,
    /// The committed snapshot root of what this node holds of the collection (hex; see
    /// "Verifiable retrieval"), once the status has computed it for the current content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_root: Option<String>,
}

/// One source file. `content_base64` holds its raw bytes; the node extracts text by `path`'s
/// extension (the node's `extract::SUPPORTED` lists the types it reads).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub path: String,
    pub content_base64: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Created,
    Replaced,
    Unchanged,
    Deleted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentOutcome {
    pub doc_id: String,
    pub path: String,
    pub status: DocumentStatus,
    pub chunks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadResponse {
    pub documents: Vec<DocumentOutcome>,
}

/// One stored document, as listed to its collection's owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DocumentInfo {
    pub doc_id: String,
    pub path: String,
    pub chunks: u64,
}

/// Removes one document, named by id or by the path it was uploaded under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteDocumentRequest {
    #[serde(default)]
    pub doc_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

/// How a query ranks chunks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Embedding similarity only.
    Dense,
    /// Keywords only (BM25 over keyed term ids).
    Sparse,
    /// Both, their normalised scores combined (the default: it measured best).
    #[default]
    Hybrid,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Dense => "dense",
            SearchMode::Sparse => "sparse",
            SearchMode::Hybrid => "hybrid",
        }
    }

    /// Whether the question is embedded.
    pub fn uses_dense(self) -> bool {
        self != SearchMode::Sparse
    }

    /// Whether the question's terms are looked up.
    pub fn uses_sparse(self) -> bool {
        self != SearchMode::Dense
    }
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dense" => Ok(SearchMode::Dense),
            "sparse" => Ok(SearchMode::Sparse),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => Err(format!("unknown search mode {other:?}: use dense, sparse or hybrid")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub text: String,
    #[serde(default = "default_k")]
    pub k: usize,
    /// Exact (brute-force) search instead of the HNSW index, for checking recall.
    #[serde(default)]
    pub exact: bool,
    /// Dense, keyword (sparse) or both fused (hybrid, the default).
    #[serde(default)]
    pub mode: SearchMode,
}

impl Default for QueryRequest {
    fn default() -> Self {
        QueryRequest { text: String::new(), k: default_k(), exact: false, mode: SearchMode::default() }
    }
}

fn default_k() -> usize {
    5
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hit {
    pub doc_id: String,
    pub path: String,
    pub chunk: u32,
    pub score: f32,
    pub text: String,
}

/// A chunk that matched but could not be read (for example its ciphertext fails authentication).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkError {
    pub doc_id: String,
    pub chunk: u32,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResponse {
    pub hits: Vec<Hit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<ChunkError>,
    pub exact: bool,
    /// How the hits were ranked.
    #[serde(default)]
    pub mode: SearchMode,
    pub took_ms: f64,
    /// Set when some shard had no reachable replica: the hits come from the other shards only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// The shards no replica answered for (with `partial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmbedderStatus {
    pub model: String,
    pub dimension: usize,
    pub device: String,
    pub dtype: String,
    pub workers: usize,
    pub max_batch: usize,
    pub token_budget: usize,
    pub texts: u64,
    pub batches: u64,
    pub queue_depth: usize,
    pub busy_seconds: f64,
    /// Texts dropped because the request that sent them went away before they were embedded.
    #[serde(default)]
    pub cancelled_texts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeStatus {
    pub version: String,
    pub api_version: u32,
    pub uptime_secs: u64,
    pub index_backend: String,
    pub embedder: EmbedderStatus,
    pub collections: Vec<CollectionInfo>,
    pub documents: u64,
    pub chunks: u64,
    pub queries: u64,
    pub ingested_documents: u64,
    /// Bytes under the data directory.
    pub disk_bytes: u64,
    /// This node's id: the audience a worker's request must name.
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub attestation: AttestationStatus,
    /// Retrieval served to workers, per worker and subscriber (for `report_work`).
    #[serde(default)]
    pub worker_usage: Vec<WorkerUsage>,
    /// Refusals by reason since start.
    #[serde(default)]
    pub refusals: std::collections::BTreeMap<String, u64>,
    /// This node's libp2p peer id (empty when it runs alone).
    #[serde(default)]
    pub peer_id: String,
    /// Addresses it listens on for peers.
    #[serde(default)]
    pub listen_addresses: Vec<String>,
    /// Connected peers.
    #[serde(default)]
    pub peers: Vec<PeerView>,
    /// The storage network: admission, shards and their replicas (absent when the node runs alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// A node's view of the storage network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// Whether this node itself may hold shards (registered `prag-storage` and attested).
    pub admitted: bool,
    /// Why not, when it may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Peers refused admission, with the reason.
    #[serde(default)]
    pub refused_peers: std::collections::BTreeMap<String, String>,
    /// Requests refused because the asking peer is not admitted.
    pub peer_requests_refused: u64,
    pub shards: Vec<ShardView>,
    pub bytes_replicated: u64,
    pub documents_replicated: u64,
    pub transfers_active: u64,
    pub transfers_resumed: u64,
    pub remote_searches: u64,
    pub remote_search_p50_ms: f64,
    pub remote_search_p99_ms: f64,
}

/// One shard of a collection.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShardView {
    pub collection: String,
    pub shard: u32,
    /// Where placement wants it (rendezvous over admitted nodes), best first.
    pub owners: Vec<String>,
    /// Reachable nodes (this one included) that hold every document of the shard.
    pub holders: Vec<String>,
    /// Documents of the shard (newest versions known anywhere).
    #[serde(default)]
    pub documents: u64,
    /// Documents of the shard held here.
    pub documents_here: u64,
    /// Holders ≥ the replica count (or ≥ the admitted nodes, when there are fewer).
    pub healthy: bool,
    /// When this node holds the whole shard: the root of its committed snapshot (hex), the same
    /// on every replica holding the same documents, changing exactly when they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_root: Option<String>,
}

/// How this node judges workers' attestation reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttestationStatus {
    /// `hardware` (TDX / SEV-SNP reports only) or `dev` (development reports accepted too).
    pub mode: String,
    /// Where the policy comes from: a file path, or `built-in default`.
    pub policy_source: String,
    pub min_tcb_status: String,
    pub max_report_age_secs: u64,
    /// Registered workers whose reports pass under the current policy, and those that do not.
    pub workers_accepted: u64,
    pub workers_refused: u64,
    /// Most recent liveliness answer a worker may rely on, in seconds.
    pub max_liveliness_age_secs: u64,
}

/// Retrieval served to one worker for one subscriber.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerUsage {
    /// The worker's registered address.
    pub worker: String,
    /// Hex public key of the subscriber it acted for.
    pub subscriber: String,
    pub requests: u64,
    pub chunks: u64,
    /// Tokens (the node's model's tokenizer) of the chunk text returned.
    pub tokens: u64,
}

/// `POST /v1/collections/{name}/grants` and `.../grants/revoke`: allow (or stop allowing) a
/// subscriber's workers to query the collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Hex compressed secp256k1 public key of the subscriber.
    pub subscriber: String,
}

/// The subscribers a collection's owner allows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantsResponse {
    pub collection: String,
    pub subscribers: Vec<String>,
}

/// `POST /v1/worker/query`, signed by the worker's registered signing key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerQueryRequest {
    pub collection: String,
    pub text: String,
    #[serde(default = "default_k")]
    pub k: usize,
    /// Hex public key of the subscriber the worker acts for.
    pub subscriber: String,
    /// The subscriber's API key, when it authorises by key rather than by subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The node this request is meant for (its `node_id`): a request sent to one node cannot be
    /// replayed at another.
    pub audience: String,
    /// Random hex id chosen by the worker; bound into the answer's encryption.
    pub request_id: String,
    /// Hex of the worker's fresh X25519 public key for this request: the answer is sealed to it.
    pub ephemeral_public_key: String,
    /// The market stack that pays for this answer: the node serves it only as the stack's
    /// selected node, for the stack's owner, while it is open and has units left, and signs a
    /// receipt for it. Without one, the subscription pays (as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<u64>,
    /// How to rank; the node's default (hybrid) when absent. A stack-paid answer is always dense
    /// and exact (what attesters re-execute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SearchMode>,
}

/// The answer to a worker: [`WorkerAnswer`] JSON sealed to the request's ephemeral key
/// (X25519, HKDF-SHA256, AES-256-GCM; see the node's `sealed` module).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SealedAnswer {
    pub node_id: String,
    pub request_id: String,
    /// Hex of the node's fresh X25519 public key.
    pub encapsulated_key: String,
    /// Hex, 12 bytes.
    pub nonce: String,
    /// Base64 of the AES-256-GCM ciphertext and tag.
    pub ciphertext: String,
}

/// What a sealed answer holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerAnswer {
    pub collection: String,
    pub hits: Vec<Hit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<ChunkError>,
    /// As in [`QueryResponse::partial`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
    /// For a stack-paid answer: the node's signed receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::verifiable::Receipt>,
}

/// One line of a node's audit log (no request text, no keys).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub time: u64,
    /// `refused`, `served`, `grant`, `revoke`, `register_refused`, `policy`.
    pub event: String,
    /// The refusal reason's code, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Hex public key of whoever signed the request, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub worker: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscriber: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub collection: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// What an operator's console sees of one node (`GET /v1/console`, and each event of
/// `GET /v1/console/events`): one consistent snapshot, so the console never joins data from
/// different moments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleFeed {
    pub api_version: u32,
    /// Node clock, unix seconds.
    pub time: u64,
    pub status: NodeStatus,
    pub latency: LatencySummary,
    pub ledger: LedgerSummary,
    pub subscribers: Vec<SubscriberView>,
    /// API keys stored (their hashes; never the keys).
    pub api_keys: u64,
    pub workers: Vec<WorkerView>,
    /// Newest first.
    pub recent_txs: Vec<TxView>,
    pub epochs: Vec<EpochView>,
    /// Newest first.
    pub audit: Vec<AuditEntry>,
    /// Other nodes this one knows (empty until the peer network runs).
    #[serde(default)]
    pub peers: Vec<PeerView>,
    /// The compute market: tasks, live stacks, nodes' collateral and reputation, recent slashes
    /// and refunds.
    #[serde(default)]
    pub market: crate::contracts::market::MarketOverview,
}

/// Latency quantiles since start, in milliseconds (0 when nothing was measured).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencySummary {
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    pub worker_p50_ms: f64,
    pub worker_p99_ms: f64,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerSummary {
    pub height: u64,
    pub head_hash: String,
    pub admin: String,
    pub chain_id: String,
    pub orderer: bool,
    /// A damaged tail found at start, in words; empty if none.
    #[serde(default)]
    pub damage: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriberView {
    pub public_key: String,
    pub active: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerView {
    pub ip_address: String,
    pub worker_type: String,
    pub payment_wallet: String,
    /// `accepted (tdx UpToDate)` or `refused: <reason>` under this node's policy.
    pub attestation: String,
    pub accepted: bool,
    pub last_seen: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TxView {
    pub height: u64,
    pub time: u64,
    /// Sender's address.
    pub sender: String,
    /// The message's name (`register_worker`, ...).
    pub msg: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EpochView {
    pub epoch: u64,
    pub funds: String,
    pub closed: bool,
    /// (wallet, work units, amount) per wallet.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub shares: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerView {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub admitted: bool,
    pub rtt_ms: Option<f64>,
}

/// What `GET /v1/status` tells anyone who asks: that the node is up, and nothing about whose data
/// it holds. The detailed [`NodeStatus`] is for operators, on the owner's channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicStatus {
    /// `ok` while the node serves.
    pub status: String,
    pub version: String,
    pub api_version: u32,
    pub uptime_secs: u64,
    /// The audience requests to this node name.
    pub node_id: String,
    /// `hardware` or `dev`.
    pub attestation_mode: String,
    /// Whether the node has an attestation report for its channel key (clients need one).
    pub attested: bool,
}

/// `GET /v1/attestation`: the key a client seals its requests to, and the evidence that it belongs
/// to an attested node running an allowed build.
///
/// The report (`report`, the JSON of a TDX, SEV-SNP or development report) binds `signing_key`
/// (`report_data = SHA-512("PRAG-WORKER-KEY-V1" ‖ key)`); `signing_key` signs
/// `"PRAG-CHANNEL-CARD-V1\n" ‖ node_id ‖ "\n" ‖ channel_key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeAttestation {
    pub node_id: String,
    /// Hex X25519 public key (HPKE) of the owner's channel.
    pub channel_key: String,
    /// Hex compressed secp256k1 key the report binds (the node's storage key).
    pub signing_key: String,
    /// Hex ECDSA signature of the card by `signing_key`.
    pub signature: String,
    pub report: String,
}

/// The sealed head of a request on the owner's channel: what the request is and who signed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelHead {
    pub method: String,
    /// Path and query of the inner request, e.g. `/v1/collections/clinic/query`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Bytes of the inner body (the sealed body is 16 bytes longer).
    pub body_len: u64,
    pub auth: crate::auth::SignatureHeaders,
}
