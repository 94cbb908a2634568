//! The PRAG storage node library and the commands of the `prag` binary.

pub mod cli;
pub mod commands;
pub mod logging;
pub mod model;
