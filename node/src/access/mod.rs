//! Who may do what: the workers' decision table (`worker.rs`), owners' grants (`grants.rs`),
//! operators (`operators.rs`), the attestation gate a `register_worker` must pass on the orderer
//! (`registration.rs`), and the policy watch (`policy_watch.rs`). Every decision goes to the
//! audit log; the usage meters are what `report_work` is built from.
//!
//! The order of a worker's checks is the order a request is read in: signature, freshness and
//! replay (checked by the owner's channel before the request reaches the worker path, so only
//! signed requests are decided and audited here), the request itself (audience), then the worker
//! (registered, attested, key bound, alive), then whom it acts for (active subscriber or stored API
//! key), then the collection (exists, granted).

pub(crate) mod audit;
mod grants;
pub(crate) mod meter;
mod operators;
mod policy_watch;
mod registration;
mod worker;

use std::sync::Arc;

use prag_proto::api::AuditEntry;

use crate::attest::AttestationGate;
use crate::auth::unix_now;
use crate::collections::Collections;
use crate::ledger::LedgerService;
use crate::metrics::Metrics;
use crate::retrieval::Retrieval;
use audit::AuditLog;
use meter::UsageMeter;

pub(crate) use policy_watch::policy_watch;
pub(crate) use registration::RegistrationGate;

/// The access component.
pub struct Access {
    gate: Arc<AttestationGate>,
    audit: Arc<AuditLog>,
    usage: UsageMeter,
    ledger: LedgerService,
    collections: Arc<Collections>,
    retrieval: Arc<Retrieval>,
    metrics: Arc<Metrics>,
    /// This node's id: the audience of workers' requests.
    node_id: String,
    /// Canonical hex public keys of this node's operators (besides the contracts' admin).
    operators: Vec<String>,
    /// Answers paid from market stacks.
    market: Arc<crate::market::Market>,
}

/// What a request was, as far as the audit log may say.
#[derive(Default)]
pub(crate) struct Subject {
    pub actor: String,
    pub worker: String,
    pub subscriber: String,
    pub collection: String,
}

/// Longest text kept of an audit field: the log must not grow with what a caller sends.
const MAX_AUDIT_FIELD: usize = 128;

fn bounded(s: &str) -> String {
    if s.len() <= MAX_AUDIT_FIELD {
        return s.to_string();
    }
    let mut end = MAX_AUDIT_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What the access component is built from.
pub(crate) struct AccessParts {
    pub gate: Arc<AttestationGate>,
    pub audit: Arc<AuditLog>,
    pub ledger: LedgerService,
    pub collections: Arc<Collections>,
    pub retrieval: Arc<Retrieval>,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
    pub operators: Vec<String>,
    pub market: Arc<crate::market::Market>,
}

impl Access {
    pub(crate) fn new(p: AccessParts) -> Self {
        Access {
            gate: p.gate,
            audit: p.audit,
            usage: UsageMeter::default(),
            ledger: p.ledger,
            collections: p.collections,
            retrieval: p.retrieval,
            metrics: p.metrics,
            node_id: p.node_id,
            operators: p.operators,
            market: p.market,
        }
    }

    pub(crate) fn gate(&self) -> &Arc<AttestationGate> {
        &self.gate
    }

    pub(crate) fn usage(&self) -> &UsageMeter {
        &self.usage
    }

    pub(crate) fn recent_audit(&self, limit: usize) -> Vec<AuditEntry> {
        self.audit.recent(limit)
    }

    fn audit(&self, event: &str, reason: &str, s: &Subject, detail: String) {
        record(&self.audit, event, reason, s, detail);
    }
}

/// Appends one decision to the audit log, every field bounded.
fn record(log: &AuditLog, event: &str, reason: &str, s: &Subject, detail: String) {
    log.record(AuditEntry {
        time: unix_now(),
        event: event.to_string(),
        reason: reason.to_string(),
        actor: bounded(&s.actor),
        worker: bounded(&s.worker),
        subscriber: bounded(&s.subscriber),
        collection: bounded(&s.collection),
        detail: bounded(&detail),
    });
}
