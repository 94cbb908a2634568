//! `prag`: the PRAG command. A thin shell: parse flags, set up logging, run a command over the
//! node library, report errors with their context.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

mod args;
mod commands;
mod config;
mod connect;
mod logging;
mod output;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
    let Cli { log, command } = Cli::parse();
    // The sandbox's child and the janitor run before anything else is set up.
    let command = match command {
        Command::InternalExtract(args) => return commands::internal::extract(args),
        Command::InternalJanitor { dir } => return commands::internal::janitor(&dir),
        other => other,
    };
    logging::init(&log);
    match commands::run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
