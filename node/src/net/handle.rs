//! [`Net`]: how the rest of the node talks to the swarm's event loop — commands in, answers back
//! on oneshot channels, and a read-only view of the peers the loop keeps current. A node alone has
//! an offline `Net`: no peers, and every request fails at once with [`NetError::Offline`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use parking_lot::RwLock;
use prag_proto::api::PeerView;
use tokio::sync::{mpsc, oneshot};

use super::NetError;
use super::protocol::cluster::{ClusterRequest, ClusterResponse, Framed};
use super::protocol::ledger::{LedgerRequest, LedgerResponse};

pub(super) type ClusterReply = oneshot::Sender<Result<Framed<ClusterResponse>, NetError>>;
pub(super) type LedgerReply = oneshot::Sender<Result<LedgerResponse, NetError>>;

/// What the node asks of the event loop.
pub(super) enum Command {
    AskCluster(PeerId, Framed<ClusterRequest>, ClusterReply),
    AskLedger(PeerId, LedgerRequest, LedgerReply),
    /// Gossip a ledger entry (JSON).
    PublishLedger(Vec<u8>),
}

/// What the event loop knows of a peer; written by the loop only.
#[derive(Debug, Clone, Default)]
pub(super) struct PeerInfo {
    pub addresses: Vec<String>,
    pub rtt_ms: Option<f64>,
    pub connected: bool,
    /// When the last connection closed (None while connected or never).
    pub gone_since: Option<Instant>,
}

/// The loop's view of the peers, shared read-only with the node.
pub(super) type PeerTable = Arc<RwLock<HashMap<PeerId, PeerInfo>>>;

/// What the node needs to know of a peer to place shards and pick replicas.
#[derive(Debug, Clone)]
pub struct PeerState {
    pub peer_id: PeerId,
    pub connected: bool,
    pub rtt_ms: Option<f64>,
    pub gone_since: Option<Instant>,
}

struct Online {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    peers: PeerTable,
    listening: Arc<RwLock<Vec<String>>>,
}

/// The node's side of the peer network (cheap to clone).
#[derive(Clone)]
pub struct Net {
    online: Option<Arc<Online>>,
}

impl Net {
    /// The network of a node that runs alone.
    pub fn offline() -> Net {
        Net { online: None }
    }

    pub(super) fn online(
        peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        peers: PeerTable,
        listening: Arc<RwLock<Vec<String>>>,
    ) -> Net {
        Net { online: Some(Arc::new(Online { peer_id, commands, peers, listening })) }
    }

    pub fn is_online(&self) -> bool {
        self.online.is_some()
    }

    /// This node's peer id (None alone).
    pub fn local_peer_id(&self) -> Option<PeerId> {
        self.online.as_ref().map(|o| o.peer_id)
    }

    /// Every peer ever connected, with its state.
    pub fn peer_states(&self) -> Vec<PeerState> {
        let Some(o) = &self.online else { return Vec::new() };
        o.peers
            .read()
            .iter()
            .map(|(id, p)| PeerState {
                peer_id: *id,
                connected: p.connected,
                rtt_ms: p.rtt_ms,
                gone_since: p.gone_since,
            })
            .collect()
    }

    /// The peers connected now.
    pub fn connected(&self) -> Vec<PeerId> {
        let Some(o) = &self.online else { return Vec::new() };
        o.peers.read().iter().filter(|(_, p)| p.connected).map(|(id, _)| *id).collect()
    }

    /// Connected peers as status shows them; `admitted` is the storage network's verdict.
    pub fn peer_views(&self, admitted: impl Fn(&PeerId) -> bool) -> Vec<PeerView> {
        let Some(o) = &self.online else { return Vec::new() };
        let mut out: Vec<PeerView> = o
            .peers
            .read()
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, p)| PeerView {
                peer_id: id.to_string(),
                addresses: p.addresses.clone(),
                admitted: admitted(id),
                rtt_ms: p.rtt_ms,
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    pub fn listening(&self) -> Vec<String> {
        self.online.as_ref().map(|o| o.listening.read().clone()).unwrap_or_default()
    }

    async fn command(&self, make: impl FnOnce() -> Command) -> Result<(), NetError> {
        let o = self.online.as_ref().ok_or(NetError::Offline)?;
        o.commands.send(make()).await.map_err(|_| NetError::Stopped)
    }

    /// Sends a storage request to `peer` and waits for its answer.
    pub(crate) async fn ask_cluster(
        &self,
        peer: PeerId,
        request: Framed<ClusterRequest>,
    ) -> Result<Framed<ClusterResponse>, NetError> {
        let (reply, answer) = oneshot::channel();
        self.command(|| Command::AskCluster(peer, request, reply)).await?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// Sends a ledger request to `peer` and waits for its answer.
    pub(crate) async fn ask_ledger(&self, peer: PeerId, request: LedgerRequest) -> Result<LedgerResponse, NetError> {
        let (reply, answer) = oneshot::channel();
        self.command(|| Command::AskLedger(peer, request, reply)).await?;
        answer.await.map_err(|_| NetError::Stopped)?
    }

    /// Gossips a ledger entry to every subscribed peer.
    pub(crate) async fn publish_ledger(&self, entry_json: Vec<u8>) -> Result<(), NetError> {
        self.command(|| Command::PublishLedger(entry_json)).await
    }
}
