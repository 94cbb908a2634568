//! One module per top-level `prag` subcommand.

pub mod admin;
pub mod attest;
pub mod collection;
pub mod console;
pub mod demo;
pub mod doc;
pub mod embed;
pub mod eval;
pub mod internal;
pub mod keys;
pub mod market;
pub mod model;
pub mod node;
pub mod query;
mod receipt;
pub mod status;
pub mod storage;
pub mod upload;
pub mod worker;

use std::process::ExitCode;

use crate::args::Command;

/// Runs a parsed command (the internal ones run from `main`, before logging is set up).
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Model(cmd) => model::run(cmd),
        Command::Embed(args) => embed::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Node(args) => node::run(*args),
        Command::Collection(args) => collection::run(args),
        Command::Upload(args) => upload::run(args),
        Command::Query(args) => query::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Doc(args) => doc::run(args),
        Command::Status(args) => status::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Market(args) => market::run(args),
        Command::Receipt(cmd) => receipt::run(cmd),
        Command::Attest(cmd) => attest::run(cmd),
        Command::Storage(cmd) => storage::run(cmd),
        Command::Console { args } => console::run(&args),
        Command::InternalExtract(_) | Command::InternalJanitor { .. } => {
            anyhow::bail!("internal commands run from main")
        }
    }
}

/// The whole command: both binaries (`prag`, and the test build `prag-faulty`) run this.
pub fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
    let crate::args::Cli { log, command } = clap::Parser::parse();
    // The sandbox's child and the janitor run before anything else is set up.
    let command = match command {
        Command::InternalExtract(args) => return internal::extract(args),
        Command::InternalJanitor { dir } => return internal::janitor(&dir),
        other => other,
    };
    crate::logging::init(&log);
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
