//! The parent's side of the extraction sandbox: one child process per HTML or PDF file (see
//! `child.rs`), at most `concurrency` at a time and one per caller, each killed when its time is up
//! or when the upload that asked for it goes away. The child's death is read back as the limit the
//! file hit.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ExtractError, HostileFailure, Kind};
use crate::limits::KeyedSlots;

/// Limits of one extraction.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `prag` binary (it runs `prag internal-extract`).
    pub exe: PathBuf,
    /// Address space of the child, MiB.
    pub memory_mb: u64,
    /// CPU time of the child, seconds (the wall-clock limit is this plus 5 s).
    pub cpu_secs: u64,
    /// Stack of the parsing thread, MiB.
    pub stack_mb: usize,
    /// Largest text a file may yield, bytes.
    pub max_output: usize,
    /// Children running at once.
    pub concurrency: usize,
}

impl SandboxConfig {
    /// Defaults for the running binary: 1 GiB, 30 s, 64 MiB stack, one child per two cores (so a
    /// stream of hostile files cannot take every core from queries and embedding).
    pub fn for_current_exe(max_output: usize) -> Self {
        SandboxConfig {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("prag")),
            memory_mb: 1024,
            cpu_secs: 30,
            stack_mb: 64,
            max_output,
            concurrency: (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) / 2).max(1),
        }
    }
}

/// How one extraction went, for logs and metrics.
#[derive(Debug, Clone, Copy)]
pub struct ExtractStats {
    pub seconds: f64,
}

pub struct Sandbox {
    config: SandboxConfig,
    slots: Arc<tokio::sync::Semaphore>,
    per_caller: KeyedSlots,
}

/// What stderr says when a Rust process dies of these.
const OUT_OF_MEMORY: &str = "memory allocation of";
const STACK_OVERFLOW: &str = "has overflowed its stack";
const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1)));
        Sandbox { config, slots, per_caller: KeyedSlots::new(1) }
    }

    /// The text of an HTML or PDF file, extracted in a child process for `caller` (one child per
    /// caller at a time, so one caller cannot hold every slot).
    pub async fn extract(
        &self,
        caller: &str,
        path: &str,
        kind: Kind,
        bytes: Arc<Vec<u8>>,
    ) -> Result<(String, ExtractStats), ExtractError> {
        let internal = |reason: String| ExtractError::Sandbox { path: path.to_string(), reason };
        let _mine = self.per_caller.acquire(caller).await;
        let _slot = self.slots.acquire().await.map_err(|_| internal("the sandbox is shut down".into()))?;
        let started = Instant::now();
        let c = &self.config;
        let mut child = tokio::process::Command::new(&c.exe)
            .arg("internal-extract")
            .args(["--kind", kind.as_str()])
            .args(["--memory-mb", &c.memory_mb.to_string(), "--cpu-secs", &c.cpu_secs.to_string()])
            .args(["--stack-mb", &c.stack_mb.to_string(), "--max-input", &bytes.len().to_string()])
            .args(["--max-output", &c.max_output.to_string()])
            // The child needs nothing from the environment and must not log what it reads.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| internal(format!("cannot start {}: {e}", c.exe.display())))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(internal("the child's pipes are missing".into()));
        };
        let input = Arc::clone(&bytes);
        // Written from a task of its own: a child that stops reading must not block the reads below.
        let writer = tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        });
        let max_out = (c.max_output as u64).saturating_add(1);
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout = stdout.take(max_out.saturating_add(1));
            let mut stderr = stderr.take(4096);
            let (o, e, status) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err), child.wait());
            (o.map(|_| out), e.map(|_| err), status)
        };
        let wall = Duration::from_secs(c.cpu_secs.saturating_add(5));
        let outcome = tokio::time::timeout(wall, run).await;
        writer.abort();
        let stats = ExtractStats { seconds: started.elapsed().as_secs_f64() };
        let limit = |what: String| ExtractError::Limit { path: path.to_string(), limit: what };
        let time_limit =
            || limit(format!("extracting it takes more than {} s (the extractor's time limit)", c.cpu_secs));
        let Ok((out, err, status)) = outcome else {
            // Dropping `child` at return kills it.
            return Err(time_limit());
        };
        let status = status.map_err(|e| internal(format!("cannot wait for the child: {e}")))?;
        let err = String::from_utf8_lossy(&err.unwrap_or_default()).into_owned();
        if !status.success() {
            return Err(match status.signal() {
                Some(SIGXCPU) | Some(SIGKILL) => time_limit(),
                Some(_) if err.contains(OUT_OF_MEMORY) => limit(format!(
                    "extracting it needs more than {} MiB of memory (the extractor's limit)",
                    c.memory_mb
                )),
                Some(_) if err.contains(STACK_OVERFLOW) => {
                    limit(format!("it is nested too deeply for the extractor ({} MiB stack limit)", c.stack_mb))
                }
                Some(sig) => limit(format!("the extractor stopped on this file (signal {sig})")),
                None => internal(format!("the child exited with {status}")),
            });
        }
        let out = out.map_err(|e| internal(format!("cannot read the child's answer: {e}")))?;
        match out.split_first() {
            Some((b'T', text)) => {
                let text = String::from_utf8(text.to_vec()).map_err(|_| internal("the answer is not UTF-8".into()))?;
                Ok((text, stats))
            }
            Some((b'L', _)) => Err(ExtractError::TooMuchText { path: path.to_string(), limit: c.max_output }),
            Some((b'E', json)) => match serde_json::from_slice::<HostileFailure>(json) {
                Ok(f) => Err(f.with_path(path)),
                Err(e) => Err(internal(format!("unreadable answer: {e}"))),
            },
            _ => Err(internal("the child gave no answer".into())),
        }
    }
}
