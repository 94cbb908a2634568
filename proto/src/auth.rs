//! The canonical form of a signed HTTP request, shared by every client and every node.
//!
//! A caller signs, with its secp256k1 account key (ECDSA over SHA-256):
//! ```text
//! PRAG-REQUEST-V1\n<METHOD>\n<path and query>\n<hex SHA-256 of body>\n<unix seconds>\n<nonce>
//! ```
//! and sends the public key, timestamp, nonce and signature in the headers below. The node
//! refuses a request whose timestamp is more than [`MAX_SKEW_SECS`] off its clock, or whose
//! (public key, nonce) it has seen within that window.

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub const HEADER_PUBKEY: &str = "x-prag-pubkey";
pub const HEADER_TIMESTAMP: &str = "x-prag-timestamp";
pub const HEADER_NONCE: &str = "x-prag-nonce";
pub const HEADER_SIGNATURE: &str = "x-prag-signature";
/// How far a request's timestamp may be from the node's clock.
pub const MAX_SKEW_SECS: u64 = 60;
const DOMAIN: &str = "PRAG-REQUEST-V1";

/// Why a request's signature was refused. Each names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("request is not signed: header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("request timestamp is {skew} s away from the node's clock (at most {MAX_SKEW_SECS} s allowed)")]
    Stale { skew: u64 },
    #[error("request nonce was already used")]
    Replayed,
    #[error("request signature does not verify for the given public key")]
    BadSignature,
}

/// The signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub pubkey: String,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: String,
}

pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

pub fn canonical_request(method: &str, path_and_query: &str, body: &[u8], timestamp: u64, nonce: &str) -> String {
    format!("{DOMAIN}\n{}\n{path_and_query}\n{}\n{timestamp}\n{nonce}", method.to_ascii_uppercase(), body_hash(body))
}

/// Signs a request. `nonce` should be fresh randomness (16+ bytes, hex).
pub fn sign_request(
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
) -> SignatureHeaders {
    let msg = canonical_request(method, path_and_query, body, timestamp, nonce);
    let sig: Signature = key.sign(msg.as_bytes());
    SignatureHeaders {
        pubkey: crate::account::public_key_hex(&VerifyingKey::from(key)),
        timestamp,
        nonce: nonce.to_string(),
        signature: hex::encode(sig.to_bytes()),
    }
}

/// Checks signature and freshness (not replay: that needs the node's memory of nonces).
/// Returns the caller's public key.
pub fn verify_request(
    h: &SignatureHeaders,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: u64,
) -> Result<VerifyingKey, AuthError> {
    if h.nonce.len() < 16 || h.nonce.len() > 128 || !h.nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AuthError::Malformed(HEADER_NONCE));
    }
    let key = crate::account::parse_public_key(&h.pubkey).map_err(|_| AuthError::Malformed(HEADER_PUBKEY))?;
    let sig_bytes = hex::decode(&h.signature).map_err(|_| AuthError::Malformed(HEADER_SIGNATURE))?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| AuthError::Malformed(HEADER_SIGNATURE))?;
    let skew = now.abs_diff(h.timestamp);
    if skew > MAX_SKEW_SECS {
        return Err(AuthError::Stale { skew });
    }
    let msg = canonical_request(method, path_and_query, body, h.timestamp, &h.nonce);
    key.verify(msg.as_bytes(), &sig).map_err(|_| AuthError::BadSignature)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_slice(&[b; 32]).expect("key")
    }

    #[test]
    fn sign_then_verify_and_each_tamper_fails() {
        let k = key(7);
        let h = sign_request(&k, "post", "/v1/x?y=1", b"{}", 1000, "00112233445566778899aabb");
        let vk = verify_request(&h, "POST", "/v1/x?y=1", b"{}", 1010).expect("valid");
        assert_eq!(vk, VerifyingKey::from(&k));

        assert_eq!(verify_request(&h, "GET", "/v1/x?y=1", b"{}", 1000), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=2", b"{}", 1000), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=1", b"{ }", 1000), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=1", b"{}", 1061), Err(AuthError::Stale { skew: 61 }));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=1", b"{}", 939), Err(AuthError::Stale { skew: 61 }));
        let mut other = h.clone();
        other.pubkey = crate::account::public_key_hex(&VerifyingKey::from(&key(8)));
        assert_eq!(verify_request(&other, "POST", "/v1/x?y=1", b"{}", 1000), Err(AuthError::BadSignature));
        let mut bad = h.clone();
        bad.nonce = "short".into();
        assert_eq!(verify_request(&bad, "POST", "/v1/x?y=1", b"{}", 1000), Err(AuthError::Malformed(HEADER_NONCE)));
        let mut bad = h;
        bad.signature = "zz".into();
        assert_eq!(verify_request(&bad, "POST", "/v1/x?y=1", b"{}", 1000), Err(AuthError::Malformed(HEADER_SIGNATURE)));
    }
}
