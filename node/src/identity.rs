//! A node's identity: the keys its attestation vouches for — its storage key (which signs its
//! channel card for owners and its storage card for peers) and its HPKE key pair.
//!
//! A storage node is registered in WorkerManager with `worker_type = "prag-storage"`,
//! `ip_address` = its libp2p peer id, and `signing_key` = its *storage key* (secp256k1). Its
//! attestation report binds the storage key (the same binding as any worker's). The storage key in
//! turn signs the node's *card*: its peer id and its HPKE (X25519) public key. So a peer that
//! checks registration, attestation, binding and card knows that the X25519 key belongs to the
//! attested machine, and wraps collection keys to it. Both keys are derived from the node's master
//! key, so they never sit in files of their own.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, Serializable};
use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::error::{Error, ErrorKind, Result};

/// The WorkerManager worker type of storage nodes.
pub const STORAGE_WORKER_TYPE: &str = "prag-storage";

pub type HpkePrivateKey = <X25519HkdfSha256 as hpke::Kem>::PrivateKey;
pub type HpkePublicKey = <X25519HkdfSha256 as hpke::Kem>::PublicKey;

/// This node's storage key and HPKE key pair.
pub struct StorageIdentity {
    signing: SigningKey,
    hpke_private: HpkePrivateKey,
    hpke_public: HpkePublicKey,
}

impl std::fmt::Debug for StorageIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageIdentity(..)")
    }
}

/// What a node says about itself: signed by its storage key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageCard {
    pub peer_id: String,
    /// Hex compressed secp256k1 public key: the registered `signing_key`.
    pub signing_key: String,
    /// Hex X25519 public key that collection keys are wrapped to.
    pub hpke_public: String,
    /// Hex signature of [`card_message`] by the storage key.
    pub signature: String,
}

fn card_message(peer_id: &str, hpke_public: &str) -> Vec<u8> {
    format!("prag-storage-card-v1\n{peer_id}\n{hpke_public}").into_bytes()
}

impl StorageIdentity {
    /// Derives the keys from the node's master key.
    pub fn derive(master: &MasterKey) -> Result<Self> {
        let seed = master.derive(&KeyContext::new(Purpose::Mac, "", "storage-signing-key", 0, 1));
        let signing = SigningKey::from_slice(seed.expose())
            .map_err(|e| Error::internal("cannot derive the storage key from the master key", e))?;
        let ikm = master.derive(&KeyContext::new(Purpose::Mac, "", "storage-hpke-key", 0, 1));
        let (hpke_private, hpke_public) = X25519HkdfSha256::derive_keypair(ikm.expose());
        Ok(StorageIdentity { signing, hpke_private, hpke_public })
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn signing_key_hex(&self) -> String {
        prag_proto::account::public_key_hex(&VerifyingKey::from(&self.signing))
    }

    pub fn hpke_private(&self) -> &HpkePrivateKey {
        &self.hpke_private
    }

    pub fn hpke_public_hex(&self) -> String {
        hex::encode(self.hpke_public.to_bytes())
    }

    /// This node's card for `peer_id`.
    pub fn card(&self, peer_id: &str) -> StorageCard {
        let hpke_public = self.hpke_public_hex();
        let sig: Signature = self.signing.sign(&card_message(peer_id, &hpke_public));
        StorageCard {
            peer_id: peer_id.to_string(),
            signing_key: self.signing_key_hex(),
            hpke_public,
            signature: hex::encode(sig.to_bytes()),
        }
    }
}

impl StorageCard {
    /// Checks that the card is `peer`'s, signed by `registered_key` (the storage key the
    /// attestation binds); returns the HPKE public key to wrap collection keys to.
    pub fn verify(&self, peer: &str, registered_key: &str) -> Result<HpkePublicKey> {
        let refuse = |reason: String| Error::new(ErrorKind::NotAdmitted, reason);
        if self.peer_id != peer {
            return Err(refuse(format!("the card names peer {} but came from {peer}", self.peer_id)));
        }
        let key = prag_proto::account::parse_public_key(registered_key)
            .map_err(|e| refuse(format!("registered signing key: {e}")))?;
        if prag_proto::account::public_key_hex(&key) != self.signing_key {
            return Err(refuse("the card's storage key is not the registered one".into()));
        }
        let sig = hex::decode(&self.signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| refuse("the card's signature is malformed".into()))?;
        key.verify(&card_message(&self.peer_id, &self.hpke_public), &sig)
            .map_err(|_| refuse("the card's signature does not verify with the registered storage key".into()))?;
        let raw = hex::decode(&self.hpke_public).map_err(|_| refuse("the card's HPKE key is not hex".into()))?;
        HpkePublicKey::from_bytes(&raw).map_err(|e| refuse(format!("the card's HPKE key is invalid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_verifies_only_for_its_peer_and_key() {
        let a = StorageIdentity::derive(&MasterKey::from_bytes([1; 32])).expect("derive");
        let b = StorageIdentity::derive(&MasterKey::from_bytes([2; 32])).expect("derive");
        let again = StorageIdentity::derive(&MasterKey::from_bytes([1; 32])).expect("derive");
        assert_eq!(a.signing_key_hex(), again.signing_key_hex(), "derived keys are stable");
        assert_eq!(a.hpke_public_hex(), again.hpke_public_hex());
        let card = a.card("peerA");
        assert!(card.verify("peerA", &a.signing_key_hex()).is_ok());
        assert!(card.verify("peerB", &a.signing_key_hex()).is_err(), "another peer's card");
        assert!(card.verify("peerA", &b.signing_key_hex()).is_err(), "not the registered key");
        let mut forged = card.clone();
        forged.hpke_public = b.hpke_public_hex();
        assert!(forged.verify("peerA", &a.signing_key_hex()).is_err(), "swapped HPKE key");
    }
}
