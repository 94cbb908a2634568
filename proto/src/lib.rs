//! PRAG's wire and contract types, with no I/O: HTTP API bodies, account identities, the
//! canonical form of signed requests, and (as they land) the contracts' pure state machines.
//! The same code judges a request in a node, in a worker, in the console and in tests.

pub mod account;
pub mod api;
pub mod auth;
