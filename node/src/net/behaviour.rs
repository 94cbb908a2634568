//! The libp2p behaviours a node runs, composed.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{StreamProtocol, gossipsub, identify, identity::Keypair, kad, mdns, ping, request_response};

use super::NetError;
use super::protocol::cluster::{self, ClusterCodec};
use super::protocol::ledger::{self, LedgerRequest, LedgerResponse};
use crate::config::NetConfig;

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub ledger: request_response::json::Behaviour<LedgerRequest, LedgerResponse>,
    /// Storage traffic: catalog, shard transfer, remote search.
    pub cluster: request_response::Behaviour<ClusterCodec>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

impl Behaviour {
    pub(crate) fn new(key: &Keypair, config: &NetConfig) -> Result<Self, NetError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| NetError::Setup(format!("{what}: {e}"));
        let peer_id = key.public().to_peer_id();
        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(500))
            .validation_mode(gossipsub::ValidationMode::Strict)
            .max_transmit_size(2 << 20)
            .build()
            .map_err(|e| setup("gossipsub config", &e))?;
        let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)
            .map_err(|e| setup("gossipsub", &e))?;
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::new(peer_id),
            kad::Config::new(StreamProtocol::new("/prag/kad/1.0.0")),
        );
        // Server mode always: nodes on private or loopback addresses confirm no external address,
        // and in client mode they would neither answer lookups nor enter others' tables.
        kad.set_mode(Some(kad::Mode::Server));
        let ledger = request_response::json::Behaviour::new(
            [(StreamProtocol::new(ledger::PROTOCOL), request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(config.ledger_request_timeout),
        );
        let cluster = request_response::Behaviour::with_codec(
            ClusterCodec,
            [(StreamProtocol::new(cluster::PROTOCOL), request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(config.cluster_request_timeout),
        );
        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id).map_err(|e| setup("mdns", &e))?)
        } else {
            None
        };
        Ok(Behaviour {
            identify: identify::Behaviour::new(identify::Config::new("/prag/1.0.0".into(), key.public())),
            ping: ping::Behaviour::new(ping::Config::new()),
            kad,
            gossipsub,
            ledger,
            cluster,
            mdns: mdns.into(),
        })
    }
}
