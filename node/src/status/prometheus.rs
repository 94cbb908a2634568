//! `/metrics`: the Prometheus text of the node's counters, histograms and gauges, one renderer
//! ([`PromText`]) for all of them.

use super::Status;
use crate::metrics::PromText;

impl Status {
    pub fn prometheus(&self) -> String {
        let c = self.cached();
        let s = &self.sources;
        let mut out = PromText::default();
        s.metrics.render(&mut out);
        let points: u64 = c.points.values().map(|p| p.0).sum();
        let indexed: u64 = c.points.values().map(|p| p.1).sum();
        let documents: u64 = s.collections.all().iter().map(|x| x.counts().0).sum();
        let e = s.embedder.stats();
        let rate = if e.busy_seconds > 0.0 { e.texts as f64 / e.busy_seconds } else { 0.0 };
        out.gauge("prag_documents", "Documents stored.", documents as f64);
        out.gauge("prag_index_points", "Points in the vector index.", points as f64);
        out.gauge("prag_index_indexed_points", "Points inside an HNSW graph.", indexed as f64);
        out.gauge("prag_embedder_texts", "Texts embedded since start.", e.texts as f64);
        out.gauge("prag_embedder_texts_per_busy_second", "Embedder throughput while busy.", rate);
        out.gauge("prag_embedder_queue_depth", "Embedding requests waiting.", e.queue_depth as f64);
        out.gauge(
            "prag_embedder_cancelled_texts",
            "Texts dropped because their request went away.",
            e.cancelled_texts as f64,
        );
        out.gauge("prag_disk_bytes", "Bytes under the data directory.", c.disk_bytes as f64);
        s.network.render_metrics(&mut out, c.cluster.as_ref());
        out.finish()
    }
}
