//! `prag`: the PRAG command. A thin shell: parse flags, set up logging, run a command from the
//! library, report errors with their context.

use std::process::ExitCode;

use clap::Parser;
use prag_node::cli::Cli;

fn main() -> ExitCode {
    one_matmul_thread_per_worker();
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

/// candle's CPU matmul reads `RAYON_NUM_THREADS` on every call and otherwise fans out over all
/// cores. The embedder already runs one model worker per core, each on its own batch, and that
/// measured faster with single-threaded matmuls (131 vs 116 texts/s on 2 cores), so unless the
/// user chose a value, matmuls stay on their worker's thread.
fn one_matmul_thread_per_worker() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in `main`, before this process starts any other thread.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RAYON_NUM_THREADS", "1");
        }
    }
}
