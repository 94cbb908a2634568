//! Bodies of the node's HTTP API (`/v1/...`). The node, the CLI and the console share them.

use serde::{Deserialize, Serialize};

/// Version of this API; `/v1/status` reports it so clients can refuse a node they do not speak.
pub const API_VERSION: u32 = 1;

/// Every error answer: a message a person can act on and a stable machine code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionRequest {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

/// One source file. `content_base64` holds its raw bytes; the node extracts text by `path`'s
/// extension (.txt, .md, .html/.htm, .pdf, .jsonl).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    pub path: String,
    pub content_base64: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Created,
    Replaced,
    Unchanged,
    Deleted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocumentOutcome {
    pub doc_id: String,
    pub path: String,
    pub status: DocumentStatus,
    pub chunks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadResponse {
    pub documents: Vec<DocumentOutcome>,
}

/// One stored document, as listed to its collection's owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocumentInfo {
    pub doc_id: String,
    pub path: String,
    pub chunks: u64,
}

/// Removes one document, named by id or by the path it was uploaded under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeleteDocumentRequest {
    #[serde(default)]
    pub doc_id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub text: String,
    #[serde(default = "default_k")]
    pub k: usize,
    /// Exact (brute-force) search instead of the HNSW index, for checking recall.
    #[serde(default)]
    pub exact: bool,
}

fn default_k() -> usize {
    5
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    pub doc_id: String,
    pub path: String,
    pub chunk: u32,
    pub score: f32,
    pub text: String,
}

/// A chunk that matched but could not be read (for example its ciphertext fails authentication).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkError {
    pub doc_id: String,
    pub chunk: u32,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryResponse {
    pub hits: Vec<Hit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<ChunkError>,
    pub exact: bool,
    pub took_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
}
