//! Account key files: a secp256k1 private key, stored as JSON with mode 0600.

use std::path::Path;

use k256::ecdsa::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{check_private_file, write_private_file};
use crate::error::{Error, Result};

#[derive(Serialize, Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    private_key: String,
}

/// Creates a new account key in `path` (refusing to overwrite one).
pub fn create(path: &Path) -> Result<SigningKey> {
    if path.exists() {
        return Err(Error::conflict(format!("{} already exists; refusing to overwrite a key", path.display())));
    }
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    let body = Zeroizing::new(
        serde_json::to_vec_pretty(&KeyFile { kind: "secp256k1".into(), private_key: hex::encode(key.to_bytes()) })
            .map_err(|e| Error::internal("cannot encode the key file", e))?,
    );
    write_private_file(path, &body)
        .map_err(|e| Error::internal(format!("cannot write key file {}", path.display()), e))?;
    Ok(key)
}

/// Loads an account key, refusing files that others can read.
pub fn load(path: &Path) -> Result<SigningKey> {
    check_private_file(path).map_err(|e| Error::config(format!("key file {e}")))?;
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| Error::config(format!("cannot read key file {}: {e}", path.display())))?,
    );
    prag_proto::account::parse_key_file(&bytes).map_err(|e| Error::config(format!("{}: {e}", path.display())))
}

pub fn public_key_hex(key: &SigningKey) -> String {
    prag_proto::account::public_key_hex(&VerifyingKey::from(key))
}

pub fn address(key: &SigningKey) -> String {
    prag_proto::account::address(&VerifyingKey::from(key))
}
