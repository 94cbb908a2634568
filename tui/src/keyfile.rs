//! The operator's account key, read the way `prag` reads key files (0600, JSON).

use std::path::Path;

use k256::ecdsa::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("key file {path} is readable by others (mode {mode:o}); run chmod 600 {path}")]
    Permissions { path: String, mode: u32 },
    #[error("key file {path}: {source}")]
    Parse { path: String, source: prag_proto::account::KeyFileError },
}

pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| KeyError::Read { path: p.clone(), reason: e.to_string() })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: p, mode });
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|e| KeyError::Read { path: p.clone(), reason: e.to_string() })?,
    );
    prag_proto::account::parse_key_file(&bytes).map_err(|source| KeyError::Parse { path: p, source })
}
