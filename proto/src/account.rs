//! Secret Network account identities: secp256k1 keys and their `secret1…` addresses.

use k256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};

/// The bech32 human-readable prefix of Secret Network account addresses.
pub const ADDRESS_PREFIX: &str = "secret";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccountError {
    #[error("public key is not valid hex or base64 of a 33-byte compressed secp256k1 key")]
    BadEncoding,
    #[error("public key is not a point on secp256k1")]
    NotOnCurve,
}

/// `bech32("secret", RIPEMD160(SHA256(compressed_pubkey)))`.
pub fn address(key: &VerifyingKey) -> String {
    let compressed = key.to_encoded_point(true);
    let sha = Sha256::digest(compressed.as_bytes());
    let rip = <ripemd::Ripemd160 as ripemd::Digest>::digest(sha);
    let hrp = bech32::Hrp::parse_unchecked(ADDRESS_PREFIX);
    // Encoding 20 bytes under a valid prefix cannot fail.
    bech32::encode::<bech32::Bech32>(hrp, &rip).unwrap_or_default()
}

/// Hex of the 33-byte compressed public key (the form PRAG prints and sends).
pub fn public_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.to_encoded_point(true).as_bytes())
}

/// The canonical spelling (lower-case hex, compressed) of a public key given in any accepted form.
pub fn canonical_public_key(text: &str) -> Result<String, AccountError> {
    parse_public_key(text).map(|k| public_key_hex(&k))
}

/// Parses a compressed secp256k1 public key given as hex (66 chars) or base64 (44 chars).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, AccountError> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 66 {
        hex::decode(text).map_err(|_| AccountError::BadEncoding)?
    } else {
        base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| AccountError::BadEncoding)?
    };
    // Compressed form only: tag 0x02 or 0x03 and the x coordinate.
    if bytes.len() != 33 || !matches!(bytes[0], 2 | 3) {
        return Err(AccountError::BadEncoding);
    }
    VerifyingKey::from_sec1_bytes(&bytes).map_err(|_| AccountError::NotOnCurve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_of_known_key() {
        // Private key 1: its public key is the secp256k1 generator G.
        let sk = k256::ecdsa::SigningKey::from_slice(&[[0u8; 31].as_slice(), &[1u8]].concat()).expect("key");
        let vk = VerifyingKey::from(&sk);
        assert_eq!(public_key_hex(&vk), "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798");
        // bech32("secret", RIPEMD160(SHA256(G))) — the hash160 of G is 751e76e8199196d454941c45d1b3a323f1433bd6.
        let addr = address(&vk);
        let (hrp, data) = bech32::decode(&addr).expect("bech32");
        assert_eq!(hrp.as_str(), "secret");
        assert_eq!(hex::encode(data), "751e76e8199196d454941c45d1b3a323f1433bd6");
        assert!(addr.starts_with("secret1"));
    }

    #[test]
    fn parses_hex_and_base64() {
        let hex_key = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        let k1 = parse_public_key(hex_key).expect("hex");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex_key).expect("hex"));
        assert_eq!(parse_public_key(&b64).expect("b64"), k1);
        assert_eq!(parse_public_key("zz"), Err(AccountError::BadEncoding));
        let mut bad = hex_key.to_string();
        bad.replace_range(0..2, "05");
        assert!(parse_public_key(&bad).is_err());
    }
}

/// Why a key file's content is not a usable key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error("not a PRAG key file (JSON with type and private_key): {0}")]
    NotKeyFile(String),
    #[error("unsupported key type {0:?}")]
    UnsupportedType(String),
    #[error("private_key is not a valid secp256k1 key")]
    InvalidKey,
}

/// Parses a key file's bytes (`{"type":"secp256k1","private_key":HEX}`); the caller reads the
/// file and checks its permissions.
pub fn parse_key_file(bytes: &[u8]) -> Result<k256::ecdsa::SigningKey, KeyFileError> {
    #[derive(serde::Deserialize, zeroize::ZeroizeOnDrop)]
    struct KeyFile {
        #[serde(rename = "type")]
        #[zeroize(skip)]
        kind: String,
        private_key: String,
    }
    let file: KeyFile = serde_json::from_slice(bytes).map_err(|e| KeyFileError::NotKeyFile(e.to_string()))?;
    if file.kind != "secp256k1" {
        return Err(KeyFileError::UnsupportedType(file.kind.clone()));
    }
    let raw = zeroize::Zeroizing::new(hex::decode(file.private_key.trim()).map_err(|_| KeyFileError::InvalidKey)?);
    k256::ecdsa::SigningKey::from_slice(&raw).map_err(|_| KeyFileError::InvalidKey)
}
