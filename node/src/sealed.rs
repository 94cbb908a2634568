//! Answers sealed to a worker's ephemeral key, HPKE-style (base mode, one message):
//!
//! ```text
//! shared = X25519(node ephemeral secret, worker ephemeral public)
//! key    = HKDF-SHA256(salt = node_eph_pub ‖ worker_eph_pub, ikm = shared,
//!                      info = "PRAG-WORKER-ANSWER-V1" ‖ len‖node_id ‖ len‖request_id)   (32 bytes)
//! ct     = AES-256-GCM(key, random 96-bit nonce, plaintext, aad = info)
//! ```
//!
//! Both X25519 keys are fresh per request and dropped after use, so only the holder of the
//! worker's ephemeral secret can open the answer, and a recorded answer stays closed even if a
//! node or worker key leaks later. The node and request ids in `info` and the AAD tie an answer to
//! the request it answers.

use base64::Engine as _;
use prag_proto::api::SealedAnswer;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;
use zeroize::Zeroizing;

pub const PROTOCOL: &[u8] = b"PRAG-WORKER-ANSWER-V1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("ephemeral public key: {0}")]
    BadKey(String),
    #[error("the sealed answer is malformed: {0}")]
    Malformed(String),
    #[error("the sealed answer does not open with this key (wrong key, or altered in transit)")]
    Integrity,
    #[error("the answer is for another request or node")]
    Mismatch,
    #[error("the system random number generator failed")]
    Random,
}

impl From<SealError> for crate::error::Error {
    fn from(e: SealError) -> Self {
        match e {
            SealError::BadKey(_) => crate::error::Error::bad_request(e.to_string()),
            _ => crate::error::Error::internal("cannot seal the answer", e),
        }
    }
}

fn info(node_id: &str, request_id: &str) -> Vec<u8> {
    let mut out = PROTOCOL.to_vec();
    for f in [node_id.as_bytes(), request_id.as_bytes()] {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The AEAD key from the X25519 shared secret.
fn derive_key(shared: &[u8], node_pub: &[u8], worker_pub: &[u8], info: &[u8]) -> Result<LessSafeKey, SealError> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[node_pub, worker_pub].concat());
    let info_parts = [info];
    let prk = salt.extract(shared);
    let okm = prk.expand(&info_parts, Len32).map_err(|_| SealError::Integrity)?;
    let mut key = Zeroizing::new([0u8; 32]);
    okm.fill(&mut key[..]).map_err(|_| SealError::Integrity)?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key[..]).map_err(|_| SealError::Integrity)?;
    Ok(LessSafeKey::new(unbound))
}

fn parse_public(hex_key: &str) -> Result<Vec<u8>, SealError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| SealError::BadKey(format!("not hex: {e}")))?;
    if bytes.len() != 32 {
        return Err(SealError::BadKey(format!("an X25519 public key is 32 bytes, got {}", bytes.len())));
    }
    if bytes.iter().all(|&b| b == 0) {
        return Err(SealError::BadKey("the all-zero key is not a public key".into()));
    }
    Ok(bytes)
}

/// Checks a worker's ephemeral public key before any work is done for it.
pub fn check_public_key(hex_key: &str) -> Result<(), SealError> {
    parse_public(hex_key).map(|_| ())
}

/// Seals `plaintext` to `worker_public` (hex) for request `request_id` of node `node_id`.
pub fn seal(worker_public: &str, node_id: &str, request_id: &str, plaintext: &[u8]) -> Result<SealedAnswer, SealError> {
    let rng = SystemRandom::new();
    let worker_pub = parse_public(worker_public)?;
    let secret = EphemeralPrivateKey::generate(&X25519, &rng).map_err(|_| SealError::Random)?;
    let node_pub = secret.compute_public_key().map_err(|_| SealError::Random)?;
    let node_pub = node_pub.as_ref().to_vec();
    let info = info(node_id, request_id);
    let key = agreement::agree_ephemeral(secret, &UnparsedPublicKey::new(&X25519, &worker_pub), |shared| {
        derive_key(shared, &node_pub, &worker_pub, &info)
    })
    .map_err(|_| SealError::BadKey("X25519 agreement failed (a low-order point?)".into()))??;
    let nonce = crate::crypto::random_bytes::<NONCE_LEN>().map_err(|_| SealError::Random)?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&info), &mut buf)
        .map_err(|_| SealError::Integrity)?;
    Ok(SealedAnswer {
        node_id: node_id.to_string(),
        request_id: request_id.to_string(),
        encapsulated_key: hex::encode(&node_pub),
        nonce: hex::encode(nonce),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(&buf),
    })
}

/// The worker's side of one request: a fresh X25519 key pair whose public half goes in the request.
pub struct EphemeralKey {
    secret: EphemeralPrivateKey,
    public: Vec<u8>,
}

impl EphemeralKey {
    pub fn generate() -> Result<Self, SealError> {
        let secret = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new()).map_err(|_| SealError::Random)?;
        let public = secret.compute_public_key().map_err(|_| SealError::Random)?.as_ref().to_vec();
        Ok(EphemeralKey { secret, public })
    }

    pub fn public_hex(&self) -> String {
        hex::encode(&self.public)
    }

    /// Opens the answer to the request made with this key (consumes it: one key, one answer).
    /// `node_id` and `request_id` are what the request named.
    pub fn open(self, answer: &SealedAnswer, node_id: &str, request_id: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if answer.node_id != node_id || answer.request_id != request_id {
            return Err(SealError::Mismatch);
        }
        let node_pub = parse_public(&answer.encapsulated_key)?;
        let nonce: [u8; NONCE_LEN] = hex::decode(&answer.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| SealError::Malformed("nonce must be 12 bytes of hex".into()))?;
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(answer.ciphertext.as_bytes())
            .map_err(|e| SealError::Malformed(format!("ciphertext is not base64: {e}")))?;
        let info = info(node_id, request_id);
        let worker_pub = self.public.clone();
        let key = agreement::agree_ephemeral(self.secret, &UnparsedPublicKey::new(&X25519, &node_pub), |shared| {
            derive_key(shared, &node_pub, &worker_pub, &info)
        })
        .map_err(|_| SealError::Integrity)??;
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&info), &mut buf)
            .map_err(|_| SealError::Integrity)?;
        let out = Zeroizing::new(plain.to_vec());
        zeroize::Zeroize::zeroize(&mut buf);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ephemeral_key_opens_the_answer() {
        let worker = EphemeralKey::generate().unwrap();
        let sealed = seal(&worker.public_hex(), "node-a", "req-1", b"chunk text").unwrap();
        assert!(!sealed.ciphertext.contains("chunk"));
        let other = EphemeralKey::generate().unwrap();
        assert_eq!(other.open(&sealed, "node-a", "req-1").unwrap_err(), SealError::Integrity);
        let again = EphemeralKey::generate().unwrap();
        let pub_hex = again.public_hex();
        let sealed2 = seal(&pub_hex, "node-a", "req-2", b"chunk text").unwrap();
        assert_eq!(again.open(&sealed2, "node-a", "req-2").unwrap().as_slice(), b"chunk text");
        assert_eq!(worker.open(&sealed, "node-a", "req-1").unwrap().as_slice(), b"chunk text");
    }

    #[test]
    fn tampering_and_misdirection_fail() {
        let mk = || EphemeralKey::generate().unwrap();
        let w = mk();
        let mut sealed = seal(&w.public_hex(), "node-a", "req-1", b"chunk text").unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD.decode(&sealed.ciphertext).unwrap();
        raw[0] ^= 1;
        sealed.ciphertext = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(w.open(&sealed, "node-a", "req-1").unwrap_err(), SealError::Integrity);

        let w = mk();
        let mut sealed = seal(&w.public_hex(), "node-a", "req-1", b"chunk text").unwrap();
        sealed.request_id = "req-9".into();
        assert_eq!(w.open(&sealed, "node-a", "req-9").unwrap_err(), SealError::Integrity, "request id is bound");

        assert!(matches!(seal(&"00".repeat(32), "n", "r", b"x"), Err(SealError::BadKey(_))));
        assert!(matches!(seal("abcd", "n", "r", b"x"), Err(SealError::BadKey(_))));
    }
}
