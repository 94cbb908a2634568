//! PRAG's wire and contract types, with no I/O: HTTP API bodies, account identities, the
//! canonical form of signed requests, and (as they land) the contracts' pure state machines.
//! The same code judges a request in a node, in a worker, in the console and in tests.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

pub mod account;
pub mod api;
pub mod auth;
pub mod contracts;
pub mod ledger;
pub mod verifiable;
