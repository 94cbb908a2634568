//! Counters and latency histograms, and [`PromText`], the one writer of Prometheus' text format
//! every part of the node renders its metrics with.

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
}

/// Prometheus' text exposition format, written one metric at a time.
#[derive(Debug, Default)]
pub struct PromText {
    out: String,
}

impl PromText {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.head(name, help, "counter");
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A counter with one label, one line per value.
    pub fn labelled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a String, &'a u64)>,
    ) {
        self.head(name, help, "counter");
        for (l, v) in values {
            let _ = writeln!(self.out, "{name}{{{label}=\"{l}\"}} {v}");
        }
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.out, "{name} {value}");
    }

    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.head(name, help, "histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += h.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(self.out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += h.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(self.out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(self.out, "{name}_sum {}", h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(self.out, "{name}_count {cumulative}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The node's own counters.
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
    /// Distributed searches whose slow shards were also asked of another replica.
    pub hedged_searches: AtomicU64,
    /// Answers missing shards no replica could serve.
    pub partial_answers: AtomicU64,
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
        let now = crate::auth::unix_now();
        let mut w = self.window.lock();
        if w.0 != now {
            *w = (now, 0);
        }
        w.1 += 1;
        w.1 <= Self::PER_SECOND
    }
}

impl Metrics {
    /// Counts a refusal by its code (the error table's code: the same everywhere).
    pub fn refuse(&self, code: &str) {
        *self.refusals.lock().entry(code.to_string()).or_default() += 1;
    }

    pub fn refusals(&self) -> BTreeMap<String, u64> {
        self.refusals.lock().clone()
    }

    /// The node's counters and histograms.
    pub fn render(&self, out: &mut PromText) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.counter("prag_queries_total", "Retrieval queries answered.", get(&self.queries));
        out.counter("prag_ingested_documents_total", "Documents created or replaced.", get(&self.ingested_documents));
        out.counter(
            "prag_unchanged_documents_total",
            "Re-uploads that changed nothing.",
            get(&self.unchanged_documents),
        );
        out.counter("prag_ingested_chunks_total", "Chunks embedded and stored.", get(&self.ingested_chunks));
        out.counter("prag_ingested_bytes_total", "Bytes of uploaded files accepted.", get(&self.ingested_bytes));
        out.counter("prag_deleted_documents_total", "Documents deleted.", get(&self.deleted_documents));
        out.counter(
            "prag_integrity_errors_total",
            "Stored ciphertexts that failed authentication.",
            get(&self.integrity_errors),
        );
        out.counter(
            "prag_worker_queries_total",
            "Retrieval requests served to attested workers.",
            get(&self.worker_queries),
        );
        out.counter(
            "prag_hedged_searches_total",
            "Remote searches also asked of another replica.",
            get(&self.hedged_searches),
        );
        out.counter(
            "prag_partial_answers_total",
            "Answers missing shards no replica could serve.",
            get(&self.partial_answers),
        );
        let refusals = self.refusals();
        out.labelled_counter("prag_refusals_total", "Requests refused, by reason.", "reason", &refusals);
        out.histogram("prag_query_seconds", "Query latency, embedding included.", &self.query_seconds);
        out.histogram("prag_ingest_seconds", "Latency of one uploaded file's ingest.", &self.ingest_seconds);
        out.histogram(
            "prag_worker_query_seconds",
            "Latency of a served worker request, checks and sealing included.",
            &self.worker_query_seconds,
        );
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
        let mut out = PromText::default();
        m.render(&mut out);
        out.gauge("prag_index_points", "Points.", 3.0);
        out.histogram("prag_x_seconds", "X.", &h);
        let text = out.finish();
        assert!(text.contains("prag_refusals_total{reason=\"stale\"} 1"));
        assert!(text.contains("prag_index_points 3"));
        assert!(text.contains("prag_x_seconds_bucket{le=\"+Inf\"} 100"));
        assert!(text.contains("# TYPE prag_hedged_searches_total counter"));
    }
}
