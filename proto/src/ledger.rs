//! The contracts' ledger, without I/O: signed transactions, hash-chained entries, and the state
//! they replay into. Every node keeps the same log; the admin's node orders it (the only writer),
//! others forward transactions to it and replicate its entries.
//!
//! A transaction body is signed by its sender with secp256k1 (ECDSA over SHA-256) over
//! `prag-tx-v1\n` followed by the canonical JSON of the body (keys sorted, no spaces). An entry
//! adds the orderer's time and randomness, the previous entry's hash and its own hash (SHA-256 of
//! the canonical JSON of everything else), so any change to any entry breaks the chain.

use k256::ecdsa::signature::{Signer, Verifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contracts::permit::canonical_json;
use crate::contracts::{ContractError, Env, QueryAnswer, Sender, bank, market, rewards, subscription, worker};

/// The hash before the first entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TxBody {
    /// Hex of the sender's compressed public key.
    pub sender: String,
    /// Random, unique per sender (16-128 alphanumeric characters).
    pub nonce: String,
    /// Unix seconds when the sender signed; the orderer refuses it if more than 60 s away.
    pub timestamp: u64,
    /// An execute message in the published contracts' JSON shape, or `{"genesis": {...}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub msg: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub body: TxBody,
    /// Hex of the 64-byte signature.
    pub signature: String,
}

/// The form of an execute message that is signed and logged: a plaintext API key in
/// `add_api_key` / `revoke_api_key` is replaced by its SHA-256, so no log, replica or backup ever
/// holds a usable key. Other messages are unchanged.
pub fn normalize_msg(msg: &serde_json::Value) -> serde_json::Value {
    let mut msg = msg.clone();
    for name in ["add_api_key", "revoke_api_key"] {
        if let Some(fields) = msg.get_mut(name).and_then(|v| v.as_object_mut()) {
            // An invalid key (empty, oversize, control characters) stays as it is, so the contract
            // refuses it with the reason, and a refused transaction is never logged.
            let valid = matches!(fields.get("api_key"), Some(serde_json::Value::String(k))
                if crate::contracts::check_field("api_key", k, crate::contracts::MAX_FIELD_LEN).is_ok());
            if valid && let Some(serde_json::Value::String(key)) = fields.remove("api_key") {
                let hash = crate::contracts::subscription::hash_api_key(&key);
                fields.insert("api_key_sha256".into(), serde_json::Value::String(hash));
            }
        }
    }
    msg
}

fn tx_sign_bytes(body: &TxBody) -> Result<Vec<u8>, ContractError> {
    let v = serde_json::to_value(body).map_err(|e| ContractError::Rule(e.to_string()))?;
    Ok(format!("prag-tx-v1\n{}", canonical_json(&v)).into_bytes())
}

impl SignedTx {
    pub fn sign(key: &SigningKey, nonce: &str, timestamp: u64, msg: serde_json::Value) -> Result<Self, ContractError> {
        let body = TxBody {
            sender: crate::account::public_key_hex(&VerifyingKey::from(key)),
            nonce: nonce.to_string(),
            timestamp,
            msg: normalize_msg(&msg),
        };
        let sig: Signature = key.sign(&tx_sign_bytes(&body)?);
        Ok(SignedTx { body, signature: hex::encode(sig.to_bytes()) })
    }

    /// Replaces plaintext API keys by their hashes (see [`normalize_msg`]); the signature, made
    /// over the normalised form, still verifies.
    pub fn normalized(mut self) -> Self {
        self.body.msg = normalize_msg(&self.body.msg);
        self
    }

    /// Checks the sender's signature; returns the sender.
    pub fn verify(&self) -> Result<Sender, ContractError> {
        let key = crate::contracts::parse_key_field("sender", &self.body.sender)?;
        let n = &self.body.nonce;
        if n.len() < 16 || n.len() > 128 || !n.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ContractError::invalid("nonce", "16 to 128 letters or digits"));
        }
        let bytes = hex::decode(&self.signature).map_err(|_| ContractError::invalid("signature", "not hex"))?;
        let sig = Signature::from_slice(&bytes).map_err(|_| ContractError::invalid("signature", "not 64 bytes"))?;
        key.verify(&tx_sign_bytes(&self.body)?, &sig)
            .map_err(|_| ContractError::BadSignature { what: "transaction".into() })?;
        Ok(Sender::new(key))
    }
}

/// One ordered, applied transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub height: u64,
    pub prev_hash: String,
    pub env: Env,
    pub tx: SignedTx,
    pub hash: String,
}

#[derive(Serialize)]
struct EntryHashInput<'a> {
    height: u64,
    prev_hash: &'a str,
    env: &'a Env,
    tx: &'a SignedTx,
}

impl Entry {
    pub fn compute_hash(height: u64, prev_hash: &str, env: &Env, tx: &SignedTx) -> Result<String, ContractError> {
        let v = serde_json::to_value(EntryHashInput { height, prev_hash, env, tx })
            .map_err(|e| ContractError::Rule(e.to_string()))?;
        Ok(hex::encode(Sha256::digest(canonical_json(&v).as_bytes())))
    }

    /// Checks this entry's own hash and its link to `prev_hash` at `height`.
    pub fn check_link(&self, height: u64, prev_hash: &str) -> Result<(), ContractError> {
        if self.height != height {
            return Err(ContractError::Rule(format!("entry height {} where {height} was expected", self.height)));
        }
        if self.prev_hash != prev_hash {
            return Err(ContractError::Rule(format!("entry {height} does not link to the previous entry")));
        }
        if Entry::compute_hash(self.height, &self.prev_hash, &self.env, &self.tx)? != self.hash {
            return Err(ContractError::Rule(format!("entry {height}'s hash does not match its contents")));
        }
        Ok(())
    }
}

/// The first entry's message: who the admin is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GenesisMsg {
    Genesis {
        admin: String,
        chain_id: String,
        contract_address: String,
        /// The bank's opening balances.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        accounts: Vec<bank::Allocation>,
        /// Whether the admin may `mint` (development networks only).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        allow_mint: bool,
        /// Seconds per market epoch (default one day).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        market_epoch_secs: Option<u64>,
    },
}

/// Longest market epoch a genesis may set (a year).
pub const MAX_MARKET_EPOCH_SECS: u64 = 365 * 86_400;

/// Any execute message of the contracts and the bank, told apart by its (unique) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractMsg {
    Subscription(subscription::ExecuteMsg),
    Worker(worker::ExecuteMsg),
    Rewards(rewards::ExecuteMsg),
    Bank(bank::ExecuteMsg),
    Market(market::ExecuteMsg),
    /// `get_liveliness_challenge`, run as a transaction because it records the challenge.
    IssueChallenge,
}

/// The name of a CosmWasm-style message: the only key of a JSON object. `field` and `noun` word
/// the error ("msg"/"message", "query"/"query").
fn message_name(v: &serde_json::Value, field: &str, noun: &str) -> Result<String, ContractError> {
    match v.as_object() {
        Some(m) if m.len() == 1 => Ok(m.keys().next().cloned().unwrap_or_default()),
        _ => Err(ContractError::invalid(field, format!("expected an object with exactly one {noun} name"))),
    }
}

impl ContractMsg {
    /// Parses an execute message in the published JSON shape; the error names the problem.
    pub fn parse(v: &serde_json::Value) -> Result<Self, ContractError> {
        let name = message_name(v, "msg", "message")?;
        let bad = |e: serde_json::Error| ContractError::invalid(format!("msg.{name}"), e.to_string());
        match name.as_str() {
            "register_subscriber"
            | "remove_subscriber"
            | "set_admin"
            | "add_api_key"
            | "revoke_api_key"
            | "revoke_permit" => serde_json::from_value(v.clone()).map(ContractMsg::Subscription).map_err(bad),
            "register_worker" | "set_worker_wallet" | "set_worker_address" | "set_worker_type" | "remove_worker"
            | "report_liveliness" | "report_work" => {
                serde_json::from_value(v.clone()).map(ContractMsg::Worker).map_err(bad)
            }
            "fund_epoch" | "close_epoch" | "claim" => {
                serde_json::from_value(v.clone()).map(ContractMsg::Rewards).map_err(bad)
            }
            "transfer" | "mint" => serde_json::from_value(v.clone()).map(ContractMsg::Bank).map_err(bad),
            n if market::ExecuteMsg::NAMES.contains(&n) => {
                serde_json::from_value(v.clone()).map(ContractMsg::Market).map_err(bad)
            }
            "get_liveliness_challenge" => match &v[&name] {
                serde_json::Value::Object(m) if m.is_empty() => Ok(ContractMsg::IssueChallenge),
                _ => Err(ContractError::invalid("msg.get_liveliness_challenge", "takes no fields")),
            },
            other => Err(ContractError::invalid("msg", format!("unknown message {other:?}"))),
        }
    }
}

/// Any query of the contracts and the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractQuery {
    Subscription(subscription::QueryMsg),
    Worker(worker::QueryMsg),
    Rewards(rewards::QueryMsg),
    Bank(bank::QueryMsg),
    Market(market::QueryMsg),
}

impl ContractQuery {
    pub fn parse(v: &serde_json::Value) -> Result<Self, ContractError> {
        let name = message_name(v, "query", "query")?;
        let bad = |e: serde_json::Error| ContractError::invalid(format!("query.{name}"), e.to_string());
        match name.as_str() {
            "subscriber_status" | "api_keys_with_permit" => {
                serde_json::from_value(v.clone()).map(ContractQuery::Subscription).map_err(bad)
            }
            "get_workers" | "get_models" | "get_u_r_ls" | "get_liveliness_challenge" => {
                serde_json::from_value(v.clone()).map(ContractQuery::Worker).map_err(bad)
            }
            "epoch" | "share" => serde_json::from_value(v.clone()).map(ContractQuery::Rewards).map_err(bad),
            "balance" | "supply" => serde_json::from_value(v.clone()).map(ContractQuery::Bank).map_err(bad),
            n if market::QueryMsg::NAMES.contains(&n) => {
                serde_json::from_value(v.clone()).map(ContractQuery::Market).map_err(bad)
            }
            other => Err(ContractError::invalid("query", format!("unknown query {other:?}"))),
        }
    }
}

/// The contracts' and the bank's state: what replaying the log produces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerState {
    pub chain_id: String,
    pub contract_address: String,
    pub subscription: subscription::State,
    pub worker: worker::State,
    pub rewards: rewards::State,
    pub bank: bank::State,
    pub market: market::State,
    /// The last entry's commitment to the next entry's randomness (SHA-256, hex).
    pub random_commitment: Option<String>,
}

fn to_answer<T: Serialize>(v: &T) -> Result<serde_json::Value, ContractError> {
    serde_json::to_value(v).map_err(|e| ContractError::Rule(e.to_string()))
}

impl LedgerState {
    pub fn admin(&self) -> &str {
        &self.subscription.admin
    }

    /// Applies one transaction (already ordered: `env` is its entry's). On error the state is
    /// unchanged. Returns the message's answer, if it has one.
    pub fn apply(&mut self, env: &Env, tx: &SignedTx, height: u64) -> Result<Option<serde_json::Value>, ContractError> {
        let sender = tx.verify()?;
        if let Some(c) = &self.random_commitment
            && hex::encode(Sha256::digest(env.random)) != *c
        {
            return Err(ContractError::Rule(format!(
                "entry {height}'s randomness is not the one the previous entry committed to"
            )));
        }
        let next_commitment = match &env.next_random_sha256 {
            Some(c) if c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) => {
                Some(c.clone())
            }
            Some(_) => return Err(ContractError::invalid("env.next_random_sha256", "not 64 lower-case hex digits")),
            None => None,
        };
        if height == 0 {
            let GenesisMsg::Genesis { admin, chain_id, contract_address, accounts, allow_mint, market_epoch_secs } =
                serde_json::from_value(tx.body.msg.clone())
                    .map_err(|e| ContractError::invalid("genesis", e.to_string()))?;
            if admin != sender.address() {
                return Err(ContractError::unauthorized("the genesis must be signed by the admin it names"));
            }
            let mut params = market::Params::default();
            if let Some(secs) = market_epoch_secs {
                if secs == 0 || secs > MAX_MARKET_EPOCH_SECS {
                    return Err(ContractError::invalid("genesis.market_epoch_secs", "1 second to a year"));
                }
                params.epoch_secs = secs;
            }
            *self = LedgerState {
                chain_id,
                contract_address,
                subscription: subscription::State::new(admin.clone()),
                worker: worker::State::new(admin.clone()),
                rewards: rewards::State::new(admin.clone()),
                bank: bank::State::new(admin.clone(), &accounts, allow_mint)?,
                market: market::State::new(admin, params),
                random_commitment: next_commitment,
            };
            return Ok(None);
        }
        let msg = ContractMsg::parse(&tx.body.msg)?;
        // Work on a copy: a refused message leaves no trace, even when it touches two contracts.
        let mut next = self.clone();
        let answer = match msg {
            ContractMsg::Subscription(m) => {
                let sets_admin = matches!(m, subscription::ExecuteMsg::SetAdmin { .. });
                next.subscription.execute(env, &sender, m)?;
                if sets_admin {
                    // One admin for every contract.
                    next.worker.admin = next.subscription.admin.clone();
                    next.rewards.admin = next.subscription.admin.clone();
                    next.bank.admin = next.subscription.admin.clone();
                    next.market.admin = next.subscription.admin.clone();
                }
                None
            }
            ContractMsg::Worker(m) => {
                if let Some(report) = next.worker.execute(env, &sender, m)? {
                    let units = u128::from(report.input_tokens) + u128::from(report.output_tokens);
                    next.rewards.record_work(report.epoch, &report.payment_wallet, units)?;
                }
                None
            }
            ContractMsg::Rewards(m) => {
                // Epochs are funded from the admin's balance and claimed into the wallet's.
                let pool = bank::module_address(bank::accounts::REWARDS_POOL);
                let funded = match &m {
                    rewards::ExecuteMsg::FundEpoch { amount, .. } => Some(amount.0),
                    _ => None,
                };
                let claimed = match &m {
                    rewards::ExecuteMsg::Claim { epoch } => Some(*epoch),
                    _ => None,
                };
                next.rewards.execute(env, &sender, m)?;
                let wallet = sender.address();
                if let Some(amount) = funded {
                    next.bank.transfer(&wallet, &pool, amount)?;
                }
                if let Some(epoch) = claimed {
                    let share = next.rewards.epochs.get(&epoch).and_then(|e| e.shares.get(&wallet));
                    next.bank.transfer(&pool, &wallet, share.map_or(0, |s| s.amount.0))?;
                }
                None
            }
            ContractMsg::Bank(m) => {
                next.bank.execute(&sender, m)?;
                None
            }
            ContractMsg::Market(m) => {
                let signature = hex::decode(&tx.signature).unwrap_or_default();
                let seed = market::sampling::seed(&env.random, &signature);
                let LedgerState { worker, bank, market, .. } = &mut next;
                let workers = &*worker;
                let storage_node = |key: &str| {
                    workers
                        .by_signing_key(key)
                        .filter(|w| w.worker_type == worker::STORAGE_WORKER_TYPE)
                        .map(|w| w.ip_address.clone())
                };
                let mut ctx = market::Ctx { env, sender: &sender, seed, bank, storage_node: &storage_node };
                let events = market.execute(&mut ctx, m)?;
                Some(serde_json::json!({ "events": to_answer(&events)? }))
            }
            ContractMsg::IssueChallenge => {
                let c = next.worker.issue_challenge(env, &sender)?;
                Some(serde_json::to_value(c).map_err(|e| ContractError::Rule(e.to_string()))?)
            }
        };
        next.random_commitment = next_commitment;
        *self = next;
        Ok(answer)
    }

    /// SHA-256 of the whole state, to compare replicas and replays: equal code and equal logs
    /// give equal hashes. (Over the state's debug form: every map in it is ordered.)
    pub fn state_hash(&self) -> String {
        hex::encode(Sha256::digest(format!("{self:?}").as_bytes()))
    }

    /// Answers a query against the current state.
    pub fn query(
        &self,
        env: &Env,
        q: &ContractQuery,
        replay: &mut dyn worker::ReplayGuard,
    ) -> Result<QueryAnswer, ContractError> {
        match q {
            ContractQuery::Subscription(m) => self.subscription.query(env, m),
            ContractQuery::Worker(m) => {
                let subs = &self.subscription;
                self.worker.query(env, m, &|k| subs.is_active(k), replay)
            }
            ContractQuery::Rewards(m) => self.rewards.query(m),
            ContractQuery::Bank(m) => self.bank.query(m),
            ContractQuery::Market(m) => self.market.query(&self.bank, env.time, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::testing::{env, key, sender};

    fn genesis(admin_seed: u8) -> SignedTx {
        let admin = sender(admin_seed).address();
        let msg = serde_json::json!({"genesis": {"admin": admin, "chain_id": "prag-test", "contract_address": "secret1contract"}});
        SignedTx::sign(&key(admin_seed), "genesis000000000001", 1, msg).expect("sign")
    }

    #[test]
    fn replaying_entries_gives_the_same_state_and_tampering_breaks_the_chain() {
        let mut state = LedgerState::default();
        let mut entries = Vec::new();
        let mut prev = GENESIS_PREV.to_string();
        let txs = vec![
            genesis(1),
            SignedTx::sign(
                &key(1),
                "n0000000000000001",
                2,
                serde_json::json!({"register_subscriber": {"public_key": sender(5).public_key_hex()}}),
            )
            .expect("s"),
            SignedTx::sign(
                &key(1),
                "n0000000000000002",
                3,
                serde_json::json!({"add_api_key": {"api_key": "sk-secret"}}),
            )
            .expect("s"),
        ];
        for (h, tx) in txs.into_iter().enumerate() {
            let e = env(10 + h as u64);
            state.apply(&e, &tx, h as u64).expect("apply");
            let hash = Entry::compute_hash(h as u64, &prev, &e, &tx).expect("hash");
            entries.push(Entry { height: h as u64, prev_hash: prev.clone(), env: e, tx, hash: hash.clone() });
            prev = hash;
        }
        let mut replayed = LedgerState::default();
        let mut prev = GENESIS_PREV.to_string();
        for e in &entries {
            e.check_link(e.height, &prev).expect("link");
            replayed.apply(&e.env, &e.tx, e.height).expect("replay");
            prev = e.hash.clone();
        }
        assert_eq!(replayed, state);
        assert!(state.subscription.is_active(&sender(5).public_key_hex()));

        let mut forged = entries[1].clone();
        forged.tx.body.msg = serde_json::json!({"register_subscriber": {"public_key": sender(6).public_key_hex()}});
        assert!(forged.tx.verify().is_err(), "a changed message no longer matches its signature");
        assert!(forged.check_link(1, &entries[0].hash).is_err());
        let mut moved = entries[2].clone();
        moved.env.time += 1;
        assert!(moved.check_link(2, &entries[1].hash).is_err());
    }

    #[test]
    fn refused_messages_change_nothing_and_errors_name_the_field() {
        let mut state = LedgerState::default();
        state.apply(&env(1), &genesis(1), 0).expect("genesis");
        let before = state.clone();
        let stranger = SignedTx::sign(
            &key(2),
            "n0000000000000003",
            2,
            serde_json::json!({"register_subscriber": {"public_key": sender(5).public_key_hex()}}),
        )
        .expect("s");
        assert!(matches!(state.apply(&env(2), &stranger, 1), Err(ContractError::Unauthorized { .. })));
        let unknown =
            SignedTx::sign(&key(1), "n0000000000000004", 2, serde_json::json!({"frobnicate": {"amount": "5"}}))
                .expect("s");
        let e = state.apply(&env(2), &unknown, 1).expect_err("unknown");
        assert!(e.to_string().contains("unknown message"), "{e}");
        let wrong_type = SignedTx::sign(
            &key(1),
            "n0000000000000005",
            2,
            serde_json::json!({"fund_epoch": {"epoch": "one", "amount": "5"}}),
        )
        .expect("s");
        let e = state.apply(&env(2), &wrong_type, 1).expect_err("type");
        assert!(e.to_string().contains("msg.fund_epoch"), "{e}");
        assert_eq!(state, before);
        // set_admin moves all three contracts' admin.
        let next = sender(3);
        let set = SignedTx::sign(
            &key(1),
            "n0000000000000006",
            2,
            serde_json::json!({"set_admin": {"public_key": next.public_key_hex()}}),
        )
        .expect("s");
        state.apply(&env(2), &set, 1).expect("set admin");
        assert_eq!(
            (state.worker.admin.as_str(), state.rewards.admin.as_str()),
            (next.address().as_str(), next.address().as_str())
        );
    }
}
