//! Each stack's request log: what this node answered, in order, sealed at rest under the node's
//! master key (`market/stacks/<id>.log`). It is what settlement commits to and what attesters
//! re-execute.
//!
//! File format: records one after another, each `u32` little-endian length ‖ AES-256-GCM
//! sealed JSON, keyed by (stack, index) so a record cannot be moved to another place or log. A
//! tail cut short by a crash is dropped at load (and the file cut back to its last whole
//! record): that answer goes unpaid, nothing else is lost. Records are written without an fsync
//! each (a sync per answer would cost more than the answer); `closed` marks a log whose stack
//! went to settlement, so nothing is appended after the root was committed.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use prag_proto::api::Hit;
use prag_proto::verifiable::{LoggedRequest, answer_leaf};
use serde::{Deserialize, Serialize};

use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::error::{Error, Result};

/// Largest record accepted at load (a question, its vector and k chunks are far smaller).
const MAX_RECORD: usize = 16 << 20;

/// One answered request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub request: LoggedRequest,
    pub hits: Vec<Hit>,
    pub units: u64,
    pub time: u64,
}

impl LogRecord {
    pub fn leaf(&self) -> [u8; 32] {
        answer_leaf(&self.request, &self.hits, self.units)
    }
}

/// One stack's log in memory.
#[derive(Debug, Default)]
pub struct StackLog {
    pub records: Vec<LogRecord>,
    pub leaves: Vec<[u8; 32]>,
    /// Units charged so far.
    pub used: u64,
    /// Settlement began: no more answers.
    pub closed: bool,
    /// The file, open for appending once the first answer is written.
    file: Option<std::fs::File>,
}

impl StackLog {
    /// The fewest units one answer of this log cost (how "used up" is judged).
    pub fn cheapest(&self) -> Option<u64> {
        self.records.iter().map(|r| r.units).min()
    }
}

/// Every stack log of this node.
pub struct StackLogs {
    dir: PathBuf,
    master: Arc<MasterKey>,
    open: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<StackLog>>>>,
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("cannot {what} {}", path.display());
    move |e| Error::internal(context, e)
}

impl StackLogs {
    pub fn open(dir: PathBuf, master: Arc<MasterKey>) -> Result<StackLogs> {
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(StackLogs { dir, master, open: Mutex::new(HashMap::new()) })
    }

    fn path(&self, stack: u64) -> PathBuf {
        self.dir.join(format!("{stack}.log"))
    }

    fn closed_path(&self, stack: u64) -> PathBuf {
        self.dir.join(format!("{stack}.closed"))
    }

    fn key(&self, stack: u64, index: u64) -> crate::crypto::DataKey {
        let s = stack.to_string();
        // The index is bound into the key and the AAD (low and high halves).
        self.master.derive(&KeyContext::new(Purpose::StackLog, &s, "record", index as u32, (index >> 32) as u32 + 1))
    }

    /// Stacks with a log here.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// A stack's log if this node has one (never makes an empty one: for callers nobody vouched
    /// for, who must not fill memory with the stacks they name).
    pub fn existing(&self, stack: u64) -> Result<Option<Arc<tokio::sync::Mutex<StackLog>>>> {
        if !self.open.lock().contains_key(&stack) && !self.path(stack).exists() {
            return Ok(None);
        }
        self.get(stack).map(Some)
    }

    /// A stack's log, loaded from disk on first use (empty when there is none).
    pub fn get(&self, stack: u64) -> Result<Arc<tokio::sync::Mutex<StackLog>>> {
        if let Some(l) = self.open.lock().get(&stack) {
            return Ok(Arc::clone(l));
        }
        let loaded = Arc::new(tokio::sync::Mutex::new(self.load(stack)?));
        Ok(Arc::clone(self.open.lock().entry(stack).or_insert(loaded)))
    }

    fn load(&self, stack: u64) -> Result<StackLog> {
        let path = self.path(stack);
        let mut log = StackLog { closed: self.closed_path(stack).exists(), ..Default::default() };
        let mut bytes = Vec::new();
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io("read", &path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(io("open", &path)(e)),
        }
        let mut at = 0usize;
        let mut damaged = false;
        while at + 4 <= bytes.len() {
            let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
            if len > MAX_RECORD || at + 4 + len > bytes.len() {
                break;
            }
            let index = log.records.len() as u64;
            let record = self
                .key(stack, index)
                .open(&bytes[at + 4..at + 4 + len])
                .ok()
                .and_then(|plain| serde_json::from_slice::<LogRecord>(&plain).ok())
                .filter(|r| r.request.stack == stack && r.request.index == index);
            let Some(record) = record else {
                damaged = true;
                break;
            };
            log.used = log.used.saturating_add(record.units);
            log.leaves.push(record.leaf());
            log.records.push(record);
            at += 4 + len;
        }
        if damaged {
            // Kept as it is for the operator to look at; no answer is added after damage.
            tracing::error!(
                stack,
                kept = log.records.len(),
                "a stack log record fails its integrity check; the log is closed before it"
            );
            log.closed = true;
        } else if at < bytes.len() {
            tracing::warn!(
                stack,
                kept = log.records.len(),
                "a stack log ended in a partial record (a crash); cut back"
            );
            let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io("open", &path))?;
            f.set_len(at as u64).map_err(io("truncate", &path))?;
        }
        Ok(log)
    }

    /// Appends `record` (at index `log.records.len()`) to the file, then to memory.
    pub fn append(&self, log: &mut StackLog, record: LogRecord) -> Result<[u8; 32]> {
        let stack = record.request.stack;
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&record).map_err(|e| Error::internal("cannot encode a log record", e))?,
        );
        let sealed = self.key(stack, log.records.len() as u64).seal(&plain)?;
        let mut line = Vec::with_capacity(4 + sealed.len());
        line.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        line.extend_from_slice(&sealed);
        let path = self.path(stack);
        let f = match &mut log.file {
            Some(f) => f,
            None => log
                .file
                .insert(std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io("open", &path))?),
        };
        f.write_all(&line).map_err(io("append to", &path))?;
        let leaf = record.leaf();
        log.used = log.used.saturating_add(record.units);
        log.leaves.push(leaf);
        log.records.push(record);
        Ok(leaf)
    }

    /// Drops a stack's log from memory (its file stays; it is read again when asked for).
    pub fn forget(&self, stack: u64) {
        self.open.lock().remove(&stack);
    }

    /// Marks a log closed (settlement begins), on disk first.
    pub fn close(&self, stack: u64, log: &mut StackLog) -> Result<()> {
        if !log.closed {
            let p = self.closed_path(stack);
            std::fs::write(&p, b"").map_err(io("write", &p))?;
            log.closed = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stack: u64, index: u64) -> LogRecord {
        LogRecord {
            request: LoggedRequest {
                stack,
                index,
                collection: "c".into(),
                k: 1,
                question: format!("q{index}"),
                vector: vec![0.5; 4],
                snapshot_root: hex::encode([1u8; 32]),
            },
            hits: vec![],
            units: 3 + index,
            time: 1,
        }
    }

    #[test]
    fn a_log_survives_a_restart_and_a_torn_tail_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let master = Arc::new(MasterKey::from_bytes([3; 32]));
        let logs = StackLogs::open(dir.path().join("stacks"), Arc::clone(&master)).unwrap();
        let l = logs.get(5).unwrap();
        {
            let mut log = l.blocking_lock();
            for i in 0..3 {
                logs.append(&mut log, record(5, i)).unwrap();
            }
            assert_eq!(log.used, 3 + 4 + 5);
        }
        let path = dir.path().join("stacks/5.log");
        let full = std::fs::read(&path).unwrap();
        assert!(!full.windows(2).any(|w| w == b"q1"), "the log is sealed at rest");
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        let again = StackLogs::open(dir.path().join("stacks"), Arc::clone(&master)).unwrap();
        let log = again.get(5).unwrap();
        let log = log.blocking_lock();
        assert_eq!(log.records.len(), 3);
        assert_eq!(log.records[2], record(5, 2));
        assert_eq!(std::fs::read(&path).unwrap(), full, "the torn tail was cut back");
        assert_eq!(again.ids(), vec![5]);
        // Under another master key nothing opens.
        let other = StackLogs::open(dir.path().join("stacks"), Arc::new(MasterKey::from_bytes([4; 32]))).unwrap();
        let damaged = other.get(5).unwrap();
        let damaged = damaged.blocking_lock();
        assert!(damaged.records.is_empty() && damaged.closed);
        assert_eq!(std::fs::read(&path).unwrap(), full, "a damaged log is kept as it is");
    }
}
