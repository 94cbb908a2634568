//! SubscriptionManager: who is a subscriber, and which API keys are valid.
//!
//! Only SHA-256 hashes of API keys are kept. PRAG adds `revoke_permit` (SNIP-24) so an admin can
//! withdraw a permit it signed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::permit::{self, Permit, RevokedPermits};
use super::{ContractError, Env, MAX_FIELD_LEN, QueryAnswer, Sender, check_address, check_field, parse_key_field};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteMsg {
    RegisterSubscriber {
        public_key: String,
    },
    RemoveSubscriber {
        public_key: String,
    },
    /// The published contract takes `public_key`; some versions take `public_address`. Exactly one.
    SetAdmin {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_address: Option<String>,
    },
    /// The published shape carries the key; the ledger logs only its SHA-256 (`api_key_sha256`,
    /// see `prag_proto::ledger::normalize_msg`), so a log never holds a plaintext key.
    AddApiKey {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_sha256: Option<String>,
    },
    RevokeApiKey {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_sha256: Option<String>,
    },
    /// SNIP-24: the sender revokes a permit it signed.
    RevokePermit {
        permit_name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryMsg {
    SubscriberStatus { public_key: String },
    ApiKeysWithPermit { permit: Permit },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Address of the admin that added it.
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberStatusResponse {
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashedKey {
    pub hashed_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysResponse {
    pub api_keys: Vec<HashedKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// The admin's address.
    pub admin: String,
    /// Hex of compressed public key → subscriber.
    pub subscribers: BTreeMap<String, Subscriber>,
    /// SHA-256 hex of the API key → info. The plaintext key is never stored.
    pub api_keys: BTreeMap<String, ApiKeyInfo>,
    pub revoked_permits: RevokedPermits,
}

/// SHA-256 hex of an API key: the only form in which keys are stored.
pub fn hash_api_key(api_key: &str) -> String {
    hex::encode(Sha256::digest(api_key.as_bytes()))
}

/// The stored hash of an API key given in either form.
fn key_hash(api_key: Option<String>, api_key_sha256: Option<String>) -> Result<String, ContractError> {
    match (api_key, api_key_sha256) {
        (Some(k), None) => {
            check_field("api_key", &k, MAX_FIELD_LEN)?;
            Ok(hash_api_key(&k))
        }
        (None, Some(h)) => {
            let h = h.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ContractError::invalid("api_key_sha256", "expected 64 hex characters"));
            }
            Ok(h)
        }
        _ => Err(ContractError::invalid("api_key", "give exactly one of api_key and api_key_sha256")),
    }
}

fn canonical_key(field: &str, text: &str) -> Result<String, ContractError> {
    Ok(crate::account::public_key_hex(&parse_key_field(field, text)?))
}

impl State {
    pub fn new(admin_address: String) -> Self {
        State { admin: admin_address, ..State::default() }
    }

    fn require_admin(&self, sender: &Sender, what: &str) -> Result<(), ContractError> {
        super::require_admin(&self.admin, sender, what)
    }

    /// Whether `public_key` (hex or base64) is an active subscriber.
    pub fn is_active(&self, public_key: &str) -> bool {
        canonical_key("public_key", public_key)
            .ok()
            .and_then(|k| self.subscribers.get(&k))
            .is_some_and(|s| s.status == Status::Active)
    }

    /// Whether an API key's hash is stored.
    pub fn api_key_valid(&self, api_key: &str) -> bool {
        self.api_keys.contains_key(&hash_api_key(api_key))
    }

    pub fn execute(&mut self, env: &Env, sender: &Sender, msg: ExecuteMsg) -> Result<(), ContractError> {
        match msg {
            ExecuteMsg::RegisterSubscriber { public_key } => {
                self.require_admin(sender, "register subscribers")?;
                let k = canonical_key("public_key", &public_key)?;
                self.subscribers.insert(k, Subscriber { status: Status::Active });
            }
            ExecuteMsg::RemoveSubscriber { public_key } => {
                self.require_admin(sender, "remove subscribers")?;
                let k = canonical_key("public_key", &public_key)?;
                if self.subscribers.remove(&k).is_none() {
                    return Err(ContractError::not_found(format!("subscriber {k}")));
                }
            }
            ExecuteMsg::SetAdmin { public_key, public_address } => {
                self.require_admin(sender, "change the admin")?;
                let address = match (public_key, public_address) {
                    (Some(k), None) => crate::account::address(&parse_key_field("public_key", &k)?),
                    (None, Some(a)) => {
                        check_address("public_address", &a)?;
                        a
                    }
                    _ => {
                        return Err(ContractError::invalid(
                            "set_admin",
                            "give exactly one of public_key and public_address",
                        ));
                    }
                };
                self.admin = address;
            }
            ExecuteMsg::AddApiKey { api_key, api_key_sha256 } => {
                self.require_admin(sender, "add API keys")?;
                let h = key_hash(api_key, api_key_sha256)?;
                if self.api_keys.contains_key(&h) {
                    return Err(ContractError::AlreadyExists { what: "API key".into() });
                }
                self.api_keys.insert(h, ApiKeyInfo { identity: sender.address(), name: None, created: Some(env.time) });
            }
            ExecuteMsg::RevokeApiKey { api_key, api_key_sha256 } => {
                self.require_admin(sender, "revoke API keys")?;
                if self.api_keys.remove(&key_hash(api_key, api_key_sha256)?).is_none() {
                    return Err(ContractError::not_found("API key"));
                }
            }
            ExecuteMsg::RevokePermit { permit_name } => {
                check_field("permit_name", &permit_name, MAX_FIELD_LEN)?;
                self.revoked_permits.entry(sender.address()).or_default().insert(permit_name);
            }
        }
        Ok(())
    }

    pub fn query(&self, env: &Env, msg: &QueryMsg) -> Result<QueryAnswer, ContractError> {
        let answer = match msg {
            QueryMsg::SubscriberStatus { public_key } => {
                canonical_key("public_key", public_key)?;
                serde_json::to_value(SubscriberStatusResponse { active: self.is_active(public_key) })
            }
            QueryMsg::ApiKeysWithPermit { permit } => {
                let signer = permit::verify(permit, &env.contract_address, &self.revoked_permits)?;
                if signer != self.admin {
                    return Err(ContractError::unauthorized("only a permit signed by the admin may list API keys"));
                }
                let api_keys = self.api_keys.keys().map(|h| HashedKey { hashed_key: h.clone() }).collect();
                serde_json::to_value(ApiKeysResponse { api_keys })
            }
        };
        answer.map_err(|e| ContractError::Rule(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::permit::{PermitParams, sign};
    use crate::contracts::testing::{env, key, sender};

    fn pk(seed: u8) -> String {
        sender(seed).public_key_hex()
    }

    #[test]
    fn json_shapes_match_the_published_contract() {
        let cases = [
            (
                r#"{"register_subscriber":{"public_key":"02aa"}}"#,
                ExecuteMsg::RegisterSubscriber { public_key: "02aa".into() },
            ),
            (
                r#"{"remove_subscriber":{"public_key":"02aa"}}"#,
                ExecuteMsg::RemoveSubscriber { public_key: "02aa".into() },
            ),
            (
                r#"{"set_admin":{"public_key":"02aa"}}"#,
                ExecuteMsg::SetAdmin { public_key: Some("02aa".into()), public_address: None },
            ),
            (
                r#"{"set_admin":{"public_address":"secret1x"}}"#,
                ExecuteMsg::SetAdmin { public_key: None, public_address: Some("secret1x".into()) },
            ),
            (
                r#"{"add_api_key":{"api_key":"sk-1"}}"#,
                ExecuteMsg::AddApiKey { api_key: Some("sk-1".into()), api_key_sha256: None },
            ),
            (
                r#"{"revoke_api_key":{"api_key":"sk-1"}}"#,
                ExecuteMsg::RevokeApiKey { api_key: Some("sk-1".into()), api_key_sha256: None },
            ),
        ];
        for (text, msg) in cases {
            assert_eq!(serde_json::from_str::<ExecuteMsg>(text).expect(text), msg);
            assert_eq!(serde_json::to_string(&msg).expect("ser"), text);
        }
        let q: QueryMsg = serde_json::from_str(r#"{"subscriber_status":{"public_key":"02aa"}}"#).expect("q");
        assert_eq!(q, QueryMsg::SubscriberStatus { public_key: "02aa".into() });
        assert_eq!(serde_json::to_string(&SubscriberStatusResponse { active: true }).expect("s"), r#"{"active":true}"#);
        assert_eq!(
            serde_json::to_string(&ApiKeysResponse { api_keys: vec![HashedKey { hashed_key: "ab".into() }] })
                .expect("s"),
            r#"{"api_keys":[{"hashed_key":"ab"}]}"#
        );
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"register_subscriber":{"public_key":5}}"#).is_err());
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"mint":{}}"#).is_err());
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"register_subscriber":{"public_key":"a","x":1}}"#).is_err());
    }

    #[test]
    fn admin_rules_and_subscriber_lifecycle() {
        let admin = sender(1);
        let stranger = sender(2);
        let mut s = State::new(admin.address());
        let e = env(100);
        let reg = ExecuteMsg::RegisterSubscriber { public_key: pk(7) };
        let before = s.clone();
        assert!(matches!(s.execute(&e, &stranger, reg.clone()), Err(ContractError::Unauthorized { .. })));
        assert_eq!(s, before, "a refusal changes nothing");
        s.execute(&e, &admin, reg).expect("register");
        assert!(s.is_active(&pk(7)));
        assert!(matches!(
            s.execute(&e, &admin, ExecuteMsg::RegisterSubscriber { public_key: "zz".into() }),
            Err(ContractError::InvalidField { .. })
        ));
        assert!(matches!(
            s.execute(&e, &stranger, ExecuteMsg::RemoveSubscriber { public_key: pk(7) }),
            Err(ContractError::Unauthorized { .. })
        ));
        s.execute(&e, &admin, ExecuteMsg::RemoveSubscriber { public_key: pk(7) }).expect("remove");
        assert!(!s.is_active(&pk(7)));
        let ans = s.query(&e, &QueryMsg::SubscriberStatus { public_key: pk(7) }).expect("q");
        assert_eq!(ans, serde_json::json!({"active": false}));
        assert!(matches!(
            s.execute(&e, &admin, ExecuteMsg::RemoveSubscriber { public_key: pk(7) }),
            Err(ContractError::NotFound { .. })
        ));

        // Admin hand-over, by key and by address; the old admin loses its rights.
        let next = sender(3);
        s.execute(&e, &admin, ExecuteMsg::SetAdmin { public_key: Some(next.public_key_hex()), public_address: None })
            .expect("set");
        assert_eq!(s.admin, next.address());
        assert!(s.execute(&e, &admin, ExecuteMsg::RegisterSubscriber { public_key: pk(8) }).is_err());
        s.execute(&e, &next, ExecuteMsg::SetAdmin { public_key: None, public_address: Some(admin.address()) })
            .expect("set back");
        assert_eq!(s.admin, admin.address());
        assert!(
            s.execute(&e, &admin, ExecuteMsg::SetAdmin { public_key: None, public_address: Some("cosmos1xyz".into()) })
                .is_err()
        );
        assert!(s.execute(&e, &admin, ExecuteMsg::SetAdmin { public_key: None, public_address: None }).is_err());
    }

    #[test]
    fn api_keys_are_stored_hashed_and_listed_only_with_an_admin_permit() {
        let admin_key = key(1);
        let admin = sender(1);
        let mut s = State::new(admin.address());
        let e = env(100);
        let plaintext = "sk-3f9a1c0b7e55d2b4a8c6e1f09d7b3a2c5e8f1a4b7c0d3e6f9a2b5c8d1e4f7a0b3c6d9e2f";
        assert!(
            s.execute(&e, &sender(2), ExecuteMsg::AddApiKey { api_key: Some(plaintext.into()), api_key_sha256: None })
                .is_err()
        );
        s.execute(&e, &admin, ExecuteMsg::AddApiKey { api_key: Some(plaintext.into()), api_key_sha256: None })
            .expect("add");
        assert!(s.api_key_valid(plaintext));
        assert!(!serde_json::to_string(&s).expect("json").contains(plaintext), "plaintext key stored");
        assert!(matches!(
            s.execute(&e, &admin, ExecuteMsg::AddApiKey { api_key: Some(plaintext.into()), api_key_sha256: None }),
            Err(ContractError::AlreadyExists { .. })
        ));

        let params = PermitParams {
            permit_name: "keys".into(),
            allowed_tokens: vec![e.contract_address.clone()],
            chain_id: e.chain_id.clone(),
            permissions: vec!["owner".into()],
        };
        let ans = s.query(&e, &QueryMsg::ApiKeysWithPermit { permit: sign(&admin_key, params.clone()) }).expect("list");
        assert_eq!(ans, serde_json::json!({"api_keys": [{"hashed_key": hash_api_key(plaintext)}]}));
        let e2 =
            s.query(&e, &QueryMsg::ApiKeysWithPermit { permit: sign(&key(2), params.clone()) }).expect_err("stranger");
        assert!(matches!(e2, ContractError::Unauthorized { .. }));
        // The admin revokes its permit: no longer accepted.
        s.execute(&e, &admin, ExecuteMsg::RevokePermit { permit_name: "keys".into() }).expect("revoke permit");
        assert!(s.query(&e, &QueryMsg::ApiKeysWithPermit { permit: sign(&admin_key, params) }).is_err());

        s.execute(
            &e,
            &admin,
            ExecuteMsg::RevokeApiKey { api_key: None, api_key_sha256: Some(hash_api_key(plaintext)) },
        )
        .expect("revoke");
        assert!(!s.api_key_valid(plaintext));
        assert!(matches!(
            s.execute(
                &e,
                &admin,
                ExecuteMsg::RevokeApiKey { api_key: None, api_key_sha256: Some(hash_api_key(plaintext)) }
            ),
            Err(ContractError::NotFound { .. })
        ));
        let huge = "k".repeat(MAX_FIELD_LEN + 1);
        assert!(matches!(
            s.execute(&e, &admin, ExecuteMsg::AddApiKey { api_key: Some(huge), api_key_sha256: None }),
            Err(ContractError::InvalidField { .. })
        ));
    }
}
