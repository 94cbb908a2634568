//! The node's channel key and the card that ties it to the node's attestation; the client's check
//! of both before it sends anything.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, Serializable};
use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey};
use prag_proto::api::NodeAttestation;

use crate::attest::{AttestationReport, Policy, Verified, check_binding};
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::identity::{HpkePrivateKey, HpkePublicKey};

/// Domain of the card the storage key signs.
pub const CARD_DOMAIN: &str = "PRAG-CHANNEL-CARD-V1";

/// The node's channel key pair, derived from its master key (so it survives restarts and sits in
/// no file of its own).
pub struct ChannelKeys {
    private: HpkePrivateKey,
    public: HpkePublicKey,
}

impl std::fmt::Debug for ChannelKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKeys(..)")
    }
}

impl ChannelKeys {
    pub fn derive(master: &MasterKey) -> Self {
        let ikm = master.derive(&KeyContext::new(Purpose::Mac, "", "channel-hpke-key", 0, 1));
        let (private, public) = X25519HkdfSha256::derive_keypair(ikm.expose());
        ChannelKeys { private, public }
    }

    pub fn private(&self) -> &HpkePrivateKey {
        &self.private
    }

    pub fn public(&self) -> &HpkePublicKey {
        &self.public
    }

    pub fn public_hex(&self) -> String {
        hex::encode(self.public.to_bytes())
    }
}

/// What the storage key signs: the node's id and its channel key.
pub fn card_message(node_id: &str, channel_key_hex: &str) -> Vec<u8> {
    format!("{CARD_DOMAIN}\n{node_id}\n{channel_key_hex}").into_bytes()
}

/// The node's attestation answer: `report` must bind `signing`'s public key.
pub fn sign_card(signing: &SigningKey, node_id: &str, keys: &ChannelKeys, report: String) -> NodeAttestation {
    let channel_key = keys.public_hex();
    let sig: Signature = signing.sign(&card_message(node_id, &channel_key));
    NodeAttestation {
        node_id: node_id.to_string(),
        channel_key,
        signing_key: prag_proto::account::public_key_hex(&k256::ecdsa::VerifyingKey::from(signing)),
        signature: hex::encode(sig.to_bytes()),
        report,
    }
}

/// What a client accepts as a node.
#[derive(Debug, Clone, Default)]
pub struct NodeTrust {
    /// TCB status and measurements the node's report must have (the same TOML as `--policy`).
    pub policy: Policy,
    /// Accept development reports (nodes started with `--attestation dev`): they prove nothing.
    pub allow_dev: bool,
}

impl NodeTrust {
    /// Development: also accept `--attestation dev` nodes (tests, demos).
    pub fn development() -> Self {
        NodeTrust { allow_dev: true, ..Default::default() }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("the node's attestation report does not verify: {0}")]
    Report(String),
    #[error(
        "the node runs in attestation development mode (its report proves nothing about its hardware); \
         pass --allow-dev-node to send it data anyway"
    )]
    DevNode,
    #[error("the node's attestation is not allowed by the client's policy: {0}")]
    Policy(String),
    #[error("the node's report does not bind the key that signed its channel card")]
    NotBound,
    #[error("the node's channel card is invalid: {0}")]
    Card(String),
}

/// Checks a node's attestation answer; returns its channel key and what its report says.
/// `now`: unix seconds (certificate and collateral validity).
pub fn verify_node(
    card: &NodeAttestation,
    trust: &NodeTrust,
    now: u64,
) -> Result<(HpkePublicKey, Verified), TrustError> {
    let report = AttestationReport::parse(&card.report).map_err(|e| TrustError::Report(e.to_string()))?;
    if matches!(report, AttestationReport::Dev { .. }) && !trust.allow_dev {
        return Err(TrustError::DevNode);
    }
    let verified = report.verify(now).map_err(|e| TrustError::Report(e.to_string()))?;
    let mut policy = trust.policy.clone();
    policy.allow_dev = trust.allow_dev;
    policy.check(&verified, now, now).map_err(|e| TrustError::Policy(e.to_string()))?;
    let key = prag_proto::account::parse_public_key(&card.signing_key)
        .map_err(|e| TrustError::Card(format!("signing_key: {e}")))?;
    check_binding(&verified, &key).map_err(|_| TrustError::NotBound)?;
    let sig = hex::decode(&card.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| TrustError::Card("the signature is malformed".into()))?;
    key.verify(&card_message(&card.node_id, &card.channel_key), &sig)
        .map_err(|_| TrustError::Card("the signature does not verify with the attested key".into()))?;
    let raw = hex::decode(&card.channel_key).map_err(|_| TrustError::Card("channel_key is not hex".into()))?;
    let public = HpkePublicKey::from_bytes(&raw).map_err(|e| TrustError::Card(format!("channel_key: {e}")))?;
    Ok((public, verified))
}

/// The report this node presents for its channel key: `--self-report`, or a development report
/// in `dev` mode, or one from the TEE (configfs-tsm). None when there is none to be had.
pub(crate) async fn own_report(
    access: &crate::config::AccessConfig,
    identity: &crate::identity::StorageIdentity,
) -> Result<Option<String>, crate::error::Error> {
    use crate::attest::{AttestationMode, binding_for};
    use crate::error::Error;
    let key = k256::ecdsa::VerifyingKey::from(identity.signing_key());
    let dev = access.attestation == AttestationMode::Dev;
    if let Some(path) = &access.self_report {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("--self-report {}: {e}", path.display())))?;
        let report = AttestationReport::parse(&text)
            .map_err(|e| Error::config(format!("--self-report {}: {e}", path.display())))?;
        if matches!(report, AttestationReport::Dev { .. }) && !dev {
            return Err(Error::config(format!(
                "--self-report {} is a development report; only a node in --attestation dev may present one",
                path.display()
            )));
        }
        match report.verify(crate::auth::unix_now()) {
            Ok(v) => check_binding(&v, &key).map_err(|_| {
                Error::config(format!(
                    "--self-report {} does not bind this node's storage key {} (made for another data directory?)",
                    path.display(),
                    identity.signing_key_hex()
                ))
            })?,
            Err(e) => {
                tracing::warn!(error = %e, "this node's own report does not verify here; clients will check it themselves")
            }
        }
        return Ok(Some(text));
    }
    if dev {
        return Ok(Some(AttestationReport::development(&identity.signing_key_hex())));
    }
    let binding = binding_for(&key);
    let root = std::path::Path::new(crate::attest::tsm::TSM_ROOT);
    let mut report = match tokio::task::spawn_blocking(move || crate::attest::tsm::self_report(root, &binding)).await? {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot produce this machine's attestation report");
            return Ok(None);
        }
    };
    if let Some(url) = access.pccs_url.as_deref()
        && let Err(e) = report.add_collateral(url).await
    {
        tracing::warn!(error = %e, "cannot fetch TDX collateral for this node's own report");
    }
    serde_json::to_string(&report).map(Some).map_err(|e| Error::internal("cannot encode this node's report", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::StorageIdentity;

    fn dev_report(identity: &StorageIdentity) -> String {
        AttestationReport::development(&identity.signing_key_hex())
    }

    #[test]
    fn a_dev_card_verifies_only_when_dev_nodes_are_allowed_and_only_as_signed() {
        let master = MasterKey::from_bytes([7; 32]);
        let identity = StorageIdentity::derive(&master).unwrap();
        let keys = ChannelKeys::derive(&master);
        let card = sign_card(identity.signing_key(), "node-a", &keys, dev_report(&identity));
        let dev = NodeTrust { allow_dev: true, ..Default::default() };
        let (public, v) = verify_node(&card, &dev, 0).unwrap();
        assert_eq!(public.to_bytes(), keys.public().to_bytes());
        assert_eq!(v.kind, "dev");
        assert_eq!(verify_node(&card, &NodeTrust::default(), 0).err(), Some(TrustError::DevNode));

        // Another key pair's report, a swapped channel key, a changed node id: refused.
        let other = StorageIdentity::derive(&MasterKey::from_bytes([8; 32])).unwrap();
        let mut c = card.clone();
        c.report = dev_report(&other);
        assert_eq!(verify_node(&c, &dev, 0).err(), Some(TrustError::NotBound));
        let mut c = card.clone();
        c.channel_key = ChannelKeys::derive(&MasterKey::from_bytes([9; 32])).public_hex();
        assert!(matches!(verify_node(&c, &dev, 0), Err(TrustError::Card(_))));
        let mut c = card;
        c.node_id = "node-b".into();
        assert!(matches!(verify_node(&c, &dev, 0), Err(TrustError::Card(_))));
    }
}
