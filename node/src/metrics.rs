//! Counters and latency histograms, exported at `/metrics` in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 15],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let i = BUCKETS.iter().position(|&b| seconds <= b).unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Approximate quantile (upper bound of the bucket holding it), in seconds.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let target = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= target {
                return BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            }
        }
        f64::INFINITY
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub queries: AtomicU64,
    pub query_seconds: Histogram,
    pub ingested_documents: AtomicU64,
    pub unchanged_documents: AtomicU64,
    pub ingested_chunks: AtomicU64,
    pub ingested_bytes: AtomicU64,
    pub ingest_seconds: Histogram,
    pub deleted_documents: AtomicU64,
    pub integrity_errors: AtomicU64,
    pub worker_queries: AtomicU64,
    pub worker_query_seconds: Histogram,
    refusals: Mutex<BTreeMap<String, u64>>,
    /// Log lines about refusals nobody vouched for: a few a second, not one per request.
    pub refusal_log: RateLimit,
}

/// At most [`RateLimit::PER_SECOND`] events a second.
#[derive(Debug, Default)]
pub struct RateLimit {
    window: Mutex<(u64, u32)>,
}

impl RateLimit {
    pub const PER_SECOND: u32 = 10;

    /// Whether one more event is allowed this second.
    pub fn allow(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut w = self.window.lock();
        if w.0 != now {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 <= Self::PER_SECOND
    }
}

impl Metrics {
    pub fn refuse(&self, reason: &str) {
        *self.refusals.lock().entry(reason.to_string()).or_default() += 1;
    }

    pub fn refusals(&self) -> BTreeMap<String, u64> {
        self.refusals.lock().clone()
    }

    /// Prometheus text exposition. `gauges` are point-in-time values the caller supplies.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut out, "prag_queries_total", "Retrieval queries answered.", get(&self.queries));
        counter(
            &mut out,
            "prag_ingested_documents_total",
            "Documents created or replaced.",
            get(&self.ingested_documents),
        );
        counter(
            &mut out,
            "prag_unchanged_documents_total",
            "Re-uploads that changed nothing.",
            get(&self.unchanged_documents),
        );
        counter(&mut out, "prag_ingested_chunks_total", "Chunks embedded and stored.", get(&self.ingested_chunks));
        counter(&mut out, "prag_ingested_bytes_total", "Bytes of uploaded files accepted.", get(&self.ingested_bytes));
        counter(&mut out, "prag_deleted_documents_total", "Documents deleted.", get(&self.deleted_documents));
        counter(
            &mut out,
            "prag_integrity_errors_total",
            "Stored ciphertexts that failed authentication.",
            get(&self.integrity_errors),
        );
        counter(
            &mut out,
            "prag_worker_queries_total",
            "Retrieval requests served to attested workers.",
            get(&self.worker_queries),
        );
        let _ = writeln!(
            out,
            "# HELP prag_refusals_total Requests refused, by reason.\n# TYPE prag_refusals_total counter"
        );
        for (reason, n) in self.refusals() {
            let _ = writeln!(out, "prag_refusals_total{{reason=\"{reason}\"}} {n}");
        }
        self.query_seconds.render(&mut out, "prag_query_seconds", "Query latency, embedding included.");
        self.ingest_seconds.render(&mut out, "prag_ingest_seconds", "Latency of one uploaded file's ingest.");
        self.worker_query_seconds.render(
            &mut out,
            "prag_worker_query_seconds",
            "Latency of a served worker request, checks and sealing included.",
        );
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_and_render() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.observe(0.002);
        }
        h.observe(0.3);
        h.observe(20.0);
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 0.0025);
        assert_eq!(h.quantile(0.99), 0.5);
        let m = Metrics::default();
        m.refuse("stale");
        let text = m.render(&[("prag_index_points", "Points.", 3.0)]);
        assert!(text.contains("prag_refusals_total{reason=\"stale\"} 1"));
        assert!(text.contains("prag_index_points 3"));
    }
}
