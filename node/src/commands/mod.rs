//! One module per `prag` subcommand.

pub mod attest;
pub mod collection;
pub mod console;
pub mod contracts;
pub mod demo;
pub mod embed;
pub mod keys;
pub mod model;
pub mod query;
pub mod serve;
pub mod storage;
pub mod upload;
