//! One module per `prag` subcommand.

pub mod demo;
pub mod embed;
pub mod model;
