//! `prag`: the PRAG command. A thin shell: parse flags, set up logging, run a command over the
//! node library, report errors with their context.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

mod args;
mod commands;
mod config;
mod connect;
#[cfg(feature = "fault-injection")]
mod fault;
mod logging;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::main()
}
