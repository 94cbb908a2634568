//! The swarm's event loop: it owns the swarm and every piece of network state (the peer table,
//! requests in flight), and does no application work. Inbound requests leave as events for the
//! ledger and the storage network, each with a oneshot for its answer; answers come back and are
//! sent from here. Nothing here reads a file, takes an application lock or waits on one.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns, ping};
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::handle::{ClusterReply, Command, LedgerReply, PeerTable};
use super::protocol::cluster::{ClusterRequest, ClusterResponse, Framed};
use super::protocol::ledger::{LedgerRequest, LedgerResponse};
use super::{ClusterInbound, LedgerEvent, NetError};

type PendingClusterAnswer =
    BoxFuture<'static, (ResponseChannel<Framed<ClusterResponse>>, Option<Framed<ClusterResponse>>)>;
type PendingLedgerAnswer = BoxFuture<'static, (ResponseChannel<LedgerResponse>, Option<LedgerResponse>)>;

pub(super) struct EventLoop {
    pub swarm: Swarm<Behaviour>,
    pub topic: gossipsub::IdentTopic,
    pub peers: PeerTable,
    pub listening: Arc<RwLock<Vec<String>>>,
    pub bootstrap: Vec<Multiaddr>,
    pub redial: std::time::Duration,
    pub ledger_events: mpsc::Sender<LedgerEvent>,
    pub cluster_inbound: mpsc::Sender<ClusterInbound>,
    pub asks_cluster: HashMap<OutboundRequestId, ClusterReply>,
    pub asks_ledger: HashMap<OutboundRequestId, LedgerReply>,
    pub answers_cluster: FuturesUnordered<PendingClusterAnswer>,
    pub answers_ledger: FuturesUnordered<PendingLedgerAnswer>,
}

impl EventLoop {
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>, cancel: CancellationToken) {
        let mut redial = tokio::time::interval(self.redial);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                event = self.swarm.select_next_some() => self.on_event(event),
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                Some((channel, answer)) = self.answers_cluster.next(), if !self.answers_cluster.is_empty() => {
                    if let Some(answer) = answer {
                        let _ = self.swarm.behaviour_mut().cluster.send_response(channel, answer);
                    }
                }
                Some((channel, answer)) = self.answers_ledger.next(), if !self.answers_ledger.is_empty() => {
                    if let Some(answer) = answer {
                        let _ = self.swarm.behaviour_mut().ledger.send_response(channel, answer);
                    }
                }
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AskCluster(peer, request, reply) => {
                let id = self.swarm.behaviour_mut().cluster.send_request(&peer, request);
                self.asks_cluster.insert(id, reply);
            }
            Command::AskLedger(peer, request, reply) => {
                let id = self.swarm.behaviour_mut().ledger.send_request(&peer, request);
                self.asks_ledger.insert(id, reply);
            }
            Command::PublishLedger(bytes) => {
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), bytes) {
                    // No subscribed peer yet: they catch up when they connect.
                    tracing::debug!(error = %e, "ledger entry not gossiped");
                }
            }
        }
    }

    /// Bootstrap peers that went away are dialled again until they come back; once connected,
    /// every peer Kademlia knows is dialled (storage nodes talk to each other directly: placement
    /// needs every owner's holdings).
    fn redial(&mut self) {
        if self.swarm.connected_peers().count() == 0 {
            for addr in &self.bootstrap {
                let _ = self.swarm.dial(addr.clone());
            }
            return;
        }
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

    /// Hands an event to the ledger; when its queue is full the event is dropped (the ledger
    /// catches up on its own timer) rather than the loop stalling.
    fn to_ledger(&self, event: LedgerEvent) {
        if self.ledger_events.try_send(event).is_err() {
            tracing::warn!("ledger event dropped: the ledger is busy (it catches up on its own)");
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
                self.to_ledger(LedgerEvent::Connected(peer_id));
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
            })) => self.to_ledger(LedgerEvent::Gossip { from: propagation_source, data: message.data }),
            SwarmEvent::Behaviour(BehaviourEvent::Ledger(event)) => self.on_ledger(event),
            SwarmEvent::Behaviour(BehaviourEvent::Cluster(event)) => self.on_cluster(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. })) => {
                tracing::debug!(peer = %peer, "routing table updated");
            }
            _ => {}
        }
    }

    fn on_ledger(&mut self, event: request_response::Event<LedgerRequest, LedgerResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let (reply, answer) = oneshot::channel();
                    if self.ledger_events.try_send(LedgerEvent::Request { peer, request, reply }).is_err() {
                        tracing::warn!(peer = %peer, "ledger request dropped: the ledger is busy");
                        return;
                    }
                    self.answers_ledger.push(Box::pin(async move { (channel, answer.await.ok()) }));
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.asks_ledger.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                tracing::debug!(peer = %peer, error = %error, "ledger request failed");
                if let Some(reply) = self.asks_ledger.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Peer { peer: peer.to_string(), reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(peer = %peer, error = %error, "ledger request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_cluster(&mut self, event: request_response::Event<Framed<ClusterRequest>, Framed<ClusterResponse>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let (reply, answer) = oneshot::channel();
                    // A full queue means the node is overwhelmed: the request is dropped and the
                    // peer sees it fail, rather than the swarm loop stalling.
                    if self.cluster_inbound.try_send(ClusterInbound { peer, request, reply }).is_err() {
                        tracing::warn!(peer = %peer, "storage request dropped: the node is busy");
                        return;
                    }
                    self.answers_cluster.push(Box::pin(async move { (channel, answer.await.ok()) }));
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.asks_cluster.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, peer, .. } => {
                tracing::debug!(peer = %peer, error = %error, "storage request failed");
                if let Some(reply) = self.asks_cluster.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Peer { peer: peer.to_string(), reason: error.to_string() }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(peer = %peer, error = %error, "storage request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
