//! The node's copy of the contracts' ledger: a durable, hash-chained log of signed transactions,
//! replayed into `prag_proto::ledger::LedgerState` at start.
//!
//! ```text
//! <data>/ledger.log        frames of [u32 little-endian length][JSON entry], fsynced per append
//! <data>/ledger.orderer    present on the node that created the genesis (the admin's node),
//!                          which is the only one that appends; others will replicate its log
//! ```
//! On start every entry's link, hash and signature are checked and it is re-applied. The first
//! entry that fails (a truncated frame, bad JSON, a broken link, a refused transaction) ends the
//! valid prefix: the damage is reported, the tail is moved aside to `ledger.log.damaged-<time>`,
//! and the node goes on with the prefix. A valid prefix is never lost.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k256::ecdsa::SigningKey;
use prag_proto::contracts::{ContractError, Env, worker::ReplayGuard};
use prag_proto::ledger::{ContractQuery, Entry, GENESIS_PREV, LedgerState, SignedTx};
use serde::{Deserialize, Serialize};

use crate::auth::unix_now;

/// How far a transaction's timestamp may be from the orderer's clock, in seconds.
pub const MAX_TX_SKEW_SECS: u64 = 60;
/// Largest accepted entry, in bytes.
const MAX_ENTRY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("refused by the contract: {0}")]
    Contract(#[from] ContractError),
    #[error("transaction timestamp is {skew} s away from the orderer's clock (at most {MAX_TX_SKEW_SECS} s allowed)")]
    Stale { skew: u64 },
    #[error("transaction nonce was already used by this sender")]
    Replayed,
    #[error("this node has no contracts ledger: start the network's first node with --admin-key FILE to create one")]
    NoLedger,
    #[error("this node does not order transactions; send them to the admin's node")]
    NotOrderer,
    #[error("ledger file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("replicated entry {got} does not follow this log's height {have}: catch up first")]
    Gap { have: u64, got: u64 },
    #[error("replicated entry {height} conflicts with this log (another history)")]
    Fork { height: u64 },
}

/// What was wrong with the log found at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDamage {
    pub valid_entries: u64,
    pub bytes_moved_aside: u64,
    pub moved_to: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStatus {
    /// Entries in the log (the next entry's height).
    pub height: u64,
    pub head_hash: String,
    pub admin: String,
    pub chain_id: String,
    pub contract_address: String,
    pub orderer: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<LedgerDamage>,
}

/// What a submitted transaction became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub height: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<serde_json::Value>,
}

struct Inner {
    file: Option<std::fs::File>,
    state: LedgerState,
    height: u64,
    head: String,
    entries: Vec<Entry>,
    tx_nonces: HashMap<(String, String), u64>,
    query_nonces: HashMap<(String, String), u64>,
}

pub struct Ledger {
    path: PathBuf,
    orderer: bool,
    damage: Option<LedgerDamage>,
    inner: Mutex<Inner>,
    /// The height after each commit, for whoever replicates the log.
    heights: tokio::sync::watch::Sender<u64>,
}

/// The contracts' address for a chain id: `bech32("secret", SHA-256("prag/contracts/" ‖ chain)[..20])`.
pub fn contract_address(chain_id: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("prag/contracts/{chain_id}").as_bytes());
    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse_unchecked("secret"), &digest[..20]).unwrap_or_default()
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |e| LedgerError::Io { path: path.display().to_string(), reason: e.to_string() }
}

fn random32() -> Result<[u8; 32], LedgerError> {
    let mut r = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r)
        .map_err(|_| LedgerError::Io { path: "randomness".into(), reason: "the system RNG failed".into() })?;
    Ok(r)
}

struct TimedNonces<'a> {
    seen: &'a mut HashMap<(String, String), u64>,
    now: u64,
}

impl ReplayGuard for TimedNonces<'_> {
    fn first_use(&mut self, signer: &str, nonce: &str) -> bool {
        let now = self.now;
        if self.seen.len() > 100_000 {
            self.seen.retain(|_, t| now.saturating_sub(*t) <= 4 * MAX_TX_SKEW_SECS);
        }
        self.seen.insert((signer.to_string(), nonce.to_string()), now).is_none()
    }
}

impl Ledger {
    /// Opens `<data>/ledger.log`, replaying it. With `admin_key` and no log yet, writes the
    /// genesis that makes that key the contracts' admin, and this node the orderer.
    pub fn open(data: &Path, admin_key: Option<&SigningKey>, chain_id: &str) -> Result<Ledger, LedgerError> {
        let path = data.join("ledger.log");
        let marker = data.join("ledger.orderer");
        let mut bytes = Vec::new();
        if path.exists() {
            std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(&path))?;
        }
        let (entries, valid_len, problem) = parse_and_check(&bytes);
        let mut state = LedgerState::default();
        let mut kept = Vec::with_capacity(entries.len());
        let mut problem = problem;
        let mut valid_len = valid_len;
        for (entry, end) in entries {
            if let Err(e) = state.apply(&entry.env, &entry.tx, entry.height) {
                problem = Some(format!("entry {} is refused on replay: {e}", entry.height));
                break;
            }
            valid_len = end;
            kept.push(entry);
        }
        if problem.is_none() {
            valid_len = bytes.len();
        }
        let damage = match problem {
            Some(reason) if valid_len < bytes.len() => {
                let moved_to = path.with_extension(format!("log.damaged-{}", unix_now()));
                std::fs::write(&moved_to, &bytes[valid_len..]).map_err(io_err(&moved_to))?;
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
                f.set_len(valid_len as u64).and_then(|_| f.sync_all()).map_err(io_err(&path))?;
                let d = LedgerDamage {
                    valid_entries: kept.len() as u64,
                    bytes_moved_aside: (bytes.len() - valid_len) as u64,
                    moved_to: moved_to.display().to_string(),
                    reason,
                };
                tracing::error!(
                    valid_entries = d.valid_entries, bytes = d.bytes_moved_aside, moved_to = %d.moved_to,
                    reason = %d.reason, "ledger log was damaged; kept its valid prefix"
                );
                Some(d)
            }
            _ => None,
        };
        let height = kept.len() as u64;
        let head = kept.last().map(|e| e.hash.clone()).unwrap_or_else(|| GENESIS_PREV.to_string());
        let now = unix_now();
        let mut tx_nonces = HashMap::new();
        for e in kept.iter().filter(|e| now.saturating_sub(e.env.time) <= 4 * MAX_TX_SKEW_SECS) {
            tx_nonces.insert((e.tx.body.sender.clone(), e.tx.body.nonce.clone()), e.env.time);
        }
        let ledger = Ledger {
            orderer: marker.exists(),
            path: path.clone(),
            damage,
            heights: tokio::sync::watch::Sender::new(height),
            inner: Mutex::new(Inner {
                file: None,
                state,
                height,
                head,
                entries: kept,
                tx_nonces,
                query_nonces: HashMap::new(),
            }),
        };
        let mut ledger = ledger;
        if height == 0 {
            if let Some(key) = admin_key {
                std::fs::write(&marker, b"this node created the ledger's genesis and orders its transactions\n")
                    .map_err(io_err(&marker))?;
                ledger.orderer = true;
                let admin = crate::account::address(key);
                let msg = serde_json::json!({"genesis": {
                    "admin": admin, "chain_id": chain_id, "contract_address": contract_address(chain_id)
                }});
                let nonce = hex::encode(random32()?);
                let tx = SignedTx::sign(key, &nonce, now, msg)?;
                ledger.submit(tx)?;
                tracing::info!(admin = %admin, chain_id, "ledger created: this node orders the contracts' transactions");
            }
        } else if let Some(key) = admin_key {
            let current = ledger.status().admin;
            if crate::account::address(key) != current {
                tracing::warn!(admin = %current, "--admin-key ignored: the ledger already exists and names another admin");
            }
        }
        Ok(ledger)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Orders, applies and durably appends a transaction. Only the orderer does this.
    pub fn submit(&self, tx: SignedTx) -> Result<Receipt, LedgerError> {
        let tx = tx.normalized();
        if !self.orderer {
            return Err(if self.lock().height == 0 { LedgerError::NoLedger } else { LedgerError::NotOrderer });
        }
        let now = unix_now();
        let skew = now.abs_diff(tx.body.timestamp);
        if skew > MAX_TX_SKEW_SECS {
            return Err(LedgerError::Stale { skew });
        }
        let mut inner = self.lock();
        let nonce_key = (tx.body.sender.clone(), tx.body.nonce.clone());
        if inner.tx_nonces.contains_key(&nonce_key) {
            return Err(LedgerError::Replayed);
        }
        let height = inner.height;
        let (chain_id, contract_address) = if height == 0 {
            let g = &tx.body.msg["genesis"];
            (
                g["chain_id"].as_str().unwrap_or_default().to_string(),
                g["contract_address"].as_str().unwrap_or_default().to_string(),
            )
        } else {
            (inner.state.chain_id.clone(), inner.state.contract_address.clone())
        };
        let env = Env { time: now, random: random32()?, contract_address, chain_id };
        let mut next = inner.state.clone();
        let answer = next.apply(&env, &tx, height)?;
        let hash = Entry::compute_hash(height, &inner.head, &env, &tx)?;
        let entry = Entry { height, prev_hash: inner.head.clone(), env, tx, hash: hash.clone() };
        self.append(&mut inner, entry, next)?;
        drop(inner);
        self.heights.send_replace(height + 1);
        Ok(Receipt { height, hash, answer })
    }

    /// Appends a checked entry durably and makes `next` the state.
    fn append(&self, inner: &mut Inner, entry: Entry, next: LedgerState) -> Result<(), LedgerError> {
        let json =
            serde_json::to_vec(&entry).map_err(|e| LedgerError::Io { path: "entry".into(), reason: e.to_string() })?;
        if json.len() > MAX_ENTRY_BYTES {
            return Err(LedgerError::Contract(ContractError::invalid("transaction", "larger than 1 MiB")));
        }
        let path = self.path.clone();
        if inner.file.is_none() {
            inner.file =
                Some(std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_err(&path))?);
        }
        if let Some(f) = inner.file.as_mut() {
            let mut frame = Vec::with_capacity(json.len() + 4);
            frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
            frame.extend_from_slice(&json);
            f.write_all(&frame).and_then(|_| f.sync_data()).map_err(io_err(&path))?;
        }
        inner.state = next;
        inner.height += 1;
        inner.head = entry.hash.clone();
        inner.tx_nonces.insert((entry.tx.body.sender.clone(), entry.tx.body.nonce.clone()), entry.env.time);
        inner.entries.push(entry);
        Ok(())
    }

    /// Applies an entry ordered by another node (replication): it must extend this log exactly
    /// (height and previous hash), its hash must be right, and its transaction must verify and
    /// apply. Returns false for an entry this log already holds (the same one).
    pub fn append_replicated(&self, entry: Entry) -> Result<bool, LedgerError> {
        let mut inner = self.lock();
        if entry.height < inner.height {
            let same = inner.entries.get(entry.height as usize).is_some_and(|e| e.hash == entry.hash);
            return if same { Ok(false) } else { Err(LedgerError::Fork { height: entry.height }) };
        }
        if entry.height > inner.height {
            return Err(LedgerError::Gap { have: inner.height, got: entry.height });
        }
        if entry.prev_hash != inner.head {
            return Err(LedgerError::Fork { height: entry.height });
        }
        let hash = Entry::compute_hash(entry.height, &entry.prev_hash, &entry.env, &entry.tx)?;
        if hash != entry.hash {
            return Err(LedgerError::Contract(ContractError::invalid("entry", "its hash does not match its content")));
        }
        let mut next = inner.state.clone();
        next.apply(&entry.env, &entry.tx, entry.height)?;
        let height = entry.height;
        self.append(&mut inner, entry, next)?;
        drop(inner);
        self.heights.send_replace(height + 1);
        Ok(true)
    }

    pub fn is_orderer(&self) -> bool {
        self.orderer
    }

    pub fn height(&self) -> u64 {
        self.lock().height
    }

    /// Watches the height (each commit, local or replicated).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.heights.subscribe()
    }

    /// Answers a contract query (JSON in the published shape).
    pub fn query(&self, query: &serde_json::Value) -> Result<serde_json::Value, LedgerError> {
        let q = ContractQuery::parse(query)?;
        let mut inner = self.lock();
        if inner.height == 0 {
            return Err(LedgerError::NoLedger);
        }
        let now = unix_now();
        let env = Env {
            time: now,
            random: [0; 32],
            contract_address: inner.state.contract_address.clone(),
            chain_id: inner.state.chain_id.clone(),
        };
        let Inner { state, query_nonces, .. } = &mut *inner;
        let mut guard = TimedNonces { seen: query_nonces, now };
        Ok(state.query(&env, &q, &mut guard)?)
    }

    pub fn status(&self) -> LedgerStatus {
        let inner = self.lock();
        LedgerStatus {
            height: inner.height,
            head_hash: inner.head.clone(),
            admin: inner.state.admin().to_string(),
            chain_id: inner.state.chain_id.clone(),
            contract_address: inner.state.contract_address.clone(),
            orderer: self.orderer,
            damage: self.damage.clone(),
        }
    }

    /// A copy of the contracts' state.
    pub fn state(&self) -> LedgerState {
        self.lock().state.clone()
    }

    /// Reads the contracts' state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&LedgerState) -> R) -> R {
        f(&self.lock().state)
    }

    /// Entries from `from` on, at most `limit` (for replication and inspection).
    pub fn entries(&self, from: u64, limit: usize) -> Vec<Entry> {
        let inner = self.lock();
        inner.entries.iter().skip(from as usize).take(limit).cloned().collect()
    }
}

/// Splits the log into entries, checking each frame's JSON and chain link. Returns the entries
/// with the byte offset where each ends, the length of the well-formed prefix, and why parsing
/// stopped early (if it did).
fn parse_and_check(bytes: &[u8]) -> (Vec<(Entry, usize)>, usize, Option<String>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut prev = GENESIS_PREV.to_string();
    while pos < bytes.len() {
        let height = out.len() as u64;
        if bytes.len() - pos < 4 {
            return (out, pos, Some(format!("entry {height}: truncated length prefix")));
        }
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]) as usize;
        if len > MAX_ENTRY_BYTES || bytes.len() - pos - 4 < len {
            return (out, pos, Some(format!("entry {height}: truncated or oversize record")));
        }
        let entry: Entry = match serde_json::from_slice(&bytes[pos + 4..pos + 4 + len]) {
            Ok(e) => e,
            Err(e) => return (out, pos, Some(format!("entry {height}: not a valid entry: {e}"))),
        };
        if let Err(e) = entry.check_link(height, &prev) {
            return (out, pos, Some(e.to_string()));
        }
        prev = entry.hash.clone();
        pos += 4 + len;
        out.push((entry, pos));
    }
    (out, pos, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("key")
    }

    fn tx(seed: u8, n: u32, msg: serde_json::Value) -> SignedTx {
        SignedTx::sign(&key(seed), &format!("nonce{n:016}"), unix_now(), msg).expect("sign")
    }

    fn sub(seed: u8) -> String {
        prag_proto::account::public_key_hex(&k256::ecdsa::VerifyingKey::from(&key(seed)))
    }

    #[test]
    fn replicated_entries_are_checked_before_they_are_appended() {
        let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let admin = key(1);
        let orderer = Ledger::open(a.path(), Some(&admin), "prag-test").expect("open");
        for i in 0..3u8 {
            orderer
                .submit(tx(1, i.into(), serde_json::json!({"register_subscriber": {"public_key": sub(10 + i)}})))
                .expect("submit");
        }
        let follower = Ledger::open(b.path(), None, "prag-test").expect("open");
        assert!(!follower.is_orderer());
        let entries = orderer.entries(0, 100);
        assert!(matches!(follower.append_replicated(entries[1].clone()), Err(LedgerError::Gap { have: 0, got: 1 })));
        let mut forged = entries[0].clone();
        forged.env.time += 1;
        assert!(follower.append_replicated(forged).is_err(), "an entry whose hash does not match is refused");
        for e in &entries {
            assert!(follower.append_replicated(e.clone()).expect("append"));
        }
        assert!(!follower.append_replicated(entries[2].clone()).expect("duplicate"), "a known entry is a no-op");
        let mut other = entries[2].clone();
        other.hash = "00".repeat(32);
        assert!(matches!(follower.append_replicated(other), Err(LedgerError::Fork { height: 2 })));
        assert_eq!(follower.status().head_hash, orderer.status().head_hash);
        assert_eq!(follower.state(), orderer.state());
        // A follower never orders, and its log replays to the same state after a restart.
        assert!(matches!(
            follower.submit(tx(1, 50, serde_json::json!({"register_subscriber": {"public_key": sub(30)}}))),
            Err(LedgerError::NotOrderer)
        ));
        drop(follower);
        let again = Ledger::open(b.path(), None, "prag-test").expect("reopen");
        assert_eq!(again.state(), orderer.state());
    }

    #[test]
    fn append_restart_same_state_and_truncated_tail_keeps_prefix() {
        let dir = tempfile::tempdir().expect("tmp");
        let admin = key(1);
        let ledger = Ledger::open(dir.path(), Some(&admin), "prag-test").expect("open");
        assert!(ledger.status().orderer);
        for i in 0..5u8 {
            ledger
                .submit(tx(1, i.into(), serde_json::json!({"register_subscriber": {"public_key": sub(10 + i)}})))
                .expect("submit");
        }
        let plaintext = "sk-plaintext-key-must-not-be-stored-anywhere-0123456789";
        ledger.submit(tx(1, 99, serde_json::json!({"add_api_key": {"api_key": plaintext}}))).expect("api key");
        let state = ledger.state();
        let status = ledger.status();
        assert_eq!(status.height, 7);
        drop(ledger);

        // The plaintext API key is nowhere in the data directory.
        let hits = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .filter(|e| {
                std::fs::read(e.path()).unwrap_or_default().windows(plaintext.len()).any(|w| w == plaintext.as_bytes())
            })
            .count();
        assert_eq!(hits, 0);

        let reopened = Ledger::open(dir.path(), None, "prag-test").expect("reopen");
        assert_eq!(reopened.state(), state);
        assert_eq!(reopened.status().head_hash, status.head_hash);
        assert!(reopened.status().damage.is_none());
        drop(reopened);

        // Cut the file in the middle of the last record.
        let log = dir.path().join("ledger.log");
        let len = std::fs::metadata(&log).expect("meta").len();
        let f = std::fs::OpenOptions::new().write(true).open(&log).expect("open");
        f.set_len(len - 20).expect("truncate");
        let damaged = Ledger::open(dir.path(), None, "prag-test").expect("reopen damaged");
        let st = damaged.status();
        let d = st.damage.clone().expect("damage reported");
        assert_eq!((st.height, d.valid_entries), (6, 6));
        assert!(d.reason.contains("truncated"), "{}", d.reason);
        assert!(std::path::Path::new(&d.moved_to).exists());
        // The valid prefix: 5 subscribers still active, the API key entry (the cut one) gone.
        let s = damaged.state();
        assert!((0..5).all(|i| s.subscription.is_active(&sub(10 + i))));
        assert!(!s.subscription.api_key_valid(plaintext));
        // And the node keeps appending after the prefix.
        damaged
            .submit(tx(1, 100, serde_json::json!({"add_api_key": {"api_key": plaintext}})))
            .expect("append after repair");
        drop(damaged);
        let again = Ledger::open(dir.path(), None, "prag-test").expect("reopen");
        assert!(again.status().damage.is_none());
        assert!(again.state().subscription.api_key_valid(plaintext));
    }

    #[test]
    fn corrupted_middle_entry_keeps_the_entries_before_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = Ledger::open(dir.path(), Some(&key(1)), "prag-test").expect("open");
        for i in 0..3u8 {
            ledger
                .submit(tx(1, i.into(), serde_json::json!({"register_subscriber": {"public_key": sub(20 + i)}})))
                .expect("submit");
        }
        drop(ledger);
        let log = dir.path().join("ledger.log");
        let mut bytes = std::fs::read(&log).expect("read");
        // Flip a byte inside entry 2's JSON (a digit of a hex field keeps it valid JSON but breaks the hash).
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let second_sub = sub(21);
        let at = text.find(&second_sub).expect("entry 2 present") + 10;
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        std::fs::write(&log, &bytes).expect("write");
        let reopened = Ledger::open(dir.path(), None, "prag-test").expect("reopen");
        let st = reopened.status();
        assert_eq!(st.height, 2, "genesis and the first subscriber survive");
        assert!(st.damage.is_some());
        assert!(reopened.state().subscription.is_active(&sub(20)));
        assert!(!reopened.state().subscription.is_active(&sub(22)));
    }

    #[test]
    fn orderer_refuses_stale_replayed_and_refused_transactions() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = Ledger::open(dir.path(), Some(&key(1)), "prag-test").expect("open");
        let t = tx(1, 1, serde_json::json!({"register_subscriber": {"public_key": sub(30)}}));
        ledger.submit(t.clone()).expect("first");
        assert!(matches!(ledger.submit(t), Err(LedgerError::Replayed)));
        let old = SignedTx::sign(
            &key(1),
            "nonce0000000000000002",
            unix_now() - 300,
            serde_json::json!({"register_subscriber": {"public_key": sub(31)}}),
        )
        .expect("s");
        assert!(matches!(ledger.submit(old), Err(LedgerError::Stale { .. })));
        let height = ledger.status().height;
        assert!(matches!(
            ledger.submit(tx(2, 3, serde_json::json!({"register_subscriber": {"public_key": sub(32)}}))),
            Err(LedgerError::Contract(ContractError::Unauthorized { .. }))
        ));
        assert_eq!(ledger.status().height, height, "refused transactions are not logged");
        // A node without a ledger says how to get one.
        let other = tempfile::tempdir().expect("tmp");
        let none = Ledger::open(other.path(), None, "prag-test").expect("open");
        assert!(matches!(
            none.submit(tx(1, 4, serde_json::json!({"claim": {"epoch": 1}}))),
            Err(LedgerError::NoLedger)
        ));
    }
}
