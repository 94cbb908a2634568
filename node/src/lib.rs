//! The PRAG storage node library and the commands of the `prag` binary.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod model;
pub mod account;
pub mod crypto;
pub mod index;
pub mod store;
pub mod extract;
pub mod auth;
pub mod metrics;
pub mod service;
pub mod api;
pub mod client;
