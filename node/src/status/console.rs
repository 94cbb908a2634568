//! The operator console's view: one [`ConsoleFeed`] per tick of every open console, from the
//! status snapshot (built in the background) and the live counters.

use prag_proto::api::{API_VERSION, ConsoleFeed, LatencySummary};

use super::Status;
use super::snapshot::RECENT;
use crate::metrics::Histogram;

impl Status {
    /// One console snapshot.
    pub fn console(&self) -> ConsoleFeed {
        let c = self.cached();
        let s = &self.sources;
        let ms = |h: &Histogram, q: f64| if h.count() == 0 { 0.0 } else { h.quantile(q) * 1e3 };
        let m = &s.metrics;
        let p = &c.console;
        let status = super::snapshot::with_live_counters(s, &c);
        ConsoleFeed {
            api_version: API_VERSION,
            time: crate::auth::unix_now(),
            market: p.market.clone(),
            peers: status.peers.clone(),
            status,
            latency: LatencySummary {
                query_p50_ms: ms(&m.query_seconds, 0.5),
                query_p99_ms: ms(&m.query_seconds, 0.99),
                worker_p50_ms: ms(&m.worker_query_seconds, 0.5),
                worker_p99_ms: ms(&m.worker_query_seconds, 0.99),
                ingest_p50_ms: ms(&m.ingest_seconds, 0.5),
                ingest_p99_ms: ms(&m.ingest_seconds, 0.99),
            },
            ledger: super::snapshot::ledger_summary(s),
            subscribers: p.subscribers.clone(),
            api_keys: p.api_keys,
            workers: p.workers.clone(),
            recent_txs: p.recent_txs.clone(),
            epochs: p.epochs.clone(),
            audit: s.access.recent_audit(RECENT),
        }
    }
}
