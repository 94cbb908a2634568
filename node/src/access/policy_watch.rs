//! Watches the attestation policy file: on a change the new policy is installed and every
//! registered worker judged again (and the verdicts logged); TDX collateral registered reports
//! lack is fetched meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Access, Subject};
use crate::auth::unix_now;

/// Runs every `poll` until `cancel` fires.
pub(crate) async fn policy_watch(access: Arc<Access>, poll: Duration, cancel: CancellationToken) {
    let mut timer = tokio::time::interval(poll);
    timer.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = timer.tick() => {}
        }
        access.fetch_missing_collateral().await;
        match access.gate.reload_if_changed() {
            None => {}
            Some(Ok(())) => {
                tracing::info!("attestation policy changed: re-checking every registered worker");
                access.audit("policy", "", &Subject::default(), "attestation policy reloaded".into());
                access.log_worker_verdicts("after policy change");
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "attestation policy file changed but is invalid; keeping the previous policy")
            }
        }
    }
}

impl Access {
    /// Fetches missing TDX collateral for registered workers; re-judges them if any came.
    async fn fetch_missing_collateral(&self) {
        if !self.gate.has_pccs() {
            return; // runs every poll tick: do not copy every report for nothing
        }
        let reports: Vec<String> =
            self.ledger.state().worker.workers.values().map(|w| w.attestation_report.clone()).collect();
        let mut fetched = false;
        for r in reports {
            fetched |= self.gate.ensure_collateral(&r, unix_now()).await;
        }
        if fetched {
            self.log_worker_verdicts("after fetching collateral");
        }
    }

    /// Re-judges every registered worker and logs each verdict.
    pub(crate) fn log_worker_verdicts(&self, when: &str) {
        let now = unix_now();
        for w in self.ledger.state().worker.workers.values() {
            match self.gate.check_worker(w, now) {
                Ok(v) => {
                    tracing::info!(worker = %w.ip_address, kind = %v.kind, tcb = %v.tcb_status, when, "worker attestation accepted")
                }
                Err(e) => {
                    tracing::warn!(worker = %w.ip_address, reason = e.code(), detail = %e, when, "worker attestation refused")
                }
            }
        }
    }
}
