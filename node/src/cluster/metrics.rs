//! Counters of the storage network.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::{Histogram, PromText};

#[derive(Debug, Default)]
pub(crate) struct ClusterMetrics {
    pub bytes_replicated: AtomicU64,
    pub documents_replicated: AtomicU64,
    pub transfers_active: AtomicU64,
    pub transfers_resumed: AtomicU64,
    pub peer_requests_refused: AtomicU64,
    pub documents_handed_off: AtomicU64,
    pub remote_search_seconds: Histogram,
}

impl ClusterMetrics {
    /// Appends the storage network's counters and remote-search latency.
    pub(crate) fn render(&self, out: &mut PromText) {
        out.counter(
            "prag_replicated_bytes_total",
            "Shard bytes received from peers.",
            self.bytes_replicated.load(Relaxed),
        );
        out.counter(
            "prag_replicated_documents_total",
            "Documents received, verified and installed.",
            self.documents_replicated.load(Relaxed),
        );
        out.counter(
            "prag_transfers_resumed_total",
            "Shard transfers resumed from a kept part.",
            self.transfers_resumed.load(Relaxed),
        );
        out.counter(
            "prag_peer_requests_refused_total",
            "Requests refused because the peer is not admitted.",
            self.peer_requests_refused.load(Relaxed),
        );
        out.counter(
            "prag_documents_handed_off_total",
            "Documents dropped here once their owners held them.",
            self.documents_handed_off.load(Relaxed),
        );
        out.gauge("prag_transfers_active", "Shard transfers running.", self.transfers_active.load(Relaxed) as f64);
        out.histogram(
            "prag_remote_search_seconds",
            "Latency of a search asked of a peer, sealing included.",
            &self.remote_search_seconds,
        );
    }
}
