//! `prag-faulty`: the PRAG command built with fault injection, for the verifiable-retrieval tests
//! only (`scripts/test` builds it; no release build has it). Otherwise the same as `prag`; its
//! `node` refuses to start without an explicit `--inject-fault`.

#![cfg_attr(test, allow(clippy::expect_used, clippy::unwrap_used, clippy::panic))]

mod args;
mod commands;
mod config;
mod connect;
mod fault;
mod logging;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::main()
}
