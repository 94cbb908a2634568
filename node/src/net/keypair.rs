//! The node's stable libp2p identity: `<data>/p2p.key`.

use std::path::Path;

use libp2p::identity::Keypair;

use crate::crypto::{check_private_file, write_private_file};
use crate::error::{Error, Result};

/// Loads `<data>/p2p.key` or creates it (ed25519, protobuf encoding, mode 0600).
pub fn load_or_create_keypair(data: &Path) -> Result<Keypair> {
    let path = data.join("p2p.key");
    let context = |what: &str| format!("{what} {}", path.display());
    if path.exists() {
        check_private_file(&path)?;
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(&path).map_err(|e| Error::internal(context("cannot read the peer key"), e))?,
        );
        return Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| Error::config(format!("{}: not a libp2p key ({e})", path.display())));
    }
    let key = Keypair::generate_ed25519();
    let bytes = zeroize::Zeroizing::new(
        key.to_protobuf_encoding().map_err(|e| Error::internal("cannot encode the peer key", e))?,
    );
    write_private_file(&path, &bytes).map_err(|e| Error::internal(context("cannot write the peer key"), e))?;
    Ok(key)
}
