//! Retrieval served to workers, counted per (worker, subscriber) for `report_work`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use prag_proto::api::WorkerUsage;

#[derive(Default)]
pub(crate) struct UsageMeter {
    usage: Mutex<BTreeMap<(String, String), WorkerUsage>>,
}

impl UsageMeter {
    pub(crate) fn record(&self, worker: &str, subscriber: &str, chunks: u64, tokens: u64) {
        let mut all = self.usage.lock();
        let u = all.entry((worker.to_string(), subscriber.to_string())).or_insert_with(|| WorkerUsage {
            worker: worker.to_string(),
            subscriber: subscriber.to_string(),
            ..Default::default()
        });
        u.requests += 1;
        u.chunks += chunks;
        u.tokens += tokens;
    }

    pub(crate) fn snapshot(&self) -> Vec<WorkerUsage> {
        self.usage.lock().values().cloned().collect()
    }

    /// The usage of one worker, over all subscribers.
    pub(crate) fn for_worker(&self, worker: &str) -> Vec<WorkerUsage> {
        self.usage.lock().values().filter(|u| u.worker == worker).cloned().collect()
    }
}
