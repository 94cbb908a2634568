//! The attestation gate at registration, applied by the orderer to every transaction it orders:
//! a `register_worker` from the admin whose report does not verify, is not allowed by the policy,
//! or does not bind the worker's signing key is refused before it reaches the ledger (and the
//! refusal audited). TDX collateral the report lacks is fetched from the PCCS first.

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
