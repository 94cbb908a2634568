//! The node's stable libp2p identity.

use std::path::Path;

use libp2p::identity::Keypair;

use crate::crypto::{check_private_file, write_private_file};

/// Loads `<data>/p2p.key` or creates it (ed25519, protobuf encoding, mode 0600).
pub fn load_or_create_identity(data: &Path) -> Result<Keypair, String> {
    let path = data.join("p2p.key");
    if path.exists() {
        check_private_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        return Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| format!("{}: not a libp2p key: {e}", path.display()));
    }
    let key = Keypair::generate_ed25519();
    let bytes = zeroize::Zeroizing::new(key.to_protobuf_encoding().map_err(|e| e.to_string())?);
    write_private_file(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(key)
}
