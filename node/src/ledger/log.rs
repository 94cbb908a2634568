//! The ledger's file: a durable, hash-chained log of signed transactions, replayed into
//! `prag_proto::ledger::LedgerState` at start. Synchronous and single-owner: the ledger service's
//! writer thread owns it, so no async task and no network loop ever waits on its disk.
//!
//! ```text
//! <data>/ledger.log        frames of [u32 little-endian length][JSON entry], fsynced per append
//! <data>/ledger.orderer    present on the node that created the genesis (the admin's node),
//!                          which is the only one that appends; others replicate its log
//! ```
//! On start every entry's link, hash and signature are checked and it is re-applied. The first
//! entry that fails (a truncated frame, bad JSON, a broken link, a refused transaction) ends the
//! valid prefix: the damage is reported, the tail is moved aside to `ledger.log.damaged-<time>`,
//! and the node goes on with the prefix. A valid prefix is never lost.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k256::ecdsa::SigningKey;
use prag_proto::contracts::{ContractError, Env};
use prag_proto::ledger::{Entry, GENESIS_PREV, LedgerState, SignedTx};
use serde::{Deserialize, Serialize};

use crate::auth::unix_now;
use crate::config::GenesisConfig;
use crate::error::{Error, ErrorKind};

/// How far a transaction's timestamp may be from the orderer's clock, in seconds.
pub(crate) const MAX_TX_SKEW_SECS: u64 = 60;
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
    #[error("ledger file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("replicated entry {got} does not follow this log's height {have}: catch up first")]
    Gap { have: u64, got: u64 },
    #[error("replicated entry {height} conflicts with this log (another history)")]
    Fork { height: u64 },
}

impl From<LedgerError> for Error {
    fn from(e: LedgerError) -> Self {
        use ContractError as C;
        let kind = match &e {
            LedgerError::Contract(C::Unauthorized { .. }) => ErrorKind::Forbidden,
            LedgerError::Contract(C::Market { code, .. }) => {
                use prag_proto::contracts::market::error::{Class, MarketCode};
                match MarketCode::from_code(*code).map(MarketCode::class) {
                    Some(Class::Forbidden) => ErrorKind::Forbidden,
                    Some(Class::NotFound) => ErrorKind::NotFound,
                    _ => ErrorKind::BadRequest,
                }
            }
            LedgerError::Contract(C::NotFound { .. }) => ErrorKind::NotFound,
            LedgerError::Contract(_) => ErrorKind::BadRequest,
            LedgerError::Stale { .. } => ErrorKind::Stale,
            LedgerError::Replayed => ErrorKind::Replayed,
            LedgerError::NoLedger => ErrorKind::NoLedger,
            LedgerError::NotOrderer => ErrorKind::NotOrderer,
            LedgerError::Gap { .. } | LedgerError::Fork { .. } => ErrorKind::Conflict,
            LedgerError::Io { .. } => return Error::internal("the ledger's file failed", e),
        };
        Error::new(kind, e.to_string())
    }
}

/// What was wrong with the log found at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerDamage {
    pub valid_entries: u64,
    pub bytes_moved_aside: u64,
    pub moved_to: String,
    pub reason: String,
}

/// The ledger as `GET /v1/ledger/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerStatus {
    /// Entries in the log (the next entry's height).
    pub height: u64,
    pub head_hash: String,
    pub admin: String,
    pub chain_id: String,
    pub contract_address: String,
    pub orderer: bool,
    /// SHA-256 of the replayed state: equal on every node at the same height (in
    /// `GET /v1/ledger/status`; empty where the status is read for something else).
    #[serde(default)]
    pub state_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<LedgerDamage>,
}

/// What a submitted transaction became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub height: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub answer: Option<serde_json::Value>,
}

/// The contracts' address for a chain id: `bech32("secret", SHA-256("prag/contracts/" ‖ chain)[..20])`.
pub fn contract_address(chain_id: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(format!("prag/contracts/{chain_id}").as_bytes());
    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse_unchecked("secret"), &digest[..20]).unwrap_or_default()
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io { path: path.display().to_string(), source }
}

/// The log file and the state it replays to.
pub(crate) struct LedgerLog {
    path: PathBuf,
    /// The orderer's randomness seed (None on a node that does not order).
    random_seed: Option<zeroize::Zeroizing<[u8; 32]>>,
    orderer: bool,
    damage: Option<LedgerDamage>,
    file: Option<std::fs::File>,
    state: Arc<LedgerState>,
    height: u64,
    head: String,
    /// (sender, nonce) → when, for transactions recent enough to be replayed.
    tx_nonces: HashMap<(String, String), u64>,
}

/// What the log found at start: the log, and its entries in order.
pub(crate) struct Opened {
    pub log: LedgerLog,
    pub entries: Vec<Entry>,
}

impl LedgerLog {
    /// Opens `<data>/ledger.log`, replaying it. With `admin_key` and no log yet, writes the
    /// genesis that makes that key the contracts' admin, and this node the orderer.
    pub(crate) fn open(
        data: &Path,
        admin_key: Option<&SigningKey>,
        chain_id: &str,
        genesis: &GenesisConfig,
    ) -> Result<Opened, LedgerError> {
        let path = data.join("ledger.log");
        let marker = data.join("ledger.orderer");
        let seed_path = data.join(RANDOM_SEED_FILE);
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
                Some(move_damaged_tail(&path, &bytes, valid_len, kept.len(), reason)?)
            }
            _ => None,
        };
        let now = unix_now();
        let tx_nonces = kept
            .iter()
            .filter(|e| now.saturating_sub(e.env.time) <= 4 * MAX_TX_SKEW_SECS)
            .map(|e| ((e.tx.body.sender.clone(), e.tx.body.nonce.clone()), e.env.time))
            .collect();
        let orderer = marker.exists();
        let mut log = LedgerLog {
            random_seed: if orderer { Some(load_or_create_seed(&seed_path)?) } else { None },
            orderer,
            height: kept.len() as u64,
            head: kept.last().map(|e| e.hash.clone()).unwrap_or_else(|| GENESIS_PREV.to_string()),
            path,
            damage,
            file: None,
            state: Arc::new(state),
            tx_nonces,
        };
        let mut entries = kept;
        match admin_key {
            Some(key) if log.height == 0 => {
                std::fs::write(&marker, b"this node created the ledger's genesis and orders its transactions\n")
                    .map_err(io_err(&marker))?;
                log.orderer = true;
                log.random_seed = Some(load_or_create_seed(&seed_path)?);
                let admin = crate::account::address(key);
                let accounts: Vec<serde_json::Value> = genesis
                    .accounts
                    .iter()
                    .map(|(a, n)| serde_json::json!({"address": a, "amount": n.to_string()}))
                    .collect();
                let mut fields = serde_json::json!({
                    "admin": admin, "chain_id": chain_id, "contract_address": contract_address(chain_id),
                    "market_epoch_secs": genesis.market_epoch_secs,
                });
                if !accounts.is_empty() {
                    fields["accounts"] = serde_json::Value::Array(accounts);
                }
                if genesis.allow_mint {
                    fields["allow_mint"] = serde_json::Value::Bool(true);
                }
                let msg = serde_json::json!({ "genesis": fields });
                let nonce = crate::crypto::random_hex::<32>().map_err(|e| LedgerError::Io {
                    path: "randomness".into(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let tx = SignedTx::sign(key, &nonce, now, msg)?;
                let (_, entry) = log.submit(tx, now)?;
                entries.push(entry);
                tracing::info!(admin = %admin, chain_id, "ledger created: this node orders the contracts' transactions");
            }
            Some(key) if crate::account::address(key) != log.state.admin() => {
                tracing::warn!(admin = %log.state.admin(), "--admin-key ignored: the ledger already exists and names another admin");
            }
            _ => {}
        }
        Ok(Opened { log, entries })
    }

    pub(crate) fn is_orderer(&self) -> bool {
        self.orderer
    }

    pub(crate) fn height(&self) -> u64 {
        self.height
    }

    pub(crate) fn state(&self) -> &Arc<LedgerState> {
        &self.state
    }

    pub(crate) fn status(&self) -> LedgerStatus {
        LedgerStatus {
            height: self.height,
            head_hash: self.head.clone(),
            admin: self.state.admin().to_string(),
            chain_id: self.state.chain_id.clone(),
            contract_address: self.state.contract_address.clone(),
            orderer: self.orderer,
            state_hash: String::new(),
            damage: self.damage.clone(),
        }
    }

    /// Orders, applies and durably appends a transaction (the orderer only). `now` and the
    /// randomness of this height (committed to by the previous entry) become its environment.
    pub(crate) fn submit(&mut self, tx: SignedTx, now: u64) -> Result<(Receipt, Entry), LedgerError> {
        let tx = tx.normalized();
        if !self.orderer {
            return Err(if self.height == 0 { LedgerError::NoLedger } else { LedgerError::NotOrderer });
        }
        let skew = now.abs_diff(tx.body.timestamp);
        if skew > MAX_TX_SKEW_SECS {
            return Err(LedgerError::Stale { skew });
        }
        if self.tx_nonces.contains_key(&(tx.body.sender.clone(), tx.body.nonce.clone())) {
            return Err(LedgerError::Replayed);
        }
        let height = self.height;
        let (chain_id, contract_address) = if height == 0 {
            let g = &tx.body.msg["genesis"];
            (
                g["chain_id"].as_str().unwrap_or_default().to_string(),
                g["contract_address"].as_str().unwrap_or_default().to_string(),
            )
        } else {
            (self.state.chain_id.clone(), self.state.contract_address.clone())
        };
        let seed = self.random_seed.as_ref().ok_or(LedgerError::NotOrderer)?;
        let random = height_random(seed, height);
        let next = height_random(seed, height + 1);
        let next_random_sha256 = Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(next)));
        let env = Env { time: now, random, contract_address, chain_id, next_random_sha256 };
        let mut next = (*self.state).clone();
        let answer = next.apply(&env, &tx, height)?;
        let hash = Entry::compute_hash(height, &self.head, &env, &tx)?;
        let entry = Entry { height, prev_hash: self.head.clone(), env, tx, hash: hash.clone() };
        self.append(&entry, next)?;
        if self.tx_nonces.len() > 100_000 {
            self.tx_nonces.retain(|_, t| now.saturating_sub(*t) <= 4 * MAX_TX_SKEW_SECS);
        }
        Ok((Receipt { height, hash, answer }, entry))
    }

    /// Applies an entry ordered by another node: it must extend this log exactly (height and
    /// previous hash), its hash must be right, and its transaction must verify and apply.
    /// `known_hash` gives the hash of an entry this log already holds, to tell a duplicate (Ok
    /// false) from a fork.
    pub(crate) fn append_replicated(
        &mut self,
        entry: &Entry,
        known_hash: impl Fn(u64) -> Option<String>,
    ) -> Result<bool, LedgerError> {
        if entry.height < self.height {
            return if known_hash(entry.height).as_deref() == Some(entry.hash.as_str()) {
                Ok(false)
            } else {
                Err(LedgerError::Fork { height: entry.height })
            };
        }
        if entry.height > self.height {
            return Err(LedgerError::Gap { have: self.height, got: entry.height });
        }
        if entry.prev_hash != self.head {
            return Err(LedgerError::Fork { height: entry.height });
        }
        let hash = Entry::compute_hash(entry.height, &entry.prev_hash, &entry.env, &entry.tx)?;
        if hash != entry.hash {
            return Err(LedgerError::Contract(ContractError::invalid("entry", "its hash does not match its content")));
        }
        let mut next = (*self.state).clone();
        next.apply(&entry.env, &entry.tx, entry.height)?;
        self.append(entry, next)?;
        Ok(true)
    }

    /// Appends a checked entry durably (write and fsync), then makes `next` the state.
    fn append(&mut self, entry: &Entry, next: LedgerState) -> Result<(), LedgerError> {
        let json = serde_json::to_vec(entry)
            .map_err(|e| LedgerError::Io { path: "entry".into(), source: std::io::Error::other(e) })?;
        if json.len() > MAX_ENTRY_BYTES {
            return Err(LedgerError::Contract(ContractError::invalid("transaction", "larger than 1 MiB")));
        }
        if self.file.is_none() {
            let file =
                std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(io_err(&self.path))?;
            self.file = Some(file);
        }
        if let Some(f) = self.file.as_mut() {
            let mut frame = Vec::with_capacity(json.len() + 4);
            frame.extend_from_slice(&(json.len() as u32).to_le_bytes());
            frame.extend_from_slice(&json);
            f.write_all(&frame).and_then(|_| f.sync_data()).map_err(io_err(&self.path))?;
        }
        self.state = Arc::new(next);
        self.height += 1;
        self.head = entry.hash.clone();
        self.tx_nonces.insert((entry.tx.body.sender.clone(), entry.tx.body.nonce.clone()), entry.env.time);
        Ok(())
    }
}

/// The orderer's secret from which every entry's randomness derives (0600, never sent).
pub(crate) const RANDOM_SEED_FILE: &str = "ledger.random-seed";

/// The randomness of the entry at `height`: `HMAC-SHA256(seed, "prag-ledger-random-v1" ‖ height)`.
/// Derived rather than drawn, so the orderer can reveal, after a restart, the value the previous
/// entry committed to; nobody without the seed can predict it.
fn height_random(seed: &zeroize::Zeroizing<[u8; 32]>, height: u64) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed.as_slice());
    let msg = [b"prag-ledger-random-v1".as_slice(), &height.to_le_bytes()].concat();
    let tag = ring::hmac::sign(&key, &msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Reads the orderer's seed, creating it (0600) on first use.
fn load_or_create_seed(path: &Path) -> Result<zeroize::Zeroizing<[u8; 32]>, LedgerError> {
    if let Ok(bytes) = std::fs::read(path) {
        let bytes = zeroize::Zeroizing::new(bytes);
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| LedgerError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("the ledger's randomness seed is not 32 bytes"),
        })?;
        return Ok(zeroize::Zeroizing::new(seed));
    }
    let seed =
        zeroize::Zeroizing::new(crate::crypto::random_bytes::<32>().map_err(|e| LedgerError::Io {
            path: "randomness".into(),
            source: std::io::Error::other(e.to_string()),
        })?);
    crate::crypto::write_private_file(path, seed.as_slice()).map_err(|e| LedgerError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(seed)
}

/// Moves the bytes after the valid prefix aside, truncates the log to the prefix, and says so.
fn move_damaged_tail(
    path: &Path,
    bytes: &[u8],
    valid_len: usize,
    valid_entries: usize,
    reason: String,
) -> Result<LedgerDamage, LedgerError> {
    let moved_to = path.with_extension(format!("log.damaged-{}", unix_now()));
    std::fs::write(&moved_to, &bytes[valid_len..]).map_err(io_err(&moved_to))?;
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
    f.set_len(valid_len as u64).and_then(|_| f.sync_all()).map_err(io_err(path))?;
    let d = LedgerDamage {
        valid_entries: valid_entries as u64,
        bytes_moved_aside: (bytes.len() - valid_len) as u64,
        moved_to: moved_to.display().to_string(),
        reason,
    };
    tracing::error!(
        valid_entries = d.valid_entries, bytes = d.bytes_moved_aside, moved_to = %d.moved_to,
        reason = %d.reason, "ledger log was damaged; kept its valid prefix"
    );
    Ok(d)
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
