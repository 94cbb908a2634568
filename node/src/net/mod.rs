//! The peer network (libp2p), shaped like libp2p's file-sharing example: [`start`] builds the
//! swarm and returns a [`Net`] handle, the receivers of what peers send, and the event loop to run.
//! The loop owns every piece of network state and does no application work; the ledger and the
//! storage network answer what arrives on their receivers, each on its own task.
//!
//! - Transport: TCP (noise + yamux) and QUIC; identify; ping (RTT); Kademlia (server mode) with the
//!   `--peer` addresses as bootstrap; mDNS only with `--mdns`.
//! - Identity: an ed25519 key in `<data>/p2p.key` (0600), so a node keeps its peer id.
//! - Protocols: `/prag/ledger/2` and the gossip topic of ledger entries (`protocol::ledger`), and
//!   `/prag/cluster/2` for storage traffic (`protocol::cluster`).

mod behaviour;
mod handle;
mod keypair;
pub(crate) mod protocol;
mod swarm;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use libp2p::{PeerId, gossipsub, noise, tcp, yamux};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use handle::Net;
pub(crate) use handle::PeerState;
pub use keypair::load_or_create_keypair;

use crate::config::NetConfig;
use crate::error::{Error, ErrorKind};
use protocol::cluster::{ClusterRequest, ClusterResponse, Framed};
use protocol::ledger::{LedgerRequest, LedgerResponse};

/// Why a request to a peer got no answer.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("this node runs alone: it has no peer network")]
    Offline,
    #[error("the peer network stopped")]
    Stopped,
    #[error("peer {peer}: {reason}")]
    Peer { peer: String, reason: String },
    #[error("cannot start the peer network: {0}")]
    Setup(String),
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        let kind = match &e {
            NetError::Setup(_) => ErrorKind::Config,
            _ => ErrorKind::Unavailable,
        };
        Error::new(kind, e.to_string())
    }
}

/// What peers tell the ledger.
pub(crate) enum LedgerEvent {
    /// A connection opened: the peer may hold entries this node lacks.
    Connected(PeerId),
    /// A gossiped entry (JSON, unchecked).
    Gossip { from: PeerId, data: Vec<u8> },
    /// A request to answer through `reply` (dropping it answers nothing; the peer sees a failure).
    Request { peer: PeerId, request: LedgerRequest, reply: oneshot::Sender<LedgerResponse> },
}

/// A storage request from a peer, for the storage network to answer through `reply`.
pub(crate) struct ClusterInbound {
    pub peer: PeerId,
    pub request: Framed<ClusterRequest>,
    pub reply: oneshot::Sender<Framed<ClusterResponse>>,
}

/// What peers send, for the node's components to take.
pub(crate) struct NetInbound {
    pub ledger: mpsc::Receiver<LedgerEvent>,
    pub cluster: mpsc::Receiver<ClusterInbound>,
}

/// Builds the swarm, starts listening and dials the bootstrap peers. The returned future is the
/// event loop; it ends when `cancel` fires or every [`Net`] is dropped.
pub(crate) fn start(
    config: &NetConfig,
    key: libp2p::identity::Keypair,
    cancel: CancellationToken,
) -> Result<(Net, NetInbound, impl Future<Output = ()> + Send + 'static), NetError> {
    let peer_id = key.public().to_peer_id();
    let setup = |what: &str, e: &dyn std::fmt::Display| NetError::Setup(format!("{what}: {e}"));
    let behaviour_config = config.clone();
    let idle = config.idle_connection_timeout;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| setup("TCP transport", &e))?
        .with_quic()
        .with_behaviour(|key| behaviour::Behaviour::new(key, &behaviour_config).map_err(|e| e.into()))
        .map_err(|e| setup("behaviour", &e))?
        .with_swarm_config(|c| {
            // Lazy negotiation: a request's first bytes travel with its protocol proposal instead
            // of a round trip later (every peer speaks the same protocols).
            c.with_idle_connection_timeout(idle)
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    let topic = gossipsub::IdentTopic::new(protocol::ledger::TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| setup("gossipsub subscribe", &e))?;
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| setup(&format!("cannot listen on {addr}"), &e))?;
    }
    for addr in &config.peers {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(peer = %addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    let (commands, commands_rx) = mpsc::channel(256);
    let peers = Arc::new(RwLock::new(HashMap::new()));
    let listening = Arc::new(RwLock::new(Vec::new()));
    let (ledger_events, ledger_rx) = mpsc::channel(1024);
    let (cluster_inbound, cluster_rx) = mpsc::channel(256);
    let event_loop = swarm::EventLoop {
        swarm,
        topic,
        peers: Arc::clone(&peers),
        listening: Arc::clone(&listening),
        bootstrap: config.peers.clone(),
        redial: config.redial_interval,
        ledger_events,
        cluster_inbound,
        asks_cluster: HashMap::new(),
        asks_ledger: HashMap::new(),
        answers_cluster: Default::default(),
        answers_ledger: Default::default(),
    };
    tracing::info!(%peer_id, "peer network started");
    let net = Net::online(peer_id, commands, peers, listening);
    Ok((net, NetInbound { ledger: ledger_rx, cluster: cluster_rx }, event_loop.run(commands_rx, cancel)))
}
