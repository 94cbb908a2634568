//! The PRAG storage node, as a library: [`Node::open`] starts one from a [`NodeConfig`],
//! [`api::router`] serves its HTTP API, and [`NodeClient`] talks to one over the owner's channel.
//! The `prag` command (crate `prag-cli`) is a thin shell over this.
//!
//! The node is a composition of components, each owning its state (`node.rs` draws the map):
//! the collection registry, ingest, retrieval, access (workers' decision table, grants,
//! operators, the audit log), the ledger service, the peer network and the storage network, and
//! the status snapshot. Below them are the leaves: the encrypted store, the vector index,
//! attestation, cryptography and the owner's channel.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]
#![warn(unreachable_pub)]

mod access;
pub mod account;
pub mod api;
pub mod attest;
mod auth;
pub mod channel;
pub mod chunking;
pub mod client;
mod cluster;
pub mod collections;
pub mod config;
pub mod crypto;
mod error;
pub mod extract;
pub mod fault;
pub mod identity;
pub mod index;
mod ingest;
mod ledger;
pub mod lexical;
mod limits;
pub mod market;
mod metrics;
mod net;
mod node;
mod placement;
pub(crate) mod retrieval;
pub mod sample;
pub mod sealed;
mod status;
pub mod store;
mod tasks;

pub use access::Access;
pub use auth::unix_now;
pub use client::{Answer, ClientError, NodeClient, VerifiedNode, WorkerQuery};
pub use collections::{Collection, Collections, validate_collection_name};
pub use config::NodeConfig;
pub use error::{Error, ErrorKind, Result, WireError};
pub use ingest::Ingest;
pub use ledger::{LedgerDamage, LedgerService, LedgerStatus, Receipt, contract_address};
pub use metrics::Metrics;
pub use net::{Net, load_or_create_keypair};
pub use node::Node;
pub use retrieval::{Retrieval, Retrieved};
pub use status::Status;
