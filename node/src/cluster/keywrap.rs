//! Collection keys travel between storage nodes wrapped with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM) to the receiving node's attested X25519
//! key. The `info` binds the collection id and the recipient's peer id, so a wrapped key cannot be
//! replayed to another node or passed off as another collection's.

use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

use crate::crypto::MasterKey;
use crate::error::{Error, ErrorKind, Result};
use crate::identity::{HpkePrivateKey, HpkePublicKey};

/// X25519 encapsulated key length.
const ENC_LEN: usize = 32;

fn info(cid: &str, recipient: &str) -> Vec<u8> {
    format!("prag-collection-key-v1\n{cid}\n{recipient}").into_bytes()
}

/// `enc ‖ ciphertext` of the collection key, for `recipient` (its peer id) only.
pub(crate) fn wrap(key: &MasterKey, cid: &str, recipient: &str, to: &HpkePublicKey) -> Result<Vec<u8>> {
    seal_to(to, &info(cid, recipient), key.secret_bytes())
}

/// Opens what [`wrap`] made for this node (`me`: its peer id).
pub(crate) fn unwrap(wrapped: &[u8], cid: &str, me: &str, sk: &HpkePrivateKey) -> Result<MasterKey> {
    let plain = open_with(sk, &info(cid, me), wrapped)?;
    let bytes: [u8; 32] =
        plain[..].try_into().map_err(|_| Error::new(ErrorKind::BadRequest, "a collection key is 32 bytes"))?;
    Ok(MasterKey::from_bytes(bytes))
}

/// `enc ‖ ciphertext` of `plain` for the holder of `to`, bound to `info`.
pub(crate) fn seal_to(to: &HpkePublicKey, info: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mut rng = rand_core_09::UnwrapErr(rand_core_09::OsRng);
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        to,
        info,
        plain,
        b"",
        &mut rng,
    )
    .map_err(|e| Error::internal("cannot seal to a peer (HPKE)", std::io::Error::other(e.to_string())))?;
    let mut out = enc.to_bytes().to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal_to`] made for this node's key `sk` under the same `info`.
pub(crate) fn open_with(sk: &HpkePrivateKey, info: &[u8], sealed: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let refuse = |reason: String| Error::new(ErrorKind::BadRequest, reason);
    if sealed.len() < ENC_LEN {
        return Err(refuse("sealed message is truncated".into()));
    }
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&sealed[..ENC_LEN])
        .map_err(|e| refuse(format!("sealed message: {e}")))?;
    Ok(zeroize::Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            sk,
            &enc,
            info,
            &sealed[ENC_LEN..],
            b"",
        )
        .map_err(|_| refuse("the sealed message does not open with this node's key".into()))?,
    ))
}

/// What a stack log sealed to an attester is bound to.
pub(crate) fn stack_log_info(stack: u64, recipient: &str) -> Vec<u8> {
    format!("prag-stack-log-v1\n{stack}\n{recipient}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::StorageIdentity;
    use hpke::Deserializable;

    #[test]
    fn only_the_named_recipient_opens_it() {
        let a = StorageIdentity::derive(&MasterKey::from_bytes([1; 32])).expect("a");
        let b = StorageIdentity::derive(&MasterKey::from_bytes([2; 32])).expect("b");
        let a_pub = HpkePublicKey::from_bytes(&hex::decode(a.hpke_public_hex()).expect("hex")).expect("pk");
        let key = MasterKey::from_bytes([7; 32]);
        let w = wrap(&key, "c1", "peerA", &a_pub).expect("wrap");
        assert!(!w.windows(32).any(|x| x == [7u8; 32]), "key bytes in the clear");
        let k = unwrap(&w, "c1", "peerA", a.hpke_private()).expect("unwrap");
        assert_eq!(k.secret_bytes(), key.secret_bytes());
        assert!(unwrap(&w, "c1", "peerA", b.hpke_private()).is_err(), "another node's key");
        assert!(unwrap(&w, "c2", "peerA", a.hpke_private()).is_err(), "another collection");
        assert!(unwrap(&w, "c1", "peerB", a.hpke_private()).is_err(), "another recipient id");
        let mut t = w.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(unwrap(&t, "c1", "peerA", a.hpke_private()).is_err(), "tampered");
        assert!(unwrap(&w[..10], "c1", "peerA", a.hpke_private()).is_err(), "truncated");
    }
}
