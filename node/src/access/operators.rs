//! Operators: the contracts' admin and the node's `--operator` keys read the detailed status, the
//! console feed and the audit log; a worker reads its own usage.

use k256::ecdsa::VerifyingKey;
use prag_proto::api::{AuditEntry, WorkerUsage};

use super::Access;
use crate::error::{Error, ErrorKind, Result};

impl Access {
    /// Whether `key` is the contracts' admin or a configured operator.
    pub fn is_operator(&self, key: &VerifyingKey) -> bool {
        let hex = prag_proto::account::public_key_hex(key);
        self.ledger.state().admin() == prag_proto::account::address(key) || self.operators.contains(&hex)
    }

    /// Refuses anyone but an operator.
    pub fn require_operator(&self, key: &VerifyingKey) -> Result<()> {
        if self.is_operator(key) {
            Ok(())
        } else {
            Err(Error::forbidden("this is for the contracts' admin and the node's --operator keys only"))
        }
    }

    /// The audit log, newest first (operators only).
    pub fn audit_entries(&self, caller: &VerifyingKey, limit: usize) -> Result<Vec<AuditEntry>> {
        self.require_operator(caller)?;
        Ok(self.audit.recent(limit))
    }

    /// One worker's metered usage, for its own `report_work` (signed by the worker's key).
    pub fn worker_usage(&self, caller: &VerifyingKey) -> Result<Vec<WorkerUsage>> {
        let me = prag_proto::account::public_key_hex(caller);
        let ip = self
            .ledger
            .state()
            .worker
            .by_signing_key(&me)
            .map(|w| w.ip_address.clone())
            .ok_or_else(|| Error::new(ErrorKind::Forbidden, "the signing key is not a registered worker's key"))?;
        Ok(self.usage.for_worker(&ip))
    }
}
