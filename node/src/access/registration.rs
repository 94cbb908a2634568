//! The attestation gate at registration, applied by the orderer to every transaction it orders:
//! a `register_worker` from the admin whose report does not verify, is not allowed by the policy,
//! or does not bind the worker's signing key is refused before it reaches the ledger (and the
//! refusal audited). TDX collateral the report lacks is fetched from the PCCS first.
//!
//! The same gate stands before the compute market's `register_node`: the signer must be a
//! registered `prag-storage` worker (the contract checks that) whose attestation still verifies
//! under this node's current policy (checked here, where the policy lives).

use std::sync::Arc;

use futures::future::BoxFuture;
use prag_proto::contracts::worker::ExecuteMsg;
use prag_proto::ledger::{LedgerState, SignedTx};

use super::Subject;
use super::audit::AuditLog;
use crate::attest::AttestationGate;
use crate::auth::unix_now;
use crate::error::{Error, Result};
use crate::ledger::TxGate;

pub(crate) struct RegistrationGate {
    pub gate: Arc<AttestationGate>,
    pub audit: Arc<AuditLog>,
}

impl TxGate for RegistrationGate {
    fn check<'a>(&'a self, tx: &'a SignedTx, state: &'a LedgerState) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if tx.body.msg.get("register_node").is_some() {
                return self.check_market_node(tx, state);
            }
            let Some(body) = tx.body.msg.get("register_worker") else { return Ok(()) };
            // Only the admin may register workers: anyone else gets the contract's own refusal.
            let from_admin = prag_proto::account::parse_public_key(&tx.body.sender)
                .map(|k| prag_proto::account::address(&k))
                .is_ok_and(|a| state.admin() == a);
            if !from_admin {
                return Ok(());
            }
            let Ok(ExecuteMsg::RegisterWorker { attestation_report, signing_key, ip_address, .. }) =
                serde_json::from_value::<ExecuteMsg>(serde_json::json!({ "register_worker": body }))
            else {
                return Ok(()); // malformed: the contract itself refuses it with its own message
            };
            self.gate.ensure_collateral(&attestation_report, unix_now()).await;
            match self.gate.check_registration(&attestation_report, signing_key.as_deref(), unix_now()) {
                Ok(v) => {
                    tracing::info!(worker = %ip_address, kind = %v.kind, tcb = %v.tcb_status, "worker attestation verified at registration");
                    Ok(())
                }
                Err(e) => {
                    let subject = Subject { actor: tx.body.sender.clone(), worker: ip_address, ..Default::default() };
                    super::record(&self.audit, "register_refused", e.code(), &subject, e.public_message().to_string());
                    Err(Error::new(e.kind(), format!("register_worker refused: {}", e.public_message())))
                }
            }
        })
    }
}

impl RegistrationGate {
    /// A market node's storage registration must still verify under the current policy.
    fn check_market_node(&self, tx: &SignedTx, state: &LedgerState) -> Result<()> {
        let Ok(key) = prag_proto::account::canonical_public_key(&tx.body.sender) else { return Ok(()) };
        let Some(worker) = state
            .worker
            .by_signing_key(&key)
            .filter(|w| w.worker_type == prag_proto::contracts::worker::STORAGE_WORKER_TYPE)
        else {
            return Ok(()); // the contract refuses it, naming why
        };
        match self.gate.check_worker(worker, unix_now()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let subject =
                    Subject { actor: tx.body.sender.clone(), worker: worker.ip_address.clone(), ..Default::default() };
                super::record(&self.audit, "register_node_refused", e.code(), &subject, e.public_message().to_string());
                Err(Error::new(e.kind(), format!("register_node refused: {}", e.public_message())))
            }
        }
    }
}
