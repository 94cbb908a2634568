//! `prag`: the PRAG command. A thin shell: parse flags, set up logging, run a command from the
//! library, report errors with their context.

use std::process::ExitCode;

use clap::Parser;
use prag_node::cli::Cli;

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
    let cli = Cli::parse();
    prag_node::logging::init(&cli.log);
    match prag_node::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
