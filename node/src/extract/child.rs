//! The sandbox's child process: `prag internal-extract` (hidden). It limits itself first — address
//! space, CPU seconds, no file writes, no core dumps, few descriptors, hard limits equal to soft so
//! the parser cannot raise them, a lower CPU priority — then reads one file from stdin, parses it
//! on a thread with a known stack, and writes the answer to stdout:
//!
//! ```text
//! 'T' ‖ UTF-8 text        the file's text
//! 'E' ‖ JSON              a HostileFailure: the file is not valid
//! 'L'                     the text is longer than --max-output
//! ```
//! Whatever the file does to the parser — exhausting memory, recursing past the stack, looping —
//! ends this process, which the node reports as the limit that was hit.

use std::io::{Read, Write};
use std::process::ExitCode;

use super::{HostileFailure, Kind, hostile_text};

/// What one child may use (the parent passes these as flags of `prag internal-extract`).
#[derive(Debug, Clone)]
pub struct ChildLimits {
    pub kind: Kind,
    /// Address-space limit, MiB.
    pub memory_mb: u64,
    /// CPU-time limit, seconds.
    pub cpu_secs: u64,
    /// Stack of the parsing thread, MiB.
    pub stack_mb: usize,
    /// Largest input read from stdin, bytes.
    pub max_input: u64,
    /// Largest text answered, bytes.
    pub max_output: usize,
}

fn limit(resource: rustix::process::Resource, soft: u64, hard: u64) -> std::io::Result<()> {
    rustix::process::setrlimit(resource, rustix::process::Rlimit { current: Some(soft), maximum: Some(hard) })
        .map_err(std::io::Error::from)
}

fn apply_limits(args: &ChildLimits) -> std::io::Result<()> {
    use rustix::process::Resource;
    let bytes = args.memory_mb.saturating_mul(1024 * 1024);
    limit(Resource::As, bytes, bytes)?;
    // SIGXCPU at the soft limit, SIGKILL one second later.
    limit(Resource::Cpu, args.cpu_secs.max(1), args.cpu_secs.max(1) + 1)?;
    limit(Resource::Fsize, 0, 0)?;
    limit(Resource::Core, 0, 0)?;
    limit(Resource::Nofile, 16, 16)?;
    // Parsing yields to the node's own work (queries, embedding) on a busy machine.
    rustix::process::nice(10).map(|_| ()).map_err(std::io::Error::from)
}

/// Runs the child; the exit code is 0 whenever an answer was written.
pub fn run(args: ChildLimits) -> ExitCode {
    if let Err(e) = apply_limits(&args) {
        eprintln!("prag internal-extract: cannot set resource limits: {e}");
        return ExitCode::from(3);
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().lock().take(args.max_input).read_to_end(&mut input) {
        eprintln!("prag internal-extract: cannot read the input: {e}");
        return ExitCode::from(4);
    }
    let kind = args.kind;
    let parsed = std::thread::Builder::new()
        .name("extract".into())
        .stack_size(args.stack_mb.max(1) << 20)
        .spawn(move || hostile_text(kind, &input))
        .map_err(|e| format!("cannot start the parsing thread: {e}"))
        .and_then(|h| h.join().map_err(|_| "the parser panicked".to_string()));
    let mut out = std::io::stdout().lock();
    let written = match parsed {
        Ok(Ok(text)) if text.len() > args.max_output => out.write_all(b"L"),
        Ok(Ok(text)) => out.write_all(b"T").and_then(|_| out.write_all(text.as_bytes())),
        Ok(Err(failure)) => write_failure(&mut out, &failure),
        Err(reason) => {
            let failure = match kind {
                Kind::Html => HostileFailure::BadHtml(reason),
                _ => HostileFailure::BadPdf(reason),
            };
            write_failure(&mut out, &failure)
        }
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(5),
    }
}

fn write_failure(out: &mut impl Write, failure: &HostileFailure) -> std::io::Result<()> {
    out.write_all(b"E")?;
    serde_json::to_writer(out, failure).map_err(std::io::Error::other)
}
