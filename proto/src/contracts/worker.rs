//! WorkerManager: the registry of GPU inference workers (and PRAG storage nodes), their wallets,
//! liveliness and work reports.
//!
//! Where PRAG differs from the published contract:
//! - `register_worker` is admin-only (the published code checks nobody); a worker may name the
//!   key that signs its requests (`signing_key`, a PRAG field);
//! - `get_workers` needs a *fresh* signature from an *active* subscriber, bound to a purpose, this
//!   contract, a nonce, a time and the request (the published one is a replayable self-signature);
//! - liveliness challenges are fresh randomness bound to one worker with an expiry, answered by
//!   the worker's signature; work reports are recorded once per report id.
//!
//! `get_liveliness_challenge` keeps the published query shape, but answering it records the
//! challenge, so a node runs it as a transaction ([`State::issue_challenge`]).

use std::collections::{BTreeMap, BTreeSet};

use k256::ecdsa::signature::Verifier;
use k256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ContractError, Env, MAX_REPORT_LEN, QueryAnswer, Sender, check_address, check_field, parse_key_field};

/// Worker type of PRAG storage nodes (they serve retrieval, not a model).
pub const STORAGE_WORKER_TYPE: &str = "prag-storage";
/// How long a liveliness challenge may be answered.
pub const CHALLENGE_TTL_SECS: u64 = 300;
/// How far a `get_workers` signature's time may be from the contract's.
pub const MAX_QUERY_SKEW_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worker {
    pub ip_address: String,
    pub payment_wallet: String,
    pub attestation_report: String,
    pub worker_type: String,
    /// Hex public key that signs this worker's requests and reports (PRAG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// Time of the last accepted liveliness answer (PRAG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// When the worker (and its attestation report) was registered (PRAG): the report's age for
    /// an attestation policy's `max_report_age_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteMsg {
    RegisterWorker {
        ip_address: String,
        payment_wallet: String,
        attestation_report: String,
        worker_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signing_key: Option<String>,
    },
    SetWorkerWallet {
        ip_address: String,
        payment_wallet: String,
    },
    SetWorkerAddress {
        new_ip_address: String,
        old_ip_address: String,
    },
    SetWorkerType {
        ip_address: String,
        worker_type: String,
    },
    RemoveWorker {
        ip_address: String,
    },
    /// Answer to a challenge: `signature` is the worker's hex signature over
    /// [`liveliness_message`]`(ip_address, challenge)`.
    ReportLiveliness {
        ip_address: String,
        challenge: String,
        signature: String,
    },
    ReportWork {
        ip_address: String,
        report_id: String,
        epoch: u64,
        requests: u64,
        input_tokens: u64,
        output_tokens: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryMsg {
    /// `signature`: hex signature by the subscriber over [`get_workers_message`].
    GetWorkers {
        signature: String,
        subscriber_public_key: String,
        nonce: String,
        issued_at: u64,
        audience: String,
    },
    GetModels {},
    #[serde(rename = "get_u_r_ls")]
    GetURLs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    GetLivelinessChallenge {},
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersResponse {
    pub workers: Vec<Worker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelsResponse {
    pub models: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlsResponse {
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge: String,
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkReport {
    pub ip_address: String,
    pub payment_wallet: String,
    pub report_id: String,
    pub epoch: u64,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reported_at: u64,
}

/// Remembers nonces of signed queries (kept by the node, outside contract state).
pub trait ReplayGuard {
    /// Records the nonce; false when it was seen before.
    fn first_use(&mut self, signer: &str, nonce: &str) -> bool;
}

impl ReplayGuard for BTreeSet<(String, String)> {
    fn first_use(&mut self, signer: &str, nonce: &str) -> bool {
        self.insert((signer.to_string(), nonce.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub admin: String,
    /// IP address → worker.
    pub workers: BTreeMap<String, Worker>,
    /// IP address → outstanding challenge.
    pub challenges: BTreeMap<String, Challenge>,
    /// (IP address, report id) → report.
    pub work_reports: BTreeMap<(String, String), WorkReport>,
}

impl State {
    /// The worker whose registered signing key is `key` (canonical hex).
    pub fn by_signing_key(&self, key: &str) -> Option<&Worker> {
        self.workers.values().find(|w| w.signing_key.as_deref() == Some(key))
    }
}

/// What the worker signs to answer a challenge.
pub fn liveliness_message(ip_address: &str, challenge: &str) -> String {
    format!("prag-liveliness-v1\n{ip_address}\n{challenge}")
}

/// What a subscriber signs to ask for the worker list.
pub fn get_workers_message(subscriber_public_key: &str, nonce: &str, issued_at: u64, audience: &str) -> String {
    let request = hex::encode(Sha256::digest(format!("get_workers\n{subscriber_public_key}").as_bytes()));
    format!("prag-query-v1\nget_workers\n{audience}\n{nonce}\n{issued_at}\n{request}")
}

fn verify_hex_signature(field: &str, key: &VerifyingKey, message: &str, sig_hex: &str) -> Result<(), ContractError> {
    let bytes = hex::decode(sig_hex).map_err(|_| ContractError::invalid(field, "not hex"))?;
    let sig = Signature::from_slice(&bytes).map_err(|_| ContractError::invalid(field, "not a 64-byte signature"))?;
    key.verify(message.as_bytes(), &sig).map_err(|_| ContractError::BadSignature { what: field.to_string() })
}

impl State {
    pub fn new(admin_address: String) -> Self {
        State { admin: admin_address, ..State::default() }
    }

    fn worker(&self, ip: &str) -> Result<&Worker, ContractError> {
        self.workers.get(ip).ok_or_else(|| ContractError::not_found(format!("worker {ip}")))
    }

    fn require_wallet(&self, sender: &Sender, ip: &str, what: &str) -> Result<(), ContractError> {
        if self.worker(ip)?.payment_wallet == sender.address() {
            Ok(())
        } else {
            Err(ContractError::unauthorized(format!("only the worker's payment wallet may {what}")))
        }
    }

    /// The worker `sender` acts as: its signing key, or its payment wallet when it named none.
    fn require_worker_key(&self, sender: &Sender, ip: &str) -> Result<&Worker, ContractError> {
        let w = self.worker(ip)?;
        let ok = match &w.signing_key {
            Some(k) => *k == sender.public_key_hex(),
            None => w.payment_wallet == sender.address(),
        };
        if ok { Ok(w) } else { Err(ContractError::unauthorized(format!("sender is not worker {ip}'s key"))) }
    }

    pub fn execute(
        &mut self,
        env: &Env,
        sender: &Sender,
        msg: ExecuteMsg,
    ) -> Result<Option<WorkReport>, ContractError> {
        match msg {
            ExecuteMsg::RegisterWorker { ip_address, payment_wallet, attestation_report, worker_type, signing_key } => {
                super::require_admin(&self.admin, sender, "register workers")?;
                check_field("ip_address", &ip_address, 256)?;
                check_address("payment_wallet", &payment_wallet)?;
                check_field("attestation_report", &attestation_report, MAX_REPORT_LEN)?;
                check_field("worker_type", &worker_type, 256)?;
                let signing_key = match signing_key {
                    Some(k) => Some(crate::account::public_key_hex(&parse_key_field("signing_key", &k)?)),
                    None => None,
                };
                if self.workers.contains_key(&ip_address) {
                    return Err(ContractError::AlreadyExists { what: format!("worker at {ip_address}") });
                }
                self.workers.insert(
                    ip_address.clone(),
                    Worker {
                        ip_address,
                        payment_wallet,
                        attestation_report,
                        worker_type,
                        signing_key,
                        last_seen: None,
                        registered_at: Some(env.time),
                    },
                );
            }
            ExecuteMsg::SetWorkerWallet { ip_address, payment_wallet } => {
                self.require_wallet(sender, &ip_address, "change its wallet")?;
                check_address("payment_wallet", &payment_wallet)?;
                if let Some(w) = self.workers.get_mut(&ip_address) {
                    w.payment_wallet = payment_wallet;
                }
            }
            ExecuteMsg::SetWorkerAddress { new_ip_address, old_ip_address } => {
                self.require_wallet(sender, &old_ip_address, "change its address")?;
                check_field("new_ip_address", &new_ip_address, 256)?;
                if self.workers.contains_key(&new_ip_address) {
                    return Err(ContractError::AlreadyExists { what: format!("worker at {new_ip_address}") });
                }
                if let Some(mut w) = self.workers.remove(&old_ip_address) {
                    w.ip_address = new_ip_address.clone();
                    self.workers.insert(new_ip_address, w);
                }
                self.challenges.remove(&old_ip_address);
            }
            ExecuteMsg::SetWorkerType { ip_address, worker_type } => {
                self.require_wallet(sender, &ip_address, "change its type")?;
                check_field("worker_type", &worker_type, 256)?;
                if let Some(w) = self.workers.get_mut(&ip_address) {
                    w.worker_type = worker_type;
                }
            }
            ExecuteMsg::RemoveWorker { ip_address } => {
                let w = self.worker(&ip_address)?;
                if w.payment_wallet != sender.address() && sender.address() != self.admin {
                    return Err(ContractError::unauthorized(
                        "only the worker's payment wallet or the admin may remove it",
                    ));
                }
                self.workers.remove(&ip_address);
                self.challenges.remove(&ip_address);
            }
            ExecuteMsg::ReportLiveliness { ip_address, challenge, signature } => {
                let w = self.require_worker_key(sender, &ip_address)?;
                let outstanding = self
                    .challenges
                    .get(&ip_address)
                    .ok_or_else(|| ContractError::not_found(format!("an outstanding challenge for {ip_address}")))?;
                if outstanding.challenge != challenge {
                    return Err(ContractError::invalid("challenge", "not the challenge issued to this worker"));
                }
                if env.time > outstanding.expires_at {
                    return Err(ContractError::Expired { what: "liveliness challenge".into() });
                }
                let key = match &w.signing_key {
                    Some(k) => parse_key_field("signing_key", k)?,
                    None => sender.public_key,
                };
                verify_hex_signature("signature", &key, &liveliness_message(&ip_address, &challenge), &signature)?;
                self.challenges.remove(&ip_address);
                if let Some(w) = self.workers.get_mut(&ip_address) {
                    w.last_seen = Some(env.time);
                }
            }
            ExecuteMsg::ReportWork { ip_address, report_id, epoch, requests, input_tokens, output_tokens } => {
                let w = self.require_worker_key(sender, &ip_address)?;
                check_field("report_id", &report_id, 256)?;
                let key = (ip_address.clone(), report_id.clone());
                if self.work_reports.contains_key(&key) {
                    return Err(ContractError::Replayed { what: format!("work report {report_id}") });
                }
                let report = WorkReport {
                    ip_address,
                    payment_wallet: w.payment_wallet.clone(),
                    report_id,
                    epoch,
                    requests,
                    input_tokens,
                    output_tokens,
                    reported_at: env.time,
                };
                self.work_reports.insert(key, report.clone());
                return Ok(Some(report));
            }
        }
        Ok(None)
    }

    /// Issues a liveliness challenge to the worker whose key is `sender` (the transaction form of
    /// `get_liveliness_challenge`): fresh randomness from the transaction, bound to the worker,
    /// valid for [`CHALLENGE_TTL_SECS`].
    pub fn issue_challenge(&mut self, env: &Env, sender: &Sender) -> Result<ChallengeResponse, ContractError> {
        let me = sender.public_key_hex();
        let addr = sender.address();
        let ip = self
            .workers
            .values()
            .find(|w| {
                w.signing_key.as_deref() == Some(me.as_str()) || (w.signing_key.is_none() && w.payment_wallet == addr)
            })
            .map(|w| w.ip_address.clone())
            .ok_or_else(|| {
                ContractError::unauthorized("only a registered worker may ask for a liveliness challenge")
            })?;
        let mut h = Sha256::new();
        h.update(b"prag-challenge-v1");
        h.update(env.random);
        h.update(ip.as_bytes());
        h.update(env.time.to_be_bytes());
        let challenge = hex::encode(h.finalize());
        self.challenges
            .insert(ip, Challenge { challenge: challenge.clone(), expires_at: env.time + CHALLENGE_TTL_SECS });
        Ok(ChallengeResponse { challenge })
    }

    /// Answers a read-only query. `subscribers` says whether a public key is an active subscriber
    /// (SubscriptionManager's state); `replay` remembers signed-query nonces.
    pub fn query(
        &self,
        env: &Env,
        msg: &QueryMsg,
        is_active_subscriber: &dyn Fn(&str) -> bool,
        replay: &mut dyn ReplayGuard,
    ) -> Result<QueryAnswer, ContractError> {
        let answer = match msg {
            QueryMsg::GetWorkers { signature, subscriber_public_key, nonce, issued_at, audience } => {
                let key = parse_key_field("subscriber_public_key", subscriber_public_key)?;
                check_field("nonce", nonce, 128)?;
                if nonce.len() < 16 {
                    return Err(ContractError::invalid("nonce", "at least 16 characters"));
                }
                if *audience != env.contract_address {
                    return Err(ContractError::invalid("audience", "signed for another contract"));
                }
                if env.time.abs_diff(*issued_at) > MAX_QUERY_SKEW_SECS {
                    return Err(ContractError::Expired {
                        what: "get_workers signature (issued_at too far from now)".into(),
                    });
                }
                let message = get_workers_message(subscriber_public_key, nonce, *issued_at, audience);
                verify_hex_signature("signature", &key, &message, signature)?;
                if !is_active_subscriber(subscriber_public_key) {
                    return Err(ContractError::unauthorized("the subscriber is not active"));
                }
                if !replay.first_use(&crate::account::public_key_hex(&key), nonce) {
                    return Err(ContractError::Replayed { what: "get_workers nonce".into() });
                }
                serde_json::to_value(WorkersResponse { workers: self.workers.values().cloned().collect() })
            }
            QueryMsg::GetModels {} => {
                let models: BTreeSet<String> = self
                    .workers
                    .values()
                    .filter(|w| w.worker_type != STORAGE_WORKER_TYPE)
                    .map(|w| w.worker_type.clone())
                    .collect();
                serde_json::to_value(ModelsResponse { models: models.into_iter().collect() })
            }
            QueryMsg::GetURLs { model } => {
                let urls = self
                    .workers
                    .values()
                    .filter(|w| w.worker_type != STORAGE_WORKER_TYPE)
                    .filter(|w| model.as_ref().is_none_or(|m| *m == w.worker_type))
                    .map(|w| worker_url(&w.ip_address))
                    .collect();
                serde_json::to_value(UrlsResponse { urls })
            }
            QueryMsg::GetLivelinessChallenge {} => {
                return Err(ContractError::Rule(
                    "get_liveliness_challenge records a challenge; send it as a transaction".into(),
                ));
            }
        };
        answer.map_err(|e| ContractError::Rule(e.to_string()))
    }
}

/// A worker's URL from its registered address: kept if it has a scheme, else `https://`.
pub fn worker_url(ip_address: &str) -> String {
    if ip_address.contains("://") { ip_address.to_string() } else { format!("https://{ip_address}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::testing::{env, key, sender};
    use k256::ecdsa::signature::Signer;

    fn sign_hex(seed: u8, msg: &str) -> String {
        let sig: Signature = key(seed).sign(msg.as_bytes());
        hex::encode(sig.to_bytes())
    }

    fn register(
        s: &mut State,
        admin: &Sender,
        ip: &str,
        wallet_seed: u8,
        signer_seed: u8,
        kind: &str,
    ) -> Result<(), ContractError> {
        s.execute(
            &env(100),
            admin,
            ExecuteMsg::RegisterWorker {
                ip_address: ip.into(),
                payment_wallet: sender(wallet_seed).address(),
                attestation_report: "report".into(),
                worker_type: kind.into(),
                signing_key: Some(sender(signer_seed).public_key_hex()),
            },
        )
        .map(|_| ())
    }

    #[test]
    fn json_shapes() {
        let q: QueryMsg = serde_json::from_str(r#"{"get_u_r_ls":{"model":"llama"}}"#).expect("urls");
        assert_eq!(q, QueryMsg::GetURLs { model: Some("llama".into()) });
        assert_eq!(serde_json::to_string(&QueryMsg::GetURLs { model: None }).expect("s"), r#"{"get_u_r_ls":{}}"#);
        assert_eq!(serde_json::from_str::<QueryMsg>(r#"{"get_models":{}}"#).expect("m"), QueryMsg::GetModels {});
        assert_eq!(
            serde_json::from_str::<QueryMsg>(r#"{"get_liveliness_challenge":{}}"#).expect("c"),
            QueryMsg::GetLivelinessChallenge {}
        );
        let reg = r#"{"register_worker":{"ip_address":"10.0.0.1","payment_wallet":"secret1x","attestation_report":"r","worker_type":"llama"}}"#;
        let m: ExecuteMsg = serde_json::from_str(reg).expect("reg");
        assert_eq!(serde_json::to_string(&m).expect("s"), reg);
        assert!(serde_json::from_str::<ExecuteMsg>(r#"{"set_worker_address":{"new_ip_address":"a"}}"#).is_err());
        assert_eq!(
            serde_json::to_string(&ModelsResponse { models: vec!["a".into()] }).expect("s"),
            r#"{"models":["a"]}"#
        );
        assert_eq!(serde_json::to_string(&UrlsResponse { urls: vec![] }).expect("s"), r#"{"urls":[]}"#);
    }

    #[test]
    fn registration_and_wallet_owner_rules() {
        let admin = sender(1);
        let mut s = State::new(admin.address());
        assert!(matches!(
            register(&mut s, &sender(2), "10.0.0.1", 3, 4, "llama"),
            Err(ContractError::Unauthorized { .. })
        ));
        assert!(s.workers.is_empty());
        register(&mut s, &admin, "10.0.0.1", 3, 4, "llama").expect("register");
        assert!(matches!(
            register(&mut s, &admin, "10.0.0.1", 5, 6, "llama"),
            Err(ContractError::AlreadyExists { .. })
        ));
        let e = env(100);
        let wallet = sender(3);
        let stranger = sender(9);
        let new_wallet = sender(5).address();
        let set_wallet =
            ExecuteMsg::SetWorkerWallet { ip_address: "10.0.0.1".into(), payment_wallet: new_wallet.clone() };
        assert!(matches!(s.execute(&e, &stranger, set_wallet.clone()), Err(ContractError::Unauthorized { .. })));
        assert!(s.execute(&e, &admin, set_wallet.clone()).is_err(), "admin is not the wallet");
        s.execute(&e, &wallet, set_wallet).expect("wallet change");
        let wallet = sender(5);
        assert_eq!(s.workers["10.0.0.1"].payment_wallet, new_wallet);
        let set_type = ExecuteMsg::SetWorkerType { ip_address: "10.0.0.1".into(), worker_type: "mistral".into() };
        assert!(s.execute(&e, &stranger, set_type.clone()).is_err());
        s.execute(&e, &wallet, set_type).expect("type");
        register(&mut s, &admin, "10.0.0.2", 7, 8, "llama").expect("second");
        let move_to_taken =
            ExecuteMsg::SetWorkerAddress { new_ip_address: "10.0.0.2".into(), old_ip_address: "10.0.0.1".into() };
        assert!(matches!(s.execute(&e, &wallet, move_to_taken), Err(ContractError::AlreadyExists { .. })));
        let mv = ExecuteMsg::SetWorkerAddress { new_ip_address: "10.0.0.3".into(), old_ip_address: "10.0.0.1".into() };
        assert!(s.execute(&e, &stranger, mv.clone()).is_err());
        s.execute(&e, &wallet, mv).expect("move");
        assert!(s.workers.contains_key("10.0.0.3") && !s.workers.contains_key("10.0.0.1"));
        // Removal: stranger no, wallet yes, admin yes.
        assert!(s.execute(&e, &stranger, ExecuteMsg::RemoveWorker { ip_address: "10.0.0.3".into() }).is_err());
        s.execute(&e, &wallet, ExecuteMsg::RemoveWorker { ip_address: "10.0.0.3".into() }).expect("wallet removes");
        s.execute(&e, &admin, ExecuteMsg::RemoveWorker { ip_address: "10.0.0.2".into() }).expect("admin removes");
        assert!(s.workers.is_empty());
        assert!(matches!(
            s.execute(&e, &admin, ExecuteMsg::RemoveWorker { ip_address: "10.0.0.2".into() }),
            Err(ContractError::NotFound { .. })
        ));
        // Bad fields.
        let bad = ExecuteMsg::RegisterWorker {
            ip_address: "10.0.0.9".into(),
            payment_wallet: "not-an-address".into(),
            attestation_report: "r".into(),
            worker_type: "t".into(),
            signing_key: None,
        };
        assert!(matches!(s.execute(&e, &admin, bad), Err(ContractError::InvalidField { .. })));
    }

    #[test]
    fn models_and_urls_come_from_registered_workers() {
        let admin = sender(1);
        let mut s = State::new(admin.address());
        register(&mut s, &admin, "10.0.0.1", 3, 4, "llama-3.1-70b").expect("r");
        register(&mut s, &admin, "10.0.0.2:8443", 3, 5, "deepseek-r1").expect("r");
        register(&mut s, &admin, "10.0.0.3", 3, 6, STORAGE_WORKER_TYPE).expect("r");
        let mut guard = BTreeSet::new();
        let e = env(100);
        let models = s.query(&e, &QueryMsg::GetModels {}, &|_| false, &mut guard).expect("models");
        assert_eq!(models, serde_json::json!({"models": ["deepseek-r1", "llama-3.1-70b"]}));
        let urls = s
            .query(&e, &QueryMsg::GetURLs { model: Some("deepseek-r1".into()) }, &|_| false, &mut guard)
            .expect("urls");
        assert_eq!(urls, serde_json::json!({"urls": ["https://10.0.0.2:8443"]}));
    }

    #[test]
    fn get_workers_needs_a_fresh_unreplayed_signature_from_an_active_subscriber() {
        let admin = sender(1);
        let mut s = State::new(admin.address());
        register(&mut s, &admin, "10.0.0.1", 3, 4, "llama").expect("r");
        let e = env(1_000);
        let sub = sender(20).public_key_hex();
        let nonce = "0123456789abcdef0123";
        let msg = |nonce: &str, at: u64, aud: &str| get_workers_message(&sub, nonce, at, aud);
        let q = |sig: String, nonce: &str, at: u64, aud: &str| QueryMsg::GetWorkers {
            signature: sig,
            subscriber_public_key: sub.clone(),
            nonce: nonce.into(),
            issued_at: at,
            audience: aud.into(),
        };
        let active = |k: &str| k == sub;
        let mut guard = BTreeSet::new();
        let good = q(sign_hex(20, &msg(nonce, 990, &e.contract_address)), nonce, 990, &e.contract_address.clone());
        let ans = s.query(&e, &good, &active, &mut guard).expect("fresh");
        assert_eq!(ans["workers"].as_array().map(|a| a.len()), Some(1));
        assert!(matches!(s.query(&e, &good, &active, &mut guard), Err(ContractError::Replayed { .. })));
        let n2 = "fedcba9876543210fedc";
        let stale = q(sign_hex(20, &msg(n2, 900, &e.contract_address)), n2, 900, &e.contract_address.clone());
        assert!(matches!(s.query(&e, &stale, &active, &mut guard), Err(ContractError::Expired { .. })));
        let other_aud = q(sign_hex(20, &msg(n2, 1000, "secret1other")), n2, 1000, "secret1other");
        assert!(matches!(s.query(&e, &other_aud, &active, &mut guard), Err(ContractError::InvalidField { .. })));
        let forged = q(sign_hex(21, &msg(n2, 1000, &e.contract_address)), n2, 1000, &e.contract_address.clone());
        assert!(matches!(s.query(&e, &forged, &active, &mut guard), Err(ContractError::BadSignature { .. })));
        // The published contract's replayable self-signature (over SHA-256 of the key) is refused.
        let legacy = q(sign_hex(20, &sub), n2, 1000, &e.contract_address.clone());
        assert!(s.query(&e, &legacy, &active, &mut guard).is_err());
        let ok = q(sign_hex(20, &msg(n2, 1000, &e.contract_address)), n2, 1000, &e.contract_address.clone());
        assert!(
            matches!(s.query(&e, &ok, &|_| false, &mut guard), Err(ContractError::Unauthorized { .. })),
            "inactive subscriber"
        );
    }

    #[test]
    fn liveliness_challenge_and_answer() {
        let admin = sender(1);
        let mut s = State::new(admin.address());
        register(&mut s, &admin, "10.0.0.1", 3, 4, "llama").expect("r");
        let worker = sender(4);
        assert!(matches!(s.issue_challenge(&env(100), &sender(9)), Err(ContractError::Unauthorized { .. })));
        let c = s.issue_challenge(&env(100), &worker).expect("challenge").challenge;
        let answer = |sig_seed: u8, challenge: &str| ExecuteMsg::ReportLiveliness {
            ip_address: "10.0.0.1".into(),
            challenge: challenge.into(),
            signature: sign_hex(sig_seed, &liveliness_message("10.0.0.1", challenge)),
        };
        // Wrong sender, wrong signer, wrong challenge, expired: all refused.
        assert!(matches!(s.execute(&env(110), &sender(9), answer(4, &c)), Err(ContractError::Unauthorized { .. })));
        assert!(matches!(s.execute(&env(110), &worker, answer(9, &c)), Err(ContractError::BadSignature { .. })));
        assert!(matches!(s.execute(&env(110), &worker, answer(4, "00ff")), Err(ContractError::InvalidField { .. })));
        assert!(matches!(
            s.execute(&env(100 + CHALLENGE_TTL_SECS + 1), &worker, answer(4, &c)),
            Err(ContractError::Expired { .. })
        ));
        assert_eq!(s.workers["10.0.0.1"].last_seen, None);
        s.execute(&env(120), &worker, answer(4, &c)).expect("answer");
        assert_eq!(s.workers["10.0.0.1"].last_seen, Some(120));
        // Single use.
        assert!(matches!(s.execute(&env(121), &worker, answer(4, &c)), Err(ContractError::NotFound { .. })));
        // Fresh randomness gives a different challenge.
        let mut e2 = env(130);
        e2.random = [0xab; 32];
        assert_ne!(s.issue_challenge(&e2, &worker).expect("c2").challenge, c);
    }

    #[test]
    fn work_reports_once_per_id_by_the_worker_key() {
        let admin = sender(1);
        let mut s = State::new(admin.address());
        register(&mut s, &admin, "10.0.0.1", 3, 4, "llama").expect("r");
        let report = ExecuteMsg::ReportWork {
            ip_address: "10.0.0.1".into(),
            report_id: "r-1".into(),
            epoch: 1,
            requests: 3,
            input_tokens: 100,
            output_tokens: 50,
        };
        assert!(matches!(s.execute(&env(100), &sender(9), report.clone()), Err(ContractError::Unauthorized { .. })));
        let rec = s.execute(&env(100), &sender(4), report.clone()).expect("report").expect("recorded");
        assert_eq!(rec.payment_wallet, sender(3).address());
        assert!(matches!(s.execute(&env(101), &sender(4), report), Err(ContractError::Replayed { .. })));
    }
}
