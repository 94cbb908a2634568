//! The canonical form of a signed request, shared by every client and every node.
//!
//! A caller signs, with its secp256k1 account key (ECDSA over SHA-256):
//! ```text
//! PRAG-REQUEST-V2\n<METHOD>\n<path and query>\n<hex SHA-256 of body>\n<unix seconds>\n<nonce>\n<public key>\n<audience>
//! ```
//! where `<public key>` is the canonical spelling of the signer's key (lower-case hex of the
//! 33-byte compressed point) whatever spelling the request carries, and `<audience>` is the node
//! the request is meant for (its `node_id`; empty for requests any node may take). The public key,
//! timestamp, nonce, body hash, audience and signature travel in the headers below (or, on the
//! owner's channel, in the sealed request head).
//!
//! Because the signed text names the key and the body hash, a node checks the signature **before**
//! it reads the body, and then checks that the body it reads has the signed hash. The node refuses a
//! request whose timestamp is more than [`MAX_SKEW_SECS`] off its clock, and any (canonical public
//! key, nonce) pair it has seen within that window — so a captured request is refused however its
//! key header is re-spelled (upper-case hex, base64, padding).

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub const HEADER_PUBKEY: &str = "x-prag-pubkey";
pub const HEADER_TIMESTAMP: &str = "x-prag-timestamp";
pub const HEADER_NONCE: &str = "x-prag-nonce";
pub const HEADER_SIGNATURE: &str = "x-prag-signature";
/// Hex SHA-256 of the body, covered by the signature; checked against the body once it is read.
pub const HEADER_CONTENT_SHA256: &str = "x-prag-content-sha256";
/// The node the request is meant for (optional on plain requests; the channel always sets it).
pub const HEADER_AUDIENCE: &str = "x-prag-audience";
/// How far a request's timestamp may be from the node's clock.
pub const MAX_SKEW_SECS: u64 = 60;
const DOMAIN: &str = "PRAG-REQUEST-V2";
/// Longest audience accepted (node ids are 32 hex characters).
const MAX_AUDIENCE: usize = 128;

/// Why a request's signature was refused. Each names the failed check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("request is not signed: header {0} is missing")]
    Missing(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("request timestamp is {skew} s away from the node's clock (at most {MAX_SKEW_SECS} s allowed)")]
    Stale { skew: u64 },
    #[error("request was signed before this node last started; sign it again")]
    BeforeStart,
    #[error("request nonce was already used")]
    Replayed,
    #[error("request signature does not verify for the given public key")]
    BadSignature,
    #[error("the body does not have the SHA-256 the request signed")]
    BodyMismatch,
    #[error("the request is addressed to another node")]
    WrongAudience,
    #[error("the node is remembering too many recent requests; try again in a minute")]
    Busy,
}

/// The signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignatureHeaders {
    pub pubkey: String,
    pub timestamp: u64,
    pub nonce: String,
    pub signature: String,
    /// Hex SHA-256 of the body.
    pub content_sha256: String,
    /// The node the request is for; empty: any.
    #[serde(default)]
    pub audience: String,
}

pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The text a request's signature covers. `pubkey_hex` must be the canonical spelling.
pub fn canonical_request(
    method: &str,
    path_and_query: &str,
    body_sha256_hex: &str,
    timestamp: u64,
    nonce: &str,
    pubkey_hex: &str,
    audience: &str,
) -> String {
    format!(
        "{DOMAIN}\n{}\n{path_and_query}\n{body_sha256_hex}\n{timestamp}\n{nonce}\n{pubkey_hex}\n{audience}",
        method.to_ascii_uppercase()
    )
}

/// Signs a request. `nonce` should be fresh randomness (16+ bytes, hex); `audience` the node's
/// id, or empty.
pub fn sign_request(
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
    audience: &str,
) -> SignatureHeaders {
    let pubkey = crate::account::public_key_hex(&VerifyingKey::from(key));
    let content_sha256 = body_hash(body);
    let msg = canonical_request(method, path_and_query, &content_sha256, timestamp, nonce, &pubkey, audience);
    let sig: Signature = key.sign(msg.as_bytes());
    SignatureHeaders {
        pubkey,
        timestamp,
        nonce: nonce.to_string(),
        signature: hex::encode(sig.to_bytes()),
        content_sha256,
        audience: audience.to_string(),
    }
}

/// A request whose signature and freshness checked out (replay is the node's to check: it needs
/// the node's memory of nonces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    pub key: VerifyingKey,
    /// The key's canonical spelling: what replay caches and owner checks compare.
    pub pubkey_hex: String,
    /// The body's signed SHA-256; the body read later must match it ([`check_body`]).
    pub body_sha256: [u8; 32],
}

/// Checks the signature over everything but the body itself (whose hash is signed), and freshness.
/// `node_id`: the node checking; a request naming another audience is refused.
pub fn verify_request(
    h: &SignatureHeaders,
    method: &str,
    path_and_query: &str,
    now: u64,
    node_id: &str,
) -> Result<VerifiedRequest, AuthError> {
    if h.nonce.len() < 16 || h.nonce.len() > 128 || !h.nonce.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AuthError::Malformed(HEADER_NONCE));
    }
    let key = crate::account::parse_public_key(&h.pubkey).map_err(|_| AuthError::Malformed(HEADER_PUBKEY))?;
    let body_sha256: [u8; 32] = hex::decode(&h.content_sha256)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed(HEADER_CONTENT_SHA256))?;
    if h.audience.len() > MAX_AUDIENCE {
        return Err(AuthError::Malformed(HEADER_AUDIENCE));
    }
    let sig_bytes = hex::decode(&h.signature).map_err(|_| AuthError::Malformed(HEADER_SIGNATURE))?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| AuthError::Malformed(HEADER_SIGNATURE))?;
    let skew = now.abs_diff(h.timestamp);
    if skew > MAX_SKEW_SECS {
        return Err(AuthError::Stale { skew });
    }
    let pubkey_hex = crate::account::public_key_hex(&key);
    // The body hash is signed in its canonical (lower-case hex) spelling too.
    let msg = canonical_request(
        method,
        path_and_query,
        &hex::encode(body_sha256),
        h.timestamp,
        &h.nonce,
        &pubkey_hex,
        &h.audience,
    );
    key.verify(msg.as_bytes(), &sig).map_err(|_| AuthError::BadSignature)?;
    if !h.audience.is_empty() && h.audience != node_id {
        return Err(AuthError::WrongAudience);
    }
    Ok(VerifiedRequest { key, pubkey_hex, body_sha256 })
}

/// Checks that `body` is the body the request signed.
pub fn check_body(body_sha256: &[u8; 32], body: &[u8]) -> Result<(), AuthError> {
    let got: [u8; 32] = Sha256::digest(body).into();
    // Not secret: a plain comparison is fine.
    if &got == body_sha256 { Ok(()) } else { Err(AuthError::BodyMismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_slice(&[b; 32]).expect("key")
    }

    const NODE: &str = "node-a";

    #[test]
    fn sign_then_verify_and_each_tamper_fails() {
        let k = key(7);
        let h = sign_request(&k, "post", "/v1/x?y=1", b"{}", 1000, "00112233445566778899aabb", "");
        let v = verify_request(&h, "POST", "/v1/x?y=1", 1010, NODE).expect("valid");
        assert_eq!(v.key, VerifyingKey::from(&k));
        assert!(check_body(&v.body_sha256, b"{}").is_ok());
        assert_eq!(check_body(&v.body_sha256, b"{ }"), Err(AuthError::BodyMismatch));

        assert_eq!(verify_request(&h, "GET", "/v1/x?y=1", 1000, NODE), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=2", 1000, NODE), Err(AuthError::BadSignature));
        let mut other_body = h.clone();
        other_body.content_sha256 = body_hash(b"{ }");
        assert_eq!(verify_request(&other_body, "POST", "/v1/x?y=1", 1000, NODE), Err(AuthError::BadSignature));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=1", 1061, NODE), Err(AuthError::Stale { skew: 61 }));
        assert_eq!(verify_request(&h, "POST", "/v1/x?y=1", 939, NODE), Err(AuthError::Stale { skew: 61 }));
        let mut other = h.clone();
        other.pubkey = crate::account::public_key_hex(&VerifyingKey::from(&key(8)));
        assert_eq!(verify_request(&other, "POST", "/v1/x?y=1", 1000, NODE), Err(AuthError::BadSignature));
        let mut bad = h.clone();
        bad.nonce = "short".into();
        assert_eq!(verify_request(&bad, "POST", "/v1/x?y=1", 1000, NODE), Err(AuthError::Malformed(HEADER_NONCE)));
        let mut bad = h.clone();
        bad.signature = "zz".into();
        assert_eq!(verify_request(&bad, "POST", "/v1/x?y=1", 1000, NODE), Err(AuthError::Malformed(HEADER_SIGNATURE)));
        let mut bad = h;
        bad.content_sha256 = "00".into();
        assert_eq!(
            verify_request(&bad, "POST", "/v1/x?y=1", 1000, NODE),
            Err(AuthError::Malformed(HEADER_CONTENT_SHA256))
        );
    }

    #[test]
    fn every_spelling_of_the_key_verifies_as_the_same_canonical_key() {
        use base64::Engine as _;
        let k = key(9);
        let h = sign_request(&k, "POST", "/v1/q", b"x", 1000, "abcdefabcdef0123456789", "");
        let raw = hex::decode(&h.pubkey).expect("hex");
        let spellings = [
            h.pubkey.to_uppercase(),
            base64::engine::general_purpose::STANDARD.encode(&raw),
            format!("  {}  ", h.pubkey),
        ];
        let want = verify_request(&h, "POST", "/v1/q", 1000, NODE).expect("valid");
        for s in spellings {
            let mut re = h.clone();
            re.pubkey = s.clone();
            let got = verify_request(&re, "POST", "/v1/q", 1000, NODE).expect(&s);
            assert_eq!(got.pubkey_hex, want.pubkey_hex, "{s}");
        }
    }

    #[test]
    fn the_audience_is_signed_and_checked() {
        let k = key(3);
        let h = sign_request(&k, "POST", "/v1/q", b"", 1000, "abcdefabcdef0123456789", NODE);
        assert!(verify_request(&h, "POST", "/v1/q", 1000, NODE).is_ok());
        assert_eq!(verify_request(&h, "POST", "/v1/q", 1000, "node-b"), Err(AuthError::WrongAudience));
        let mut moved = h;
        moved.audience = "node-b".into();
        assert_eq!(verify_request(&moved, "POST", "/v1/q", 1000, "node-b"), Err(AuthError::BadSignature));
    }
}
