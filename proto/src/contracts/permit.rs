//! SNIP-24 query permits: how admin-only queries are authorised without a transaction.
//!
//! The signed bytes are the canonical JSON (keys sorted, no spaces) of the amino sign doc
//! `{"account_number":"0","chain_id":…,"fee":{"amount":[{"amount":"0","denom":"uscrt"}],"gas":"1"},
//! "memo":"","msgs":[{"type":"query_permit","value":{"allowed_tokens":[…],"permissions":[…],
//! "permit_name":…}}],"sequence":"0"}`; the signature is ECDSA secp256k1 over SHA-256 of them.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use k256::ecdsa::signature::Verifier;
use k256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ContractError;

pub const PUBKEY_TYPE: &str = "tendermint/PubKeySecp256k1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permit {
    pub params: PermitParams,
    pub signature: PermitSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitParams {
    pub permit_name: String,
    pub allowed_tokens: Vec<String>,
    pub chain_id: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitSignature {
    pub pub_key: PubKey,
    /// Base64 of the 64-byte r ‖ s signature.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubKey {
    #[serde(rename = "type")]
    pub kind: String,
    /// Base64 of the 33-byte compressed public key.
    pub value: String,
}

/// Permits revoked by their signers: address → permit names.
pub type RevokedPermits = BTreeMap<String, BTreeSet<String>>;

/// Serialises JSON with object keys sorted and no whitespace (the Cosmos "canonical" form).
/// Written by hand because `serde_json::Map` may preserve insertion order in this build.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The bytes a permit's signature covers.
pub fn sign_bytes(params: &PermitParams) -> Vec<u8> {
    let doc = json!({
        "account_number": "0",
        "chain_id": params.chain_id,
        "fee": {"amount": [{"amount": "0", "denom": "uscrt"}], "gas": "1"},
        "memo": "",
        "msgs": [{
            "type": "query_permit",
            "value": {
                "allowed_tokens": params.allowed_tokens,
                "permissions": params.permissions,
                "permit_name": params.permit_name,
            }
        }],
        "sequence": "0",
    });
    canonical_json(&doc).into_bytes()
}

/// Signs a permit (for clients and tests).
pub fn sign(key: &k256::ecdsa::SigningKey, params: PermitParams) -> Permit {
    use k256::ecdsa::signature::Signer;
    let sig: Signature = key.sign(&sign_bytes(&params));
    let pubkey = VerifyingKey::from(key).to_encoded_point(true);
    let b64 = base64::engine::general_purpose::STANDARD;
    Permit {
        params,
        signature: PermitSignature {
            pub_key: PubKey { kind: PUBKEY_TYPE.into(), value: b64.encode(pubkey.as_bytes()) },
            signature: b64.encode(sig.to_bytes()),
        },
    }
}

/// Verifies `permit` for this contract and returns the signer's address. The caller then checks
/// that the address is the one its query requires.
pub fn verify(permit: &Permit, contract_address: &str, revoked: &RevokedPermits) -> Result<String, ContractError> {
    let bad = |reason: &str| ContractError::InvalidPermit { reason: reason.into() };
    let sig = &permit.signature;
    if sig.pub_key.kind != PUBKEY_TYPE {
        return Err(bad("pub_key.type must be tendermint/PubKeySecp256k1"));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key_bytes = b64.decode(&sig.pub_key.value).map_err(|_| bad("pub_key.value is not base64"))?;
    let key = VerifyingKey::from_sec1_bytes(&key_bytes).map_err(|_| bad("pub_key.value is not a secp256k1 key"))?;
    let sig_bytes = b64.decode(&sig.signature).map_err(|_| bad("signature is not base64"))?;
    let signature = Signature::from_slice(&sig_bytes).map_err(|_| bad("signature is not 64 bytes of r ‖ s"))?;
    key.verify(&sign_bytes(&permit.params), &signature).map_err(|_| bad("signature does not verify"))?;
    if !permit.params.allowed_tokens.iter().any(|t| t == contract_address) {
        return Err(bad("allowed_tokens does not include this contract"));
    }
    let address = crate::account::address(&key);
    if revoked.get(&address).is_some_and(|names| names.contains(&permit.params.permit_name)) {
        return Err(bad("the permit was revoked by its signer"));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::testing::key;

    fn params() -> PermitParams {
        PermitParams {
            permit_name: "admin-view".into(),
            allowed_tokens: vec!["secret1contract".into()],
            chain_id: "secret-4".into(),
            permissions: vec!["owner".into()],
        }
    }

    #[test]
    fn canonical_form_is_sorted_and_compact() {
        let p = params();
        let text = String::from_utf8(sign_bytes(&p)).expect("utf8");
        assert_eq!(
            text,
            r#"{"account_number":"0","chain_id":"secret-4","fee":{"amount":[{"amount":"0","denom":"uscrt"}],"gas":"1"},"memo":"","msgs":[{"type":"query_permit","value":{"allowed_tokens":["secret1contract"],"permissions":["owner"],"permit_name":"admin-view"}}],"sequence":"0"}"#
        );
    }

    #[test]
    fn valid_permit_and_every_tamper_fails() {
        let k = key(11);
        let permit = sign(&k, params());
        let none = RevokedPermits::new();
        let addr = verify(&permit, "secret1contract", &none).expect("valid");
        assert_eq!(addr, crate::account::address(&VerifyingKey::from(&k)));

        // JSON round trip in the published shape.
        let text = serde_json::to_string(&permit).expect("json");
        assert!(text.contains(r#""type":"tendermint/PubKeySecp256k1""#));
        assert_eq!(serde_json::from_str::<Permit>(&text).expect("parse"), permit);

        let mut t = permit.clone();
        t.params.permit_name = "other".into();
        assert!(verify(&t, "secret1contract", &none).is_err(), "permit_name");
        let mut t = permit.clone();
        t.params.chain_id = "pulsar-3".into();
        assert!(verify(&t, "secret1contract", &none).is_err(), "chain_id");
        let mut t = permit.clone();
        t.params.permissions.push("balance".into());
        assert!(verify(&t, "secret1contract", &none).is_err(), "permissions");
        let mut t = permit.clone();
        t.params.allowed_tokens = vec!["secret1other".into()];
        assert!(verify(&t, "secret1other", &none).is_err(), "allowed_tokens changed after signing");
        let mut t = permit.clone();
        t.signature.pub_key.value = sign(&key(12), params()).signature.pub_key.value;
        assert!(verify(&t, "secret1contract", &none).is_err(), "pub_key");
        let mut t = permit.clone();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut sig = b64.decode(&t.signature.signature).expect("b64");
        sig[10] ^= 1;
        t.signature.signature = b64.encode(sig);
        assert!(verify(&t, "secret1contract", &none).is_err(), "signature");
        let mut t = permit.clone();
        t.signature.pub_key.kind = "tendermint/PubKeyEd25519".into();
        assert!(verify(&t, "secret1contract", &none).is_err(), "type");

        // Signed for another contract.
        let e = verify(&permit, "secret1elsewhere", &none).expect_err("wrong contract");
        assert!(e.to_string().contains("allowed_tokens"));
        // Revoked.
        let mut revoked = RevokedPermits::new();
        revoked.entry(addr).or_default().insert("admin-view".into());
        assert!(verify(&permit, "secret1contract", &revoked).expect_err("revoked").to_string().contains("revoked"));
    }
}
