//! The peer network (libp2p): transport and discovery, and the ledger's replication.
//!
//! - Transport: TCP (noise + yamux) and QUIC; identify; ping (RTT); Kademlia with the explicit
//!   `--peer` addresses as bootstrap; mDNS only with `--mdns`.
//! - Identity: an ed25519 key in `<data>/p2p.key` (0600), so a node keeps its peer id.
//! - Ledger replication: the orderer (the admin's node) is the single writer. It publishes each new
//!   entry on gossipsub; every node checks an entry (height, previous hash, its own hash, the
//!   transaction's signature, the contract rules) before appending it, and catches up by
//!   request-response when it connects or sees a gap. A node that is not the orderer forwards
//!   transactions to whichever connected peer orders them.

mod behaviour;
mod identity;
mod protocol;
mod service;

pub use identity::load_or_create_identity;
pub use service::{Inbound, P2pConfig, P2pHandle, PeerState, spawn};
