//! The contracts every PRAG node enforces, as pure state machines.
//!
//! Each contract is a function of (state, environment, sender, message) → (new state, response),
//! with no I/O, no clock and no randomness of its own: time and randomness come in with the
//! transaction in [`Env`], so replaying a log gives the same state on every node. Message and
//! query types serialize exactly as the published CosmWasm contracts do (externally tagged enums,
//! snake_case), so messages produced by Secret tooling parse here.
//!
//! Where PRAG deliberately differs from the published contracts (see `shared/spec/contracts.md`),
//! the difference is stated on the message.

pub mod bank;
pub mod market;
pub mod permit;
pub mod rewards;
pub mod subscription;
pub mod worker;

use k256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};

/// What the ordering node supplies with each transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Env {
    /// Unix seconds at which the transaction was ordered.
    pub time: u64,
    /// Fresh randomness chosen by the ordering node (recorded in the log for replay), hex.
    #[serde(with = "hex_array")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub random: [u8; 32],
    /// This contract's address, checked against permits' `allowed_tokens`.
    pub contract_address: String,
    pub chain_id: String,
    /// SHA-256 (hex) of the next entry's `random`: the orderer commits to each entry's
    /// randomness one entry ahead, so it cannot choose it after seeing the transaction it goes
    /// with (entries from before this field have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_random_sha256: Option<String>,
}

/// The verified signer of a transaction or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub public_key: VerifyingKey,
}

impl Sender {
    pub fn new(public_key: VerifyingKey) -> Self {
        Sender { public_key }
    }

    pub fn address(&self) -> String {
        crate::account::address(&self.public_key)
    }

    pub fn public_key_hex(&self) -> String {
        crate::account::public_key_hex(&self.public_key)
    }
}

/// Why a message was refused: each variant names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContractError {
    #[error("unauthorized: {rule}")]
    Unauthorized { rule: String },
    #[error("invalid {field}: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("expired: {what}")]
    Expired { what: String },
    #[error("replayed: {what}")]
    Replayed { what: String },
    #[error("signature check failed: {what}")]
    BadSignature { what: String },
    #[error("invalid permit: {reason}")]
    InvalidPermit { reason: String },
    #[error("insufficient funds: {account} has {have}, needs {need}")]
    InsufficientFunds { account: String, have: String, need: String },
    /// A refusal of the compute market, under Atoma's error name and abort code (PRAG's own
    /// additions use codes from 312012300 up).
    #[error("{name} ({code}): {detail}")]
    Market { code: u64, name: String, detail: String },
    #[error("{0}")]
    Rule(String),
}

impl ContractError {
    pub fn unauthorized(rule: impl Into<String>) -> Self {
        ContractError::Unauthorized { rule: rule.into() }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ContractError::InvalidField { field: field.into(), reason: reason.into() }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ContractError::NotFound { what: what.into() }
    }
}

/// Refuses `sender` unless it is `admin`; `what` completes "only the admin may …".
pub fn require_admin(admin: &str, sender: &Sender, what: &str) -> Result<(), ContractError> {
    if sender.address() == admin {
        Ok(())
    } else {
        Err(ContractError::unauthorized(format!("only the admin may {what}")))
    }
}

/// Longest string accepted in any message field.
pub const MAX_FIELD_LEN: usize = 4096;
/// Longest attestation report (hex or base64 of a quote plus collateral).
pub const MAX_REPORT_LEN: usize = 256 * 1024;

/// Checks a string field: non-empty, not oversize, no control characters.
pub fn check_field(field: &str, value: &str, max: usize) -> Result<(), ContractError> {
    if value.is_empty() {
        return Err(ContractError::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ContractError::invalid(field, format!("longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(ContractError::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Checks a `secret1…` address.
pub fn check_address(field: &str, value: &str) -> Result<(), ContractError> {
    match bech32::decode(value) {
        Ok((hrp, data)) if hrp.as_str() == crate::account::ADDRESS_PREFIX && data.len() == 20 => Ok(()),
        _ => Err(ContractError::invalid(field, "not a secret1… account address")),
    }
}

/// Parses a public key field (hex or base64 of a compressed secp256k1 key).
pub fn parse_key_field(field: &str, value: &str) -> Result<VerifyingKey, ContractError> {
    crate::account::parse_public_key(value).map_err(|e| ContractError::invalid(field, e.to_string()))
}

/// The JSON answer of a query.
pub type QueryAnswer = serde_json::Value;

pub(crate) mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

/// Test helpers shared by the contract modules.
#[cfg(test)]
pub(crate) mod testing {
    use k256::ecdsa::{SigningKey, VerifyingKey};

    use super::{Env, Sender};

    pub fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("key")
    }

    pub fn sender(seed: u8) -> Sender {
        Sender::new(VerifyingKey::from(&key(seed)))
    }

    pub fn env(time: u64) -> Env {
        Env {
            time,
            random: [time as u8; 32],
            contract_address: "secret1contract".into(),
            chain_id: "prag-test".into(),
            next_random_sha256: None,
        }
    }
}
