//! `prag`: the PRAG command. A thin shell: parse flags, set up logging, run a command from the
//! library, report errors with their context.

use std::process::ExitCode;

use clap::Parser;
use prag_node::cli::{Cli, Command};

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
    let Cli { log, command } = Cli::parse();
    // The sandbox's child and the janitor run before anything else is set up.
    let command = match command {
        Command::InternalExtract(args) => return prag_node::extract::child::run(args),
        Command::InternalJanitor { dir } => return prag_node::cli::run_janitor(&dir),
        other => other,
    };
    prag_node::logging::init(&log);
    match prag_node::cli::run(Cli { log, command }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
