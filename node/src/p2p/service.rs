//! The swarm task: one loop owns the swarm; the node talks to it through [`P2pHandle`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, noise, ping, tcp, yamux};
use parking_lot::RwLock;
use prag_proto::api::PeerView;
use prag_proto::ledger::{Entry, SignedTx};
use tokio::sync::{mpsc, oneshot};

use super::behaviour::{Behaviour, BehaviourEvent, LEDGER_TOPIC};
use super::protocol::{CATCH_UP_BATCH, LedgerRequest, LedgerResponse, NOT_ORDERER};
use crate::cluster::wire::{ClusterRequest, ClusterResponse, Framed};
use crate::ledger::{Ledger, LedgerError};

/// Where to listen, whom to dial, whether to look on the local network.
#[derive(Debug, Clone, Default)]
pub struct P2pConfig {
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    pub mdns: bool,
}

type Reply = oneshot::Sender<Result<serde_json::Value, String>>;
type ClusterReply = oneshot::Sender<Result<Framed<ClusterResponse>, String>>;

enum Command {
    Submit(SignedTx, Reply),
    Ask(PeerId, Framed<ClusterRequest>, ClusterReply),
}

/// A storage request from a peer, for the node to answer through `reply` (dropping `reply`
/// answers nothing; the peer sees its request fail).
pub struct Inbound {
    pub peer: PeerId,
    pub request: Framed<ClusterRequest>,
    pub reply: oneshot::Sender<Framed<ClusterResponse>>,
}

#[derive(Debug, Clone, Default)]
struct PeerInfo {
    addresses: Vec<String>,
    rtt_ms: Option<f64>,
    connected: bool,
    /// When the last connection closed (None while connected or never).
    gone_since: Option<std::time::Instant>,
}

/// What the node needs to know of a peer to place shards and pick replicas.
#[derive(Debug, Clone)]
pub struct PeerState {
    pub peer_id: PeerId,
    pub connected: bool,
    pub rtt_ms: Option<f64>,
    pub gone_since: Option<std::time::Instant>,
}

/// The node's side of the peer network.
#[derive(Clone)]
pub struct P2pHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    peers: Arc<RwLock<HashMap<PeerId, PeerInfo>>>,
    listening: Arc<RwLock<Vec<String>>>,
}

impl P2pHandle {
    pub fn peer_id(&self) -> String {
        self.peer_id.to_string()
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Every peer ever connected, with its state.
    pub fn peer_states(&self) -> Vec<PeerState> {
        self.peers
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

    /// Sends a storage request to `peer` and waits for its answer.
    pub async fn ask(&self, peer: PeerId, request: Framed<ClusterRequest>) -> Result<Framed<ClusterResponse>, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Ask(peer, request, reply))
            .await
            .map_err(|_| "the peer network stopped".to_string())?;
        answer.await.map_err(|_| "the peer network stopped".to_string())?
    }

    /// Connected peers.
    pub fn peers(&self) -> Vec<PeerView> {
        let mut out: Vec<PeerView> = self
            .peers
            .read()
            .iter()
            .filter(|(_, p)| p.connected)
            .map(|(id, p)| PeerView {
                peer_id: id.to_string(),
                addresses: p.addresses.clone(),
                // Filled in by the node, which judges admission.
                admitted: false,
                rtt_ms: p.rtt_ms,
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    pub fn listening(&self) -> Vec<String> {
        self.listening.read().clone()
    }

    /// Sends a transaction to the orderer among the connected peers; returns its receipt (JSON).
    pub async fn submit(&self, tx: SignedTx) -> Result<serde_json::Value, String> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Submit(tx, reply)).await.map_err(|_| "the peer network stopped".to_string())?;
        answer.await.map_err(|_| "the peer network stopped".to_string())?
    }
}

/// A forwarded transaction still looking for the orderer.
struct Pending {
    tx: SignedTx,
    untried: VecDeque<PeerId>,
    reply: Reply,
}

struct Service {
    swarm: Swarm<Behaviour>,
    ledger: Arc<Ledger>,
    peers: Arc<RwLock<HashMap<PeerId, PeerInfo>>>,
    listening: Arc<RwLock<Vec<String>>>,
    topic: gossipsub::IdentTopic,
    published: u64,
    submits: HashMap<OutboundRequestId, Pending>,
    asks: HashMap<OutboundRequestId, ClusterReply>,
    inbound: mpsc::Sender<Inbound>,
    answers: futures::stream::FuturesUnordered<PendingAnswer>,
}

type PendingAnswer = futures::future::BoxFuture<
    'static,
    (request_response::ResponseChannel<Framed<ClusterResponse>>, Option<Framed<ClusterResponse>>),
>;

/// Starts the swarm on the current Tokio runtime.
/// Storage requests from peers arrive on the returned receiver.
pub fn spawn(
    config: P2pConfig,
    key: libp2p::identity::Keypair,
    ledger: Arc<Ledger>,
) -> Result<(P2pHandle, mpsc::Receiver<Inbound>), String> {
    let peer_id = key.public().to_peer_id();
    let use_mdns = config.mdns;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| format!("TCP transport: {e}"))?
        .with_quic()
        .with_behaviour(|key| Behaviour::new(key, use_mdns).map_err(|e| e.into()))
        .map_err(|e| format!("behaviour: {e}"))?
        .with_swarm_config(|c| {
            // Lazy negotiation: a request's first bytes travel with its protocol proposal instead
            // of a round trip later (every peer speaks the same protocols).
            c.with_idle_connection_timeout(Duration::from_secs(120))
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    let topic = gossipsub::IdentTopic::new(LEDGER_TOPIC);
    swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| format!("gossipsub subscribe: {e}"))?;
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    for addr in &config.peers {
        if let Err(e) = swarm.dial(addr.clone()) {
            tracing::warn!(peer = %addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    let (commands, rx) = mpsc::channel(64);
    let peers = Arc::new(RwLock::new(HashMap::new()));
    let listening = Arc::new(RwLock::new(Vec::new()));
    let published = ledger.height();
    let (inbound, inbound_rx) = mpsc::channel(256);
    let service = Service {
        asks: HashMap::new(),
        inbound,
        answers: Default::default(),
        swarm,
        ledger,
        peers: Arc::clone(&peers),
        listening: Arc::clone(&listening),
        topic,
        published,
        submits: HashMap::new(),
    };
    tokio::spawn(service.run(rx, config.peers));
    tracing::info!(%peer_id, "peer network started");
    Ok((P2pHandle { peer_id, commands, peers, listening }, inbound_rx))
}

impl Service {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, bootstrap: Vec<Multiaddr>) {
        let mut heights = self.ledger.subscribe();
        let mut catch_up = tokio::time::interval(Duration::from_secs(10));
        let mut redial = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                cmd = commands.recv() => match cmd {
                    Some(Command::Submit(tx, reply)) => self.forward(tx, reply),
                    Some(Command::Ask(peer, request, reply)) => {
                        let id = self.swarm.behaviour_mut().cluster.send_request(&peer, request);
                        self.asks.insert(id, reply);
                    }
                    None => return,
                },
                Some((channel, answer)) = self.answers.next(), if !self.answers.is_empty() => {
                    if let Some(answer) = answer {
                        let _ = self.swarm.behaviour_mut().cluster.send_response(channel, answer);
                    }
                }
                changed = heights.changed() => {
                    if changed.is_err() { return; }
                    self.publish_new_entries();
                }
                _ = catch_up.tick() => self.ask_everyone_for_entries(),
                _ = redial.tick() => {
                    // Bootstrap peers that went away are dialled again until they come back.
                    let connected = self.swarm.connected_peers().count();
                    if connected == 0 {
                        for addr in &bootstrap {
                            let _ = self.swarm.dial(addr.clone());
                        }
                    } else {
                        self.connect_known_peers();
                    }
                }
            }
        }
    }

    /// Storage nodes talk to every other directly (placement needs each owner's holdings), so
    /// peers learnt through Kademlia are dialled too; a Kademlia bootstrap finds new ones.
    fn connect_known_peers(&mut self) {
        let local = *self.swarm.local_peer_id();
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
        let known: Vec<PeerId> = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
            .collect();
        for peer in known {
            if peer != local && !self.swarm.is_connected(&peer) {
                let _ = self.swarm.dial(peer);
            }
        }
    }

    fn publish_new_entries(&mut self) {
        if !self.ledger.is_orderer() {
            return;
        }
        let height = self.ledger.height();
        for entry in self.ledger.entries(self.published, (height - self.published.min(height)) as usize) {
            match serde_json::to_vec(&entry) {
                Ok(bytes) => {
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
                        // No subscribed peer yet: they catch up when they connect.
                        tracing::debug!(height = entry.height, error = %e, "ledger entry not gossiped");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a ledger entry"),
            }
        }
        self.published = height;
    }

    fn ask_for_entries(&mut self, peer: PeerId) {
        let from = self.ledger.height();
        self.swarm.behaviour_mut().ledger.send_request(&peer, LedgerRequest::Entries { from });
    }

    fn ask_everyone_for_entries(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            self.ask_for_entries(p);
        }
    }

    /// Applies replicated entries in order; returns whether the log is still behind the sender.
    fn apply_entries(&mut self, from: PeerId, entries: Vec<Entry>) -> bool {
        let full = entries.len() as u64 == CATCH_UP_BATCH;
        for entry in entries {
            let height = entry.height;
            match self.ledger.append_replicated(entry) {
                Ok(true) => tracing::debug!(height, peer = %from, "ledger entry replicated"),
                Ok(false) => {}
                Err(LedgerError::Gap { .. }) => return true,
                Err(e) => {
                    tracing::error!(height, peer = %from, error = %e, "replicated ledger entry refused");
                    return false;
                }
            }
        }
        full
    }

    fn forward(&mut self, tx: SignedTx, reply: Reply) {
        let untried: VecDeque<PeerId> = self.swarm.connected_peers().copied().collect();
        self.try_next(Pending { tx, untried, reply });
    }

    fn try_next(&mut self, mut p: Pending) {
        match p.untried.pop_front() {
            Some(peer) => {
                let id = self.swarm.behaviour_mut().ledger.send_request(&peer, LedgerRequest::Submit(p.tx.clone()));
                self.submits.insert(id, p);
            }
            None => {
                let _ = p
                    .reply
                    .send(Err("no connected peer orders transactions (is the admin's node reachable?)".to_string()));
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening for peers");
                self.listening.write().push(address.to_string());
            }
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                let addr = endpoint.get_remote_address().clone();
                {
                    let mut peers = self.peers.write();
                    let info = peers.entry(peer_id).or_default();
                    info.connected = true;
                    info.gone_since = None;
                    if !info.addresses.contains(&addr.to_string()) {
                        info.addresses.push(addr.to_string());
                    }
                }
                self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                tracing::info!(peer = %peer_id, "peer connected");
                self.ask_for_entries(peer_id);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                if let Some(p) = self.peers.write().get_mut(&peer_id) {
                    p.connected = false;
                    p.gone_since = Some(std::time::Instant::now());
                }
                tracing::info!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                if let Some(p) = self.peers.write().get_mut(&peer) {
                    p.rtt_ms = Some(rtt.as_secs_f64() * 1e3);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    let _ = self.swarm.dial(addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => match serde_json::from_slice::<Entry>(&message.data) {
                Ok(entry) => {
                    if self.apply_entries(propagation_source, vec![entry]) {
                        self.ask_for_entries(propagation_source);
                    }
                }
                Err(e) => tracing::warn!(peer = %propagation_source, error = %e, "unreadable ledger gossip"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::Message {
                peer, message, ..
            })) => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let response = self.answer(request);
                    let _ = self.swarm.behaviour_mut().ledger.send_response(channel, response);
                }
                request_response::Message::Response { request_id, response } => match response {
                    LedgerResponse::Entries(entries) => {
                        if self.apply_entries(peer, entries) {
                            self.ask_for_entries(peer);
                        }
                    }
                    LedgerResponse::Submitted(result) => {
                        if let Some(p) = self.submits.remove(&request_id) {
                            match result {
                                Err(e) if e == NOT_ORDERER => self.try_next(p),
                                other => {
                                    let _ = p.reply.send(other);
                                }
                            }
                        }
                    }
                },
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(request_response::Event::OutboundFailure {
                request_id,
                error,
                peer,
                ..
            })) => {
                tracing::debug!(peer = %peer, error = %error, "ledger request failed");
                if let Some(p) = self.submits.remove(&request_id) {
                    self.try_next(p);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Cluster(event)) => self.on_cluster(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                tracing::debug!(peer = %peer, "routing table updated");
            }
            _ => {}
        }
    }

    fn on_cluster(&mut self, event: request_response::Event<Framed<ClusterRequest>, Framed<ClusterResponse>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let (reply, answer) = oneshot::channel();
                    // A full queue means the node is overwhelmed: the request is dropped and the
                    // peer sees it fail, rather than the swarm loop stalling.
                    if self.inbound.try_send(Inbound { peer, request, reply }).is_err() {
                        tracing::warn!(peer = %peer, "storage request dropped: the node is busy");
                        return;
                    }
                    self.answers.push(Box::pin(async move { (channel, answer.await.ok()) }));
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.asks.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                tracing::debug!(peer = %peer, error = %error, "storage request failed");
                if let Some(reply) = self.asks.remove(&request_id) {
                    let _ = reply.send(Err(format!("peer {peer}: {error}")));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(peer = %peer, error = %error, "storage request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn answer(&mut self, request: LedgerRequest) -> LedgerResponse {
        match request {
            LedgerRequest::Entries { from } => {
                LedgerResponse::Entries(self.ledger.entries(from, CATCH_UP_BATCH as usize))
            }
            LedgerRequest::Submit(tx) => {
                if !self.ledger.is_orderer() {
                    return LedgerResponse::Submitted(Err(NOT_ORDERER.to_string()));
                }
                let result = self
                    .ledger
                    .submit(tx)
                    .map_err(|e| e.to_string())
                    .and_then(|r| serde_json::to_value(r).map_err(|e| e.to_string()));
                LedgerResponse::Submitted(result)
            }
        }
    }
}
