//! What storage nodes ask each other (`/prag/cluster/2`, request-response).
//!
//! A message is a JSON head and a raw body, each length-prefixed (`u32` big-endian): shard bytes
//! and sealed search traffic go in the body as they are, without JSON escaping, so bulk transfer
//! runs at the speed of the stream.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use futures::prelude::*;
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::identity::StorageCard;

pub(crate) const PROTOCOL: &str = "/prag/cluster/2";
/// Largest JSON head.
const MAX_HEAD: usize = 16 << 20;
/// Largest body: a transfer piece or a sealed search answer.
pub(crate) const MAX_BODY: usize = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ClusterRequest {
    /// The peer's storage card (public: anyone may ask).
    Card,
    /// The catalog of collections (each key wrapped to the asker) and the documents held.
    /// Admitted peers only.
    Sync,
    /// Bytes `[offset, offset + max)` of a document file at `version`. Admitted peers only.
    Fetch { cid: String, doc_id: String, version: u64, offset: u64, max: u32 },
    /// Top `k` of the asked shards; the body is the query vector sealed under the collection key
    /// (`Purpose::RemoteSearch`, document = `request_id`). Admitted peers only.
    /// The body is `ShardQuery::encode_vectors` (the dense vector, the IDF-weighted terms or both);
    /// the answer has up to `k` hits of each ranking asked for.
    Search { cid: String, shards: Vec<u32>, k: usize, exact: bool, request_id: String },
    /// How many chunks of the asked shards hold each term, and how many chunks they hold: what a
    /// distributed keyword search computes one IDF from. The body is the term ids (`u32`s, keyed
    /// hashes) sealed like a search's question; the answer (`u64` chunks, then one `u64` per
    /// term) is sealed like its answer. Admitted peers only.
    TermCounts { cid: String, shards: Vec<u32>, request_id: String },
    /// A market stack's request log, for a node the contract asked to attest it. Admitted peers
    /// only; the log comes back HPKE-sealed to the asker's attested key.
    StackLog { stack: u64 },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ClusterResponse {
    Card(StorageCard),
    Sync(Vec<CollectionRecord>),
    /// A piece of the asked file (in the body); `total` is the file's length.
    Piece {
        total: u64,
    },
    /// The sealed hits (in the body).
    Hits,
    /// The sealed term counts (in the body).
    TermCounts,
    /// The sealed stack log (in the body).
    StackLog,
    /// The asked document is not held at that version (any more).
    Gone,
    /// Why the request was refused, as a typed error.
    Refused(WireError),
}

/// One collection as a node knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CollectionRecord {
    pub cid: String,
    pub name: String,
    pub owner: String,
    pub created_at: u64,
    pub shards: u32,
    pub replicas: u32,
    /// Subscribers granted access, and the time of the change that set them (newest wins).
    pub grants: BTreeSet<String>,
    pub grants_version: u64,
    /// Deleted documents: id → version deleted (every version up to it is gone).
    pub tombstones: BTreeMap<String, u64>,
    /// The collection key, HPKE-wrapped to the asking node (hex).
    pub wrapped_key: String,
    /// Documents this node holds (complete, committed files only).
    pub holdings: Vec<Holding>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Holding {
    pub doc_id: String,
    pub version: u64,
    pub len: u64,
    /// The path it was uploaded under and its chunk count, for the owner's document listing on
    /// any node.
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub chunks: u64,
}

/// A search answer between nodes (inside the sealed body).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SearchAnswer {
    pub hits: Vec<prag_proto::api::Hit>,
    /// The keyword ranking's hits.
    #[serde(default)]
    pub sparse_hits: Vec<prag_proto::api::Hit>,
    #[serde(default)]
    pub unreadable: Vec<prag_proto::api::ChunkError>,
}

/// A message: JSON head, raw body.
#[derive(Debug, Clone)]
pub(crate) struct Framed<T> {
    pub head: T,
    pub body: Vec<u8>,
}

impl<T> Framed<T> {
    pub(crate) fn new(head: T) -> Self {
        Framed { head, body: Vec::new() }
    }

    pub(crate) fn with_body(head: T, body: Vec<u8>) -> Self {
        Framed { head, body }
    }
}

impl Framed<ClusterResponse> {
    /// A refusal carrying `error`'s kind and public message.
    pub(crate) fn refused(error: &crate::error::Error) -> Self {
        Framed::new(ClusterResponse::Refused(error.into()))
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterCodec;

async fn read_part<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message part of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn read_framed<T, M>(io: &mut T) -> io::Result<Framed<M>>
where
    T: AsyncRead + Unpin + Send,
    M: serde::de::DeserializeOwned,
{
    let head = read_part(io, MAX_HEAD).await?;
    let head = serde_json::from_slice(&head).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let body = read_part(io, MAX_BODY).await?;
    Ok(Framed { head, body })
}

async fn write_framed<T, M>(io: &mut T, msg: Framed<M>) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let head = serde_json::to_vec(&msg.head).map_err(io::Error::other)?;
    if head.len() > MAX_HEAD || msg.body.len() > MAX_BODY {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "message too large"));
    }
    io.write_all(&(head.len() as u32).to_be_bytes()).await?;
    io.write_all(&head).await?;
    io.write_all(&(msg.body.len() as u32).to_be_bytes()).await?;
    io.write_all(&msg.body).await?;
    io.close().await
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for ClusterCodec {
    type Protocol = StreamProtocol;
    type Request = Framed<ClusterRequest>;
    type Response = Framed<ClusterResponse>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Request> {
        read_framed(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response> {
        read_framed(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Self::Request,
    ) -> io::Result<()> {
        write_framed(io, req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Self::Response,
    ) -> io::Result<()> {
        write_framed(io, res).await
    }
}
