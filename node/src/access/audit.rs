//! The audit log: every refusal of a signed request, every served worker request, every grant
//! change and policy change, newest kept in memory for the API and all appended to
//! `<data>/audit.log`. Only requests whose signature verified are audited, so nobody writes here
//! without a key; and the file is bounded: past [`MAX_FILE_BYTES`] it moves to `audit.log.1`
//! (replacing the one before) and a new one starts.
//!
//! The log says who asked for what and what the node decided, never the request's text. Even so it
//! holds collection names and subscriber keys, which are private, so each line is sealed
//! (AES-256-GCM under a key derived from the master key) and base64-encoded: the file is readable
//! only through the node's API. A line that fails to open (altered, or cut short by a crash) is
//! skipped when the log is read back.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use parking_lot::Mutex;
use prag_proto::api::AuditEntry;

use crate::crypto::{DataKey, KeyContext, MasterKey, Purpose};

/// Entries kept in memory for `GET /v1/audit`.
const KEEP: usize = 2000;
/// Size at which the log moves to `audit.log.1`.
pub(crate) const MAX_FILE_BYTES: u64 = 32 << 20;

pub(crate) struct AuditLog {
    path: PathBuf,
    key: DataKey,
    recent: Mutex<VecDeque<AuditEntry>>,
    /// The open file and its length.
    file: Mutex<Option<(std::fs::File, u64)>>,
    max_file_bytes: u64,
}

fn open_append(path: &Path) -> Option<(std::fs::File, u64)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| tracing::error!(path = %path.display(), error = %e, "cannot open the audit log; entries stay in memory only"))
        .ok()?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Some((file, len))
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

impl AuditLog {
    /// Opens `<data>/audit.log`, reading back its newest entries.
    pub(crate) fn open(master: &MasterKey, data: &Path) -> Self {
        let key = master.derive(&KeyContext::new(Purpose::Audit, "", "audit-log", 0, 1));
        let path = data.join("audit.log");
        let mut recent = VecDeque::new();
        for p in [rotated(&path), path.clone()] {
            let Ok(f) = std::fs::File::open(&p) else { continue };
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                let Ok(sealed) = base64::engine::general_purpose::STANDARD.decode(line.trim()) else { continue };
                let Ok(json) = key.open(&sealed) else { continue };
                if let Ok(e) = serde_json::from_slice::<AuditEntry>(&json) {
                    if recent.len() == KEEP {
                        recent.pop_front();
                    }
                    recent.push_back(e);
                }
            }
        }
        let file = open_append(&path);
        AuditLog { path, key, recent: Mutex::new(recent), file: Mutex::new(file), max_file_bytes: MAX_FILE_BYTES }
    }

    /// [`AuditLog::open`] with another size limit (tests).
    #[cfg(test)]
    pub(crate) fn open_with_limit(master: &MasterKey, data: &Path, max_file_bytes: u64) -> Self {
        AuditLog { max_file_bytes, ..Self::open(master, data) }
    }

    pub(crate) fn record(&self, entry: AuditEntry) {
        if let Ok(json) = serde_json::to_vec(&entry)
            && let Ok(sealed) = self.key.seal(&json)
        {
            let mut line = base64::engine::general_purpose::STANDARD.encode(sealed);
            line.push('\n');
            let mut file = self.file.lock();
            if file.as_ref().is_some_and(|(_, len)| *len + line.len() as u64 > self.max_file_bytes) {
                *file = None;
                if let Err(e) = std::fs::rename(&self.path, rotated(&self.path)) {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the audit log");
                }
                *file = open_append(&self.path);
            }
            if let Some((f, len)) = file.as_mut() {
                match f.write_all(line.as_bytes()) {
                    Ok(()) => *len += line.len() as u64,
                    Err(e) => {
                        tracing::error!(path = %self.path.display(), error = %e, "cannot append to the audit log")
                    }
                }
            }
        }
        let mut recent = self.recent.lock();
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// Newest first, at most `limit`.
    pub(crate) fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        self.recent.lock().iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> AuditEntry {
        AuditEntry {
            time: i as u64,
            event: "refused".into(),
            reason: "no_grant".into(),
            actor: "02ab".into(),
            worker: "10.0.0.1".into(),
            subscriber: String::new(),
            collection: "clinic".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn the_file_is_bounded_and_the_newest_entries_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::from_bytes([4; 32]);
        let log = AuditLog::open_with_limit(&master, tmp.path(), 4096);
        for i in 0..200 {
            log.record(entry(i));
        }
        let size = |n: &str| std::fs::metadata(tmp.path().join(n)).map(|m| m.len()).unwrap_or(0);
        assert!(
            size("audit.log") <= 4096 && size("audit.log.1") <= 4096,
            "{} {}",
            size("audit.log"),
            size("audit.log.1")
        );
        assert!(size("audit.log.1") > 0, "rotated");
        drop(log);
        let again = AuditLog::open(&master, tmp.path());
        let recent = again.recent(1);
        assert_eq!(recent[0].time, 199, "the newest entry is read back");
    }
}
