//! The ledger service: the one way into the contracts' ledger.
//!
//! - **Writes** go to a writer thread that owns the log file ([`LedgerLog`]): appending and
//!   fsyncing happen there, one at a time, and callers await the answer. No async task and no
//!   network loop ever does disk work for the ledger.
//! - **Reads** use the last published snapshot (state, status, entries): they never wait for a
//!   write, let alone a disk.
//! - **The transaction gate** ([`TxGate`]) is applied by the orderer to every transaction it is
//!   asked to order — over HTTP or forwarded by a peer alike — after the signature is checked
//!   and before the contract sees it.
//! - A node that does not order forwards transactions to the connected peer that does; refusals
//!   come back typed ([`WireError`]), so a client sees the orderer's status and code.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures::future::BoxFuture;
use k256::ecdsa::SigningKey;
use parking_lot::{Mutex, RwLock};
use prag_proto::contracts::Env;
use prag_proto::contracts::worker::ReplayGuard;
use prag_proto::ledger::{ContractQuery, Entry, LedgerState, SignedTx};
use tokio::sync::{mpsc, oneshot, watch};

use super::log::{LedgerError, LedgerLog, LedgerStatus, MAX_TX_SKEW_SECS, Receipt};
use crate::auth::unix_now;
use crate::config::GenesisConfig;
use crate::error::{Error, ErrorKind, Result, WireError};
use crate::net::Net;
use crate::net::protocol::ledger::{LedgerRequest, LedgerResponse};

/// What the orderer checks of a transaction before the contract sees it (the attestation gate at
/// registration). `state` is the contracts' state it would apply to.
pub(crate) trait TxGate: Send + Sync {
    fn check<'a>(&'a self, tx: &'a SignedTx, state: &'a LedgerState) -> BoxFuture<'a, Result<()>>;
}

/// No gate: for writing history offline ([`LedgerService::open_ungated`]).
struct NoGate;

impl TxGate for NoGate {
    fn check<'a>(&'a self, _: &'a SignedTx, _: &'a LedgerState) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the writer thread is asked to do.
enum WriteOp {
    Submit(SignedTx, oneshot::Sender<Result<Receipt, LedgerError>>),
    Replicate(Vec<Entry>, oneshot::Sender<Replicated>),
}

/// How a batch of replicated entries went.
#[derive(Debug, Default)]
pub(crate) struct Replicated {
    /// Entries appended.
    pub appended: usize,
    /// The batch does not follow this log: entries are missing before it.
    pub gap: bool,
    /// An entry that was refused, and why (the rest of the batch was not applied).
    pub refused: Option<String>,
}

/// What readers see; replaced whole after every append.
struct Snapshot {
    state: Arc<LedgerState>,
    status: LedgerStatus,
    /// The state's hash, computed the first time someone asks at this height (it walks the
    /// whole state: not on every append, not on every status read).
    state_hash: std::sync::OnceLock<String>,
}

impl Snapshot {
    fn new(log: &LedgerLog) -> Self {
        Snapshot { state: Arc::clone(log.state()), status: log.status(), state_hash: std::sync::OnceLock::new() }
    }
}

/// Shared between the service and its writer thread.
struct Published {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Every entry, in order; the writer appends after the entry is durable.
    entries: RwLock<Vec<Entry>>,
    heights: watch::Sender<u64>,
}

impl Published {
    fn publish(&self, log: &LedgerLog, new: Option<Entry>) {
        if let Some(e) = new {
            self.entries.write().push(e);
        }
        *self.snapshot.write() = Arc::new(Snapshot::new(&log));
        self.heights.send_replace(log.height());
    }
}

struct Inner {
    published: Arc<Published>,
    writer: mpsc::Sender<WriteOp>,
    orderer: bool,
    gate: Arc<dyn TxGate>,
    net: Net,
    query_nonces: Mutex<HashMap<(String, String), u64>>,
}

/// The node's contracts' ledger (cheap to clone).
#[derive(Clone)]
pub struct LedgerService {
    inner: Arc<Inner>,
}

impl LedgerService {
    /// Opens `<data>/ledger.log` (writing the genesis with `admin_key` on a node without a
    /// ledger) and starts the writer thread. `net` forwards transactions when this node does not
    /// order (offline: it cannot).
    pub(crate) fn open(
        data: &std::path::Path,
        admin_key: Option<&SigningKey>,
        chain_id: &str,
        genesis: &GenesisConfig,
        gate: Arc<dyn TxGate>,
        net: Net,
    ) -> Result<LedgerService> {
        let opened = LedgerLog::open(data, admin_key, chain_id, genesis)?;
        let log = opened.log;
        let published = Arc::new(Published {
            snapshot: RwLock::new(Arc::new(Snapshot::new(&log))),
            entries: RwLock::new(opened.entries),
            heights: watch::Sender::new(log.height()),
        });
        let orderer = log.is_orderer();
        let (writer, ops) = mpsc::channel(256);
        let shared = Arc::clone(&published);
        std::thread::Builder::new()
            .name("prag-ledger".into())
            .spawn(move || writer_thread(log, ops, &shared))
            .map_err(|e| Error::internal("cannot start the ledger's writer thread", e))?;
        Ok(LedgerService {
            inner: Arc::new(Inner { published, writer, orderer, gate, net, query_nonces: Mutex::new(HashMap::new()) }),
        })
    }

    /// A ledger alone and without the registration gate, for writing history before a node
    /// starts (tests, tools): what it orders, a node with a gate still judges on every request.
    pub fn open_ungated(
        data: &std::path::Path,
        admin_key: Option<&SigningKey>,
        chain_id: &str,
    ) -> Result<LedgerService> {
        Self::open(data, admin_key, chain_id, &GenesisConfig::default(), Arc::new(NoGate), Net::offline())
    }

    /// [`LedgerService::open_ungated`] with a genesis of its own (balances, minting, epochs).
    pub fn open_ungated_with(
        data: &std::path::Path,
        admin_key: Option<&SigningKey>,
        chain_id: &str,
        genesis: &GenesisConfig,
    ) -> Result<LedgerService> {
        Self::open(data, admin_key, chain_id, genesis, Arc::new(NoGate), Net::offline())
    }

    pub fn is_orderer(&self) -> bool {
        self.inner.orderer
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.inner.published.snapshot.read())
    }

    /// The contracts' state after the last append.
    pub fn state(&self) -> Arc<LedgerState> {
        Arc::clone(&self.snapshot().state)
    }

    /// The ledger's status; `state_hash` is left empty (see [`LedgerService::status_with_hash`]).
    pub fn status(&self) -> LedgerStatus {
        self.snapshot().status.clone()
    }

    /// The status with the state's hash, as `GET /v1/ledger/status` shows it: computed once per
    /// height, on the first request.
    pub fn status_with_hash(&self) -> LedgerStatus {
        let snapshot = self.snapshot();
        let mut status = snapshot.status.clone();
        status.state_hash = snapshot.state_hash.get_or_init(|| snapshot.state.state_hash()).clone();
        status
    }

    pub fn height(&self) -> u64 {
        self.snapshot().status.height
    }

    /// Watches the height (each commit, local or replicated).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.published.heights.subscribe()
    }

    /// Entries from `from` on, at most `limit`.
    pub fn entries(&self, from: u64, limit: usize) -> Vec<Entry> {
        let entries = self.inner.published.entries.read();
        entries.iter().skip(from as usize).take(limit).cloned().collect()
    }

    /// Answers a contract query (JSON in the published shape). Queries that carry a signature
    /// (with a nonce) are refused when replayed.
    pub fn query(&self, query: &serde_json::Value) -> Result<serde_json::Value> {
        let q = ContractQuery::parse(query).map_err(LedgerError::from)?;
        let snapshot = self.snapshot();
        if snapshot.status.height == 0 {
            return Err(LedgerError::NoLedger.into());
        }
        let now = unix_now();
        let env = Env {
            time: now,
            random: [0; 32],
            contract_address: snapshot.state.contract_address.clone(),
            chain_id: snapshot.state.chain_id.clone(),
            next_random_sha256: None,
        };
        let mut seen = self.inner.query_nonces.lock();
        let mut guard = TimedNonces { seen: &mut seen, now };
        Ok(snapshot.state.query(&env, &q, &mut guard).map_err(LedgerError::from)?)
    }

    /// Submits a transaction: orders it here on the orderer, or forwards it to the connected
    /// peer that orders. Either way the orderer's gate and contract decide.
    pub async fn submit(&self, tx: SignedTx) -> Result<Receipt> {
        if self.inner.orderer {
            return self.order(tx).await;
        }
        let tx = tx.normalized();
        tx.verify().map_err(|e| Error::bad_request(format!("transaction: {e}")))?;
        if self.height() == 0 && !self.inner.net.is_online() {
            return Err(LedgerError::NoLedger.into());
        }
        self.forward(tx).await
    }

    /// Orders a transaction on this node: signature, then the gate, then the contract and the
    /// log (on the writer thread). A node that does not order refuses with `not_orderer`.
    pub async fn order(&self, tx: SignedTx) -> Result<Receipt> {
        let tx = tx.normalized();
        // The signature first: nothing is fetched, verified or audited for a forgery.
        tx.verify().map_err(|e| Error::bad_request(format!("transaction: {e}")))?;
        if !self.inner.orderer {
            return Err(if self.height() == 0 { LedgerError::NoLedger } else { LedgerError::NotOrderer }.into());
        }
        let state = self.state();
        self.inner.gate.check(&tx, &state).await?;
        // The message's name only: a message's fields may hold what logs must not (reports, keys).
        let msg = tx.body.msg.as_object().and_then(|m| m.keys().next().cloned()).unwrap_or_default();
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(WriteOp::Submit(tx, reply)).await.map_err(|_| stopped())?;
        let receipt = answer.await.map_err(|_| stopped())??;
        let events: Vec<&str> = receipt
            .answer
            .as_ref()
            .and_then(|a| a.get("events"))
            .and_then(|e| e.as_array())
            .map(|es| es.iter().filter_map(|e| e.get("type").and_then(|t| t.as_str())).collect())
            .unwrap_or_default();
        tracing::info!(height = receipt.height, msg = %msg, events = %events.join(","), "ledger transaction committed");
        Ok(receipt)
    }

    /// Appends entries ordered by another node, in order, on the writer thread.
    pub(crate) async fn replicate(&self, entries: Vec<Entry>) -> Result<Replicated> {
        if entries.is_empty() {
            return Ok(Replicated::default());
        }
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(WriteOp::Replicate(entries, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }

    /// Hands `tx` to each connected peer in turn until one that orders answers.
    async fn forward(&self, tx: SignedTx) -> Result<Receipt> {
        let mut untried: VecDeque<libp2p::PeerId> = self.inner.net.connected().into();
        while let Some(peer) = untried.pop_front() {
            match self.inner.net.ask_ledger(peer, LedgerRequest::Submit(tx.clone())).await {
                Ok(LedgerResponse::Submitted(Ok(receipt))) => {
                    return serde_json::from_value(receipt)
                        .map_err(|e| Error::internal(format!("peer {peer} answered an unreadable receipt"), e));
                }
                Ok(LedgerResponse::Submitted(Err(e))) if e.kind == ErrorKind::NotOrderer => continue,
                Ok(LedgerResponse::Submitted(Err(e))) => return Err(e.into()),
                Ok(other) => tracing::debug!(peer = %peer, answer = ?other, "unexpected answer to a transaction"),
                Err(e) => tracing::debug!(peer = %peer, error = %e, "cannot forward a transaction to this peer"),
            }
        }
        Err(Error::new(
            ErrorKind::NotOrderer,
            "this node does not order transactions and no connected peer does (is the admin's node reachable?)",
        ))
    }

    /// Answers a peer's ledger request.
    pub(crate) async fn answer(&self, request: LedgerRequest) -> LedgerResponse {
        match request {
            LedgerRequest::Entries { from } => {
                LedgerResponse::Entries(self.entries(from, crate::net::protocol::ledger::CATCH_UP_BATCH as usize))
            }
            LedgerRequest::Submit(tx) => LedgerResponse::Submitted(match self.order(tx).await {
                Ok(receipt) => serde_json::to_value(receipt)
                    .map_err(|e| WireError::from(&Error::internal("cannot encode a receipt", e))),
                Err(e) => Err(WireError::from(&e)),
            }),
        }
    }
}

fn stopped() -> Error {
    Error::new(ErrorKind::Internal, "the ledger's writer thread stopped")
}

/// The writer thread: one operation at a time, each published once durable.
fn writer_thread(mut log: LedgerLog, mut ops: mpsc::Receiver<WriteOp>, published: &Published) {
    while let Some(op) = ops.blocking_recv() {
        match op {
            WriteOp::Submit(tx, reply) => {
                let result = log.submit(tx, unix_now());
                let answer = match result {
                    Ok((receipt, entry)) => {
                        published.publish(&log, Some(entry));
                        Ok(receipt)
                    }
                    Err(e) => Err(e),
                };
                let _ = reply.send(answer);
            }
            WriteOp::Replicate(entries, reply) => {
                let mut outcome = Replicated::default();
                for entry in entries {
                    let height = entry.height;
                    let known = |h: u64| published.entries.read().get(h as usize).map(|e| e.hash.clone());
                    match log.append_replicated(&entry, known) {
                        Ok(true) => {
                            published.publish(&log, Some(entry));
                            outcome.appended += 1;
                            tracing::debug!(height, "ledger entry replicated");
                        }
                        Ok(false) => {}
                        Err(LedgerError::Gap { .. }) => {
                            outcome.gap = true;
                            break;
                        }
                        Err(e) => {
                            outcome.refused = Some(format!("entry {height}: {e}"));
                            break;
                        }
                    }
                }
                let _ = reply.send(outcome);
            }
        }
    }
}

/// The replay guard of signed queries: (signer, nonce) pairs seen recently.
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

#[cfg(test)]
mod tests {
    use k256::ecdsa::SigningKey;

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).expect("key")
    }

    fn tx(seed: u8, n: u32, msg: serde_json::Value) -> SignedTx {
        SignedTx::sign(&key(seed), &format!("nonce{n:016}"), unix_now(), msg).expect("sign")
    }

    fn subscriber(seed: u8) -> serde_json::Value {
        let public_key = prag_proto::account::public_key_hex(&k256::ecdsa::VerifyingKey::from(&key(seed)));
        serde_json::json!({"register_subscriber": {"public_key": public_key}})
    }

    fn sub(seed: u8) -> String {
        prag_proto::account::public_key_hex(&k256::ecdsa::VerifyingKey::from(&key(seed)))
    }

    #[tokio::test]
    async fn replicated_entries_are_checked_before_they_are_appended() {
        let (a, b) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
        let orderer = LedgerService::open_ungated(a.path(), Some(&key(1)), "prag-test").expect("open");
        for i in 0..3u8 {
            orderer.submit(tx(1, i.into(), subscriber(10 + i))).await.expect("submit");
        }
        let follower = LedgerService::open_ungated(b.path(), None, "prag-test").expect("open");
        assert!(!follower.is_orderer());
        let entries = orderer.entries(0, 100);
        let gap = follower.replicate(vec![entries[1].clone()]).await.expect("replicate");
        assert!(gap.gap && gap.appended == 0);
        let mut forged = entries[0].clone();
        forged.env.time += 1;
        let refused = follower.replicate(vec![forged]).await.expect("replicate");
        assert!(refused.refused.is_some(), "an entry whose hash does not match is refused");
        let all = follower.replicate(entries.clone()).await.expect("replicate");
        assert_eq!((all.appended, all.gap, all.refused.is_none()), (entries.len(), false, true));
        let again = follower.replicate(vec![entries[2].clone()]).await.expect("replicate");
        assert_eq!((again.appended, again.refused.is_none()), (0, true), "a known entry is a no-op");
        let mut other = entries[2].clone();
        other.hash = "00".repeat(32);
        assert!(follower.replicate(vec![other]).await.expect("replicate").refused.is_some(), "a fork is refused");
        assert_eq!(follower.status().head_hash, orderer.status().head_hash);
        assert_eq!(*follower.state(), *orderer.state());
        // A follower never orders, and its log replays to the same state after a restart.
        let e = follower.order(tx(1, 50, subscriber(30))).await.expect_err("not the orderer");
        assert_eq!(e.kind(), ErrorKind::NotOrderer);
        drop(follower);
        let again = LedgerService::open_ungated(b.path(), None, "prag-test").expect("reopen");
        assert_eq!(*again.state(), *orderer.state());
    }

    #[tokio::test]
    async fn readers_see_each_entry_once_it_is_durable() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = LedgerService::open_ungated(dir.path(), Some(&key(1)), "prag-test").expect("open");
        let mut heights = ledger.subscribe();
        let receipt = ledger.submit(tx(1, 1, subscriber(40))).await.expect("submit");
        heights.changed().await.expect("height");
        assert_eq!(*heights.borrow(), receipt.height + 1);
        assert_eq!(ledger.height(), receipt.height + 1);
        assert!(ledger.state().subscription.is_active(&sub(40)));
        assert_eq!(ledger.entries(receipt.height, 10)[0].hash, receipt.hash);
        let log = std::fs::read(dir.path().join("ledger.log")).expect("log");
        assert!(log.windows(receipt.hash.len()).any(|w| w == receipt.hash.as_bytes()), "on disk before it is visible");
    }

    #[tokio::test]
    async fn append_restart_same_state_and_truncated_tail_keeps_prefix() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = LedgerService::open_ungated(dir.path(), Some(&key(1)), "prag-test").expect("open");
        assert!(ledger.status().orderer);
        for i in 0..5u8 {
            ledger.submit(tx(1, i.into(), subscriber(10 + i))).await.expect("submit");
        }
        let plaintext = "sk-plaintext-key-must-not-be-stored-anywhere-0123456789";
        ledger.submit(tx(1, 99, serde_json::json!({"add_api_key": {"api_key": plaintext}}))).await.expect("api key");
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

        let reopened = LedgerService::open_ungated(dir.path(), None, "prag-test").expect("reopen");
        assert_eq!(*reopened.state(), *state);
        assert_eq!(reopened.status().head_hash, status.head_hash);
        assert!(reopened.status().damage.is_none());
        drop(reopened);

        // Cut the file in the middle of the last record.
        let log = dir.path().join("ledger.log");
        let len = std::fs::metadata(&log).expect("meta").len();
        let f = std::fs::OpenOptions::new().write(true).open(&log).expect("open");
        f.set_len(len - 20).expect("truncate");
        let damaged = LedgerService::open_ungated(dir.path(), None, "prag-test").expect("reopen damaged");
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
            .await
            .expect("append after repair");
        drop(damaged);
        let again = LedgerService::open_ungated(dir.path(), None, "prag-test").expect("reopen");
        assert!(again.status().damage.is_none());
        assert!(again.state().subscription.api_key_valid(plaintext));
    }

    #[tokio::test]
    async fn corrupted_middle_entry_keeps_the_entries_before_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = LedgerService::open_ungated(dir.path(), Some(&key(1)), "prag-test").expect("open");
        for i in 0..3u8 {
            ledger.submit(tx(1, i.into(), subscriber(20 + i))).await.expect("submit");
        }
        drop(ledger);
        let log = dir.path().join("ledger.log");
        let mut bytes = std::fs::read(&log).expect("read");
        // Flip a byte inside entry 2's JSON (a digit of a hex field keeps it valid JSON but breaks the hash).
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let at = text.find(&sub(21)).expect("entry 2 present") + 10;
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        std::fs::write(&log, &bytes).expect("write");
        let reopened = LedgerService::open_ungated(dir.path(), None, "prag-test").expect("reopen");
        let st = reopened.status();
        assert_eq!(st.height, 2, "genesis and the first subscriber survive");
        assert!(st.damage.is_some());
        assert!(reopened.state().subscription.is_active(&sub(20)));
        assert!(!reopened.state().subscription.is_active(&sub(22)));
    }

    #[tokio::test]
    async fn orderer_refuses_stale_replayed_and_refused_transactions() {
        let dir = tempfile::tempdir().expect("tmp");
        let ledger = LedgerService::open_ungated(dir.path(), Some(&key(1)), "prag-test").expect("open");
        let t = tx(1, 1, subscriber(30));
        ledger.submit(t.clone()).await.expect("first");
        assert_eq!(ledger.submit(t).await.expect_err("replay").kind(), ErrorKind::Replayed);
        let old = SignedTx::sign(&key(1), "nonce0000000000000002", unix_now() - 300, subscriber(31)).expect("s");
        assert_eq!(ledger.submit(old).await.expect_err("stale").kind(), ErrorKind::Stale);
        let height = ledger.status().height;
        let e = ledger.submit(tx(2, 3, subscriber(32))).await.expect_err("not the admin");
        assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
        assert!(e.to_string().contains("refused by the contract: unauthorized"), "{e}");
        assert_eq!(ledger.status().height, height, "refused transactions are not logged");
        // A node without a ledger says how to get one.
        let other = tempfile::tempdir().expect("tmp");
        let none = LedgerService::open_ungated(other.path(), None, "prag-test").expect("open");
        let e = none.submit(tx(1, 4, serde_json::json!({"claim": {"epoch": 1}}))).await.expect_err("no ledger");
        assert_eq!(e.kind(), ErrorKind::NoLedger);
    }
}
