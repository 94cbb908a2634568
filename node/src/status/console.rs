//! The operator console's view: one [`ConsoleFeed`] per tick of every open console, from the
//! status snapshot (built in the background) and the live counters.

use prag_proto::api::{
    API_VERSION, ConsoleFeed, EpochView, LatencySummary, LedgerSummary, SubscriberView, TxView, WorkerView,
};
use prag_proto::ledger::LedgerState;

use super::{Sources, Status};
use crate::metrics::Histogram;

/// Ledger entries and audit lines a snapshot carries.
const RECENT: usize = 50;

/// The console's parts of the snapshot: what walks the ledger's state and workers.
pub(crate) struct ConsoleParts {
    ledger: LedgerSummary,
    subscribers: Vec<SubscriberView>,
    api_keys: u64,
    workers: Vec<WorkerView>,
    recent_txs: Vec<TxView>,
    epochs: Vec<EpochView>,
}

impl ConsoleParts {
    pub(crate) fn build(s: &Sources, state: &LedgerState, now: u64) -> Self {
        let ls = s.ledger.status();
        let ledger = LedgerSummary {
            height: ls.height,
            head_hash: ls.head_hash.clone(),
            admin: ls.admin.clone(),
            chain_id: ls.chain_id.clone(),
            orderer: ls.orderer,
            damage: ls.damage.as_ref().map(|d| d.reason.clone()).unwrap_or_default(),
        };
        let gate = s.access.gate();
        let workers = state
            .worker
            .workers
            .values()
            .map(|w| {
                let verdict = gate.check_worker(w, now);
                WorkerView {
                    ip_address: w.ip_address.clone(),
                    worker_type: w.worker_type.clone(),
                    payment_wallet: w.payment_wallet.clone(),
                    accepted: verdict.is_ok(),
                    attestation: match verdict {
                        Ok(v) => format!("accepted ({} {})", v.kind, v.tcb_status),
                        Err(e) => format!("refused: {}", e.code()),
                    },
                    last_seen: w.last_seen,
                }
            })
            .collect();
        let subscribers = state
            .subscription
            .subscribers
            .iter()
            .map(|(k, v)| SubscriberView {
                public_key: k.clone(),
                active: v.status == prag_proto::contracts::subscription::Status::Active,
            })
            .collect();
        let epochs = state
            .rewards
            .epochs
            .iter()
            .rev()
            .take(RECENT)
            .map(|(n, e)| EpochView {
                epoch: *n,
                funds: e.funds.0.to_string(),
                closed: e.closed,
                shares: e.shares.iter().map(|(w, sh)| (w.clone(), sh.work.to_string(), sh.amount.0.to_string())).collect(),
            })
            .collect();
        let from = ls.height.saturating_sub(RECENT as u64);
        let mut recent_txs: Vec<TxView> = s
            .ledger
            .entries(from, RECENT)
            .into_iter()
            .map(|e| TxView {
                height: e.height,
                time: e.env.time,
                sender: prag_proto::account::parse_public_key(&e.tx.body.sender)
                    .map(|k| prag_proto::account::address(&k))
                    .unwrap_or_else(|_| e.tx.body.sender.clone()),
                msg: e.tx.body.msg.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_else(|| "?".into()),
            })
            .collect();
        recent_txs.reverse();
        ConsoleParts { ledger, subscribers, api_keys: state.subscription.api_keys.len() as u64, workers, recent_txs, epochs }
    }
}

impl Status {
    /// One console snapshot.
    pub fn console(&self) -> ConsoleFeed {
        let c = self.cached();
        let s = &self.sources;
        let ms = |h: &Histogram, q: f64| if h.count() == 0 { 0.0 } else { h.quantile(q) * 1e3 };
        let m = &s.metrics;
        let p = &c.console;
        ConsoleFeed {
            api_version: API_VERSION,
            time: crate::auth::unix_now(),
            status: super::snapshot::with_live_counters(s, &c),
            latency: LatencySummary {
                query_p50_ms: ms(&m.query_seconds, 0.5),
                query_p99_ms: ms(&m.query_seconds, 0.99),
                worker_p50_ms: ms(&m.worker_query_seconds, 0.5),
                worker_p99_ms: ms(&m.worker_query_seconds, 0.99),
                ingest_p50_ms: ms(&m.ingest_seconds, 0.5),
                ingest_p99_ms: ms(&m.ingest_seconds, 0.99),
            },
            ledger: p.ledger.clone(),
            subscribers: p.subscribers.clone(),
            api_keys: p.api_keys,
            workers: p.workers.clone(),
            recent_txs: p.recent_txs.clone(),
            epochs: p.epochs.clone(),
            audit: s.access.recent_audit(RECENT),
            peers: c.peers.clone(),
        }
    }
}
