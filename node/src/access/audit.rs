//! The audit log: every refusal, every served worker request, every grant change and policy change,
//! newest kept in memory for the API and all appended to `<data>/audit.log`.
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

pub struct AuditLog {
    path: PathBuf,
    key: DataKey,
    recent: Mutex<VecDeque<AuditEntry>>,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditLog {
    /// Opens `<data>/audit.log`, reading back its newest entries.
    pub fn open(master: &MasterKey, data: &Path) -> Self {
        let key = master.derive(&KeyContext::new(Purpose::Audit, "", "audit-log", 0, 1));
        let path = data.join("audit.log");
        let mut recent = VecDeque::new();
        if let Ok(f) = std::fs::File::open(&path) {
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
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| tracing::error!(path = %path.display(), error = %e, "cannot open the audit log; entries stay in memory only"))
            .ok();
        if file.is_some() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        AuditLog { path, key, recent: Mutex::new(recent), file: Mutex::new(file) }
    }

    pub fn record(&self, entry: AuditEntry) {
        if let Ok(json) = serde_json::to_vec(&entry)
            && let Ok(sealed) = self.key.seal(&json)
        {
            let mut line = base64::engine::general_purpose::STANDARD.encode(sealed);
            line.push('\n');
            if let Some(f) = self.file.lock().as_mut()
                && let Err(e) = f.write_all(line.as_bytes())
            {
                tracing::error!(path = %self.path.display(), error = %e, "cannot append to the audit log");
            }
        }
        let mut recent = self.recent.lock();
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// Newest first, at most `limit`.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        self.recent.lock().iter().rev().take(limit).cloned().collect()
    }
}
