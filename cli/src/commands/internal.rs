//! The hidden commands the node starts itself: `internal-extract` (a sandboxed parser) and
//! `internal-janitor` (removes the embedded index's plain files when the node dies).

use std::process::ExitCode;

use prag_node::extract::child::ChildLimits;

use crate::args::ExtractChildArgs;

pub fn extract(args: ExtractChildArgs) -> ExitCode {
    let kind = match args.kind.parse() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("prag internal-extract: {e}");
            return ExitCode::from(2);
        }
    };
    prag_node::extract::child::run(ChildLimits {
        kind,
        memory_mb: args.memory_mb,
        cpu_secs: args.cpu_secs,
        stack_mb: args.stack_mb,
        max_input: args.max_input,
        max_output: args.max_output,
    })
}

pub fn janitor(dir: &std::path::Path) -> ExitCode {
    prag_node::index::edge::run_janitor(dir);
    ExitCode::SUCCESS
}
