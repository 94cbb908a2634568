//! `prag console`: hands over to `prag-console`, the console binary (crate `prag-tui`, which the
//! node does not depend on), found beside this executable or on PATH, the way git and cargo run
//! their external subcommands.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let beside = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("prag-console")));
    let program: PathBuf = match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("prag-console"),
    };
    let status = Command::new(&program).args(args).status().with_context(|| {
        format!(
            "cannot run {}: build it with `cargo build --release -p prag-tui` (it installs as prag-console beside prag)",
            program.display()
        )
    })?;
    std::process::exit(status.code().unwrap_or(1));
}
