//! The PRAG storage node library and the commands of the `prag` binary.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

pub mod access;
pub mod account;
pub mod api;
pub mod attest;
pub mod auth;
pub mod channel;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod crypto;
pub mod extract;
pub mod index;
pub mod ledger;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod p2p;
pub mod sealed;
pub mod service;
pub mod store;
