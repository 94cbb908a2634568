//! The node's market duties, on a timer: settle its own stacks from their logs (used up, near
//! their deadline, or asked by the owner), claim what settled tickets pay it (once every attester
//! is in, or the attestation window is over), and attest the stacks the contract asked it to
//! re-execute.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prag_proto::contracts::market::StackStatus;
use tokio_util::sync::CancellationToken;

use super::Market;
use crate::auth::unix_now;

/// Runs the duties every `every` until `cancel`.
pub async fn run(market: Arc<Market>, every: Duration, cancel: CancellationToken) {
    let mut claimed: HashSet<u64> = HashSet::new();
    let mut attested: HashSet<u64> = HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        market.settle_due().await;
        market.claim_due(&mut claimed).await;
        market.attest_due(&mut attested).await;
    }
}

impl Market {
    /// Settles this node's open stacks whose log is used up (fewer units left than its cheapest
    /// answer), whose deadline is one epoch away, or whose owner asked.
    async fn settle_due(&self) {
        let state = self.ledger.state();
        let Some(me) = self.my_node(&state) else { return };
        let epoch = state.market.epoch_at(unix_now());
        for id in self.logs.ids() {
            let Some(stack) = state.market.stacks.get(&id) else { continue };
            if stack.selected_node_id != me || stack.status != StackStatus::Open || epoch > stack.settle_by_epoch {
                continue;
            }
            let Ok(log) = self.logs.get(id) else { continue };
            let due = {
                let log = log.lock().await;
                let left = stack.num_compute_units.saturating_sub(log.used);
                let used_up = log.cheapest().is_some_and(|c| left < c);
                !log.records.is_empty()
                    && (log.closed
                        || used_up
                        || epoch + 1 >= stack.settle_by_epoch
                        || self.settle_asked.lock().contains(&id))
            };
            if due && let Err(e) = self.settle(&state, id).await {
                tracing::warn!(stack = id, error = %e, "cannot settle a stack yet; trying again");
            }
        }
    }

    /// Claims this node's settled, undisputed tickets once their dispute window is over.
    async fn claim_due(&self, claimed: &mut HashSet<u64>) {
        let state = self.ledger.state();
        let Some(me) = self.my_node(&state) else { return };
        let epoch = state.market.epoch_at(unix_now());
        let due: Vec<u64> = state
            .market
            .tickets
            .values()
            .filter(|t| t.selected_node_id == me && !t.is_in_dispute)
            .filter(|t| {
                let all_in = t.requested_attestation_nodes.iter().all(|n| t.already_attested_nodes.contains(n));
                epoch > t.dispute_settled_at_epoch || (all_in && epoch == t.dispute_settled_at_epoch)
            })
            .filter(|t| state.market.stacks.get(&t.stack_small_id).is_some_and(|s| s.status == StackStatus::Settling))
            .map(|t| t.stack_small_id)
            .filter(|id| !claimed.contains(id))
            .collect();
        for id in due {
            match self.submit(serde_json::json!({"claim_funds": {"settled_ticket_ids": [id]}})).await {
                Ok(_) => {
                    tracing::info!(stack = id, "claimed a settled stack's fee");
                    claimed.insert(id);
                    // Paid: its log is read again only for an inclusion proof.
                    self.logs.forget(id);
                }
                Err(e) => tracing::warn!(stack = id, error = %e, "cannot claim a settled stack yet"),
            }
        }
    }

    /// Attests (or disputes) every ticket that asks this node and that it has not answered.
    async fn attest_due(&self, attested: &mut HashSet<u64>) {
        let state = self.ledger.state();
        let Some(me) = self.my_node(&state) else { return };
        let epoch = state.market.epoch_at(unix_now());
        let due: Vec<(u64, usize)> = state
            .market
            .tickets
            .values()
            .filter(|t| epoch <= t.dispute_settled_at_epoch && !t.already_attested_nodes.contains(&me))
            .filter_map(|t| t.requested_attestation_nodes.iter().position(|n| *n == me).map(|i| (t.stack_small_id, i)))
            .filter(|(id, _)| !attested.contains(id))
            .collect();
        for (id, slot) in due {
            let started = std::time::Instant::now();
            match self.attest(&state, id, slot).await {
                Ok((verdict, requests)) => {
                    let seconds = started.elapsed().as_secs_f64();
                    tracing::info!(stack = id, verdict, requests, seconds, "re-executed a stack's log and committed");
                    attested.insert(id);
                }
                Err(e) => tracing::warn!(stack = id, error = %e, "cannot attest a stack yet; trying again"),
            }
        }
    }
}
