//! The operator console's view of the node: one snapshot of everything its screens show.

use prag_proto::api::{
    API_VERSION, ConsoleFeed, EpochView, LatencySummary, LedgerSummary, SubscriberView, TxView, WorkerView,
};

use super::Node;
use crate::auth::unix_now;

/// Ledger entries and audit lines a snapshot carries.
const RECENT: usize = 50;

impl Node {
    pub fn console_feed(&self) -> ConsoleFeed {
        let now = unix_now();
        let status = self.status();
        let ms = |h: &crate::metrics::Histogram, q: f64| if h.count() == 0 { 0.0 } else { h.quantile(q) * 1e3 };
        let m = &self.metrics;
        let latency = LatencySummary {
            query_p50_ms: ms(&m.query_seconds, 0.5),
            query_p99_ms: ms(&m.query_seconds, 0.99),
            worker_p50_ms: ms(&m.worker_query_seconds, 0.5),
            worker_p99_ms: ms(&m.worker_query_seconds, 0.99),
            ingest_p50_ms: ms(&m.ingest_seconds, 0.5),
            ingest_p99_ms: ms(&m.ingest_seconds, 0.99),
        };
        let ls = self.ledger.status();
        let ledger = LedgerSummary {
            height: ls.height,
            head_hash: ls.head_hash.clone(),
            admin: ls.admin.clone(),
            chain_id: ls.chain_id.clone(),
            orderer: ls.orderer,
            damage: ls.damage.as_ref().map(|d| d.reason.clone()).unwrap_or_default(),
        };
        let workers_raw: Vec<_> = self.ledger.with_state(|s| s.worker.workers.values().cloned().collect());
        let workers = workers_raw
            .iter()
            .map(|w| {
                let verdict = self.gate.check_worker(w, now);
                WorkerView {
                    ip_address: w.ip_address.clone(),
                    worker_type: w.worker_type.clone(),
                    payment_wallet: w.payment_wallet.clone(),
                    accepted: verdict.is_ok(),
                    attestation: match verdict {
                        Ok(v) => format!("accepted ({} {})", v.kind, v.tcb_status),
                        Err(r) => format!("refused: {}", r.code()),
                    },
                    last_seen: w.last_seen,
                }
            })
            .collect();
        let (subscribers, api_keys, epochs) = self.ledger.with_state(|s| {
            let subs = s
                .subscription
                .subscribers
                .iter()
                .map(|(k, v)| SubscriberView {
                    public_key: k.clone(),
                    active: v.status == prag_proto::contracts::subscription::Status::Active,
                })
                .collect();
            let epochs = s
                .rewards
                .epochs
                .iter()
                .rev()
                .take(RECENT)
                .map(|(n, e)| EpochView {
                    epoch: *n,
                    funds: e.funds.0.to_string(),
                    closed: e.closed,
                    shares: e
                        .shares
                        .iter()
                        .map(|(w, sh)| (w.clone(), sh.work.to_string(), sh.amount.0.to_string()))
                        .collect(),
                })
                .collect();
            (subs, s.subscription.api_keys.len() as u64, epochs)
        });
        let from = ls.height.saturating_sub(RECENT as u64);
        let mut recent_txs: Vec<TxView> = self
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
        ConsoleFeed {
            api_version: API_VERSION,
            time: now,
            status,
            latency,
            ledger,
            subscribers,
            api_keys,
            workers,
            recent_txs,
            epochs,
            audit: self.audit.recent(RECENT),
            peers: self.peer_views(),
        }
    }
}
