//! The compute market: Atoma's tasks, stacks, node sampling, settlement, sampling consensus,
//! disputes, slashing and reputation (`shared/spec/atoma.md`), as a pure state machine over the
//! ledger's bank, built as Atoma's design meant it to work. Where it departs from Atoma's
//! published code, it closes a gap the spec lists:
//!
//! - registration takes real collateral (at least the configured amount), and only an admitted
//!   `prag-storage` node may register;
//! - attesters are drawn without replacement and never include the serving node; with fewer
//!   eligible than needed, the ticket says so ([`Attestation::TooFewEligible`]) and settles
//!   without attestation;
//! - only a requested attester whose commitment differs may open a dispute; a node attests once;
//! - a dispute is resolved: by the majority of the K+1 commitments when K ≥ 2, otherwise (or
//!   when there is no majority) by one of the task's oracles recomputing the stack root; the loser
//!   loses all its collateral and its reputation, the oracle and the honest nodes get Atoma's
//!   per-mille shares, the owner is refunded what a dishonest serving node claimed, and the rest
//!   goes to the communal treasury;
//! - reputation moves (+1 per undisputed settlement, −10 per timeout, 0 when slashed for a
//!   dispute) and sampling skips nodes below the task's minimum at purchase;
//! - a stack has a settlement deadline, after which its owner reclaims the unused escrow;
//!   requested attesters that never attested are slashed the timeout per-mille;
//! - attesters are paid from the stack's own extra-nodes surcharge, never from other escrow;
//! - sampling randomness comes from the ledger's committed randomness chain ([`sampling`]).

pub mod commitment;
pub mod error;
pub mod fees;
pub mod msg;
pub mod sampling;
pub mod types;

mod nodes;
mod query;
mod settlement;
mod stacks;
mod tasks;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use error::MarketCode;
pub use msg::{ExecuteMsg, QueryMsg};
pub use query::{MarketOverview, MoneyLine, NodeLine, StackLine, TaskLine};
pub use types::*;

use super::bank;
use super::{ContractError, Env, Sender};

/// Events kept in the state for the console and `get_market_events`.
pub const RECENT_EVENTS: usize = 64;

/// Everything the market's messages need besides its own state: the entry's environment, the
/// signer, the draw seed, the bank, and the WorkerManager's answer to "is this key an admitted
/// storage node, and what is its peer id?".
pub struct Ctx<'a> {
    pub env: &'a Env,
    pub sender: &'a Sender,
    pub seed: [u8; 32],
    pub bank: &'a mut bank::State,
    pub storage_node: &'a dyn Fn(&str) -> Option<String>,
}

/// Atoma's checks 5 and 6 of `try_settle_stack` (and 3 of an attestation): both 32 bytes.
fn check_proof_and_leaf(proof: &str, leaf: &str) -> Result<(), ContractError> {
    if commitment::parse32(proof).is_none() {
        return Err(MarketCode::EInvalidCommittedStackProof.err("the proof must be 32 bytes of hex"));
    }
    if commitment::parse32(leaf).is_none() {
        return Err(MarketCode::EInvalidStackMerkleLeaf.err("the leaf must be 32 bytes of hex"));
    }
    Ok(())
}

impl Ctx<'_> {
    fn sender_key(&self) -> String {
        self.sender.public_key_hex()
    }
}

/// An event with when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub time: u64,
    pub epoch: u64,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub admin: String,
    pub params: Params,
    pub next_node_small_id: u64,
    pub next_task_small_id: u64,
    pub next_stack_small_id: u64,
    pub nodes: BTreeMap<u64, Node>,
    /// Public key (hex) → node id.
    pub nodes_by_key: BTreeMap<String, u64>,
    pub tasks: BTreeMap<u64, Task>,
    pub stacks: BTreeMap<u64, Stack>,
    pub tickets: BTreeMap<u64, Ticket>,
    pub recent_events: VecDeque<Recorded>,
}

impl Default for State {
    fn default() -> Self {
        State::new(String::new(), Params::default())
    }
}

impl State {
    pub fn new(admin: String, params: Params) -> Self {
        State {
            admin,
            params,
            next_node_small_id: 1,
            next_task_small_id: 1,
            next_stack_small_id: 1,
            nodes: BTreeMap::new(),
            nodes_by_key: BTreeMap::new(),
            tasks: BTreeMap::new(),
            stacks: BTreeMap::new(),
            tickets: BTreeMap::new(),
            recent_events: VecDeque::new(),
        }
    }

    /// The market epoch of a time.
    pub fn epoch_at(&self, time: u64) -> u64 {
        time / self.params.epoch_secs.max(1)
    }

    /// Applies one message. The caller works on a copy (the ledger does): on `Err` the copy is
    /// dropped, so nothing a refused message did survives. Returns the events it emitted.
    pub fn execute(&mut self, ctx: &mut Ctx<'_>, msg: ExecuteMsg) -> Result<Vec<Event>, ContractError> {
        let mut events = Vec::new();
        let now = self.epoch_at(ctx.env.time);
        match msg {
            ExecuteMsg::RegisterNode { collateral } => self.register_node(ctx, now, collateral.0, &mut events)?,
            ExecuteMsg::PermanentlyDisableNode {} => self.permanently_disable_node(ctx, now)?,
            ExecuteMsg::DestroyDisabledNode {} => self.destroy_disabled_node(ctx, now, &mut events)?,
            ExecuteMsg::WithdrawFees {} => {
                let id = self.caller_node(ctx)?;
                self.withdraw_fees(ctx, id, now, &mut events)?;
            }
            ExecuteMsg::SubscribeNodeToTask { task_small_id, price_per_one_million_compute_units } => {
                self.subscribe(ctx, task_small_id, price_per_one_million_compute_units, &mut events)?
            }
            ExecuteMsg::UpdateNodeSubscription { task_small_id, price_per_one_million_compute_units } => {
                self.update_subscription(ctx, task_small_id, price_per_one_million_compute_units, &mut events)?
            }
            ExecuteMsg::UnsubscribeNodeFromTask { task_small_id } => {
                self.unsubscribe(ctx, task_small_id, &mut events)?
            }
            ExecuteMsg::CreateTask { role, model_name, security_level, minimum_reputation_score, is_public } => self
                .create_task(ctx, role, model_name, security_level, minimum_reputation_score, is_public, &mut events)?,
            ExecuteMsg::DeprecateTask { task_small_id } => self.deprecate_task(ctx, now, task_small_id, &mut events)?,
            ExecuteMsg::RemoveDeprecatedTask { task_small_id } => {
                self.remove_deprecated_task(ctx, now, task_small_id, &mut events)?
            }
            ExecuteMsg::WhitelistNodesForTask { task_small_id, nodes } => {
                self.whitelist_nodes(ctx, task_small_id, &nodes)?
            }
            ExecuteMsg::AddTaskOracle { task_small_id, node_small_id } => {
                self.set_oracle(ctx, task_small_id, node_small_id, true)?
            }
            ExecuteMsg::RemoveTaskOracle { task_small_id, node_small_id } => {
                self.set_oracle(ctx, task_small_id, node_small_id, false)?
            }
            ExecuteMsg::AcquireNewStack { task_small_id, num_compute_units, price } => {
                self.acquire_new_stack(ctx, now, task_small_id, num_compute_units, price, &mut events)?
            }
            ExecuteMsg::ReclaimStack { stack_small_id } => self.reclaim_stack(ctx, now, stack_small_id, &mut events)?,
            ExecuteMsg::TrySettleStack {
                stack_small_id,
                num_claimed_compute_units,
                committed_stack_proof,
                stack_merkle_leaf,
            } => self.try_settle_stack(
                ctx,
                now,
                stack_small_id,
                num_claimed_compute_units,
                &committed_stack_proof,
                &stack_merkle_leaf,
                &mut events,
            )?,
            ExecuteMsg::SubmitStackSettlementAttestation {
                stack_small_id,
                committed_stack_proof,
                stack_merkle_leaf,
            } => self.submit_attestation(
                ctx,
                now,
                stack_small_id,
                &committed_stack_proof,
                &stack_merkle_leaf,
                &mut events,
            )?,
            ExecuteMsg::StartAttestationDispute { stack_small_id, attestation_commitment } => {
                self.start_attestation_dispute(ctx, now, stack_small_id, &attestation_commitment, &mut events)?
            }
            ExecuteMsg::SettleDispute { stack_small_id, stack_root } => {
                self.settle_dispute(ctx, now, stack_small_id, &stack_root, &mut events)?
            }
            ExecuteMsg::ClaimFunds { settled_ticket_ids } => {
                self.claim_funds(ctx, now, &settled_ticket_ids, &mut events)?
            }
            ExecuteMsg::ClaimFundsForStacks { stack_small_ids, num_compute_units_per_stack_to_claim } => self
                .claim_funds_for_stacks(
                    ctx,
                    now,
                    &stack_small_ids,
                    &num_compute_units_per_stack_to_claim,
                    &mut events,
                )?,
            other => self.set_param(ctx, other)?,
        }
        for e in &events {
            if self.recent_events.len() == RECENT_EVENTS {
                self.recent_events.pop_front();
            }
            self.recent_events.push_back(Recorded { time: ctx.env.time, epoch: now, event: e.clone() });
        }
        Ok(events)
    }

    fn require_admin(&self, ctx: &Ctx<'_>, what: &str) -> Result<(), ContractError> {
        if ctx.sender.address() == self.admin {
            Ok(())
        } else {
            Err(MarketCode::ENotAuthorized.err(format!("only the admin may {what}")))
        }
    }

    /// The admin setters (§4.7), each validated (Atoma leaves four of them unchecked).
    fn set_param(&mut self, ctx: &Ctx<'_>, msg: ExecuteMsg) -> Result<(), ContractError> {
        self.require_admin(ctx, "change the market's parameters")?;
        let bad = |what: &str| MarketCode::EInvalidParameter.err(what.to_string());
        let total = |a: u64, b: u64| {
            if a.saturating_add(b) <= 1000 {
                Ok(())
            } else {
                Err(MarketCode::ETotalPermilleMustBeLessThan1000.err(format!("{a}‰ + {b}‰ is over 1000‰")))
            }
        };
        let p = &mut self.params;
        match msg {
            ExecuteMsg::DisableRegistration {} => p.is_registration_disabled = true,
            ExecuteMsg::EnableRegistration {} => p.is_registration_disabled = false,
            ExecuteMsg::SetRequiredRegistrationCollateral { amount } => p.registration_collateral = amount,
            ExecuteMsg::SetPermilleToSlashNodeOnTimeout { permille } => {
                total(permille, 0)?;
                p.permille_to_slash_node_on_timeout = permille;
            }
            ExecuteMsg::SetPermilleForOracleOnDispute { permille } => {
                total(permille, p.permille_for_honest_nodes_on_dispute)?;
                p.permille_for_oracle_on_dispute = permille;
            }
            ExecuteMsg::SetPermilleForHonestNodesOnDispute { permille } => {
                total(permille, p.permille_for_oracle_on_dispute)?;
                p.permille_for_honest_nodes_on_dispute = permille;
            }
            ExecuteMsg::SetCrossValidationProbabilityPermille { permille } => {
                if permille > 1000 {
                    return Err(bad("a probability is at most 1000‰"));
                }
                p.cross_validation_probability_permille = permille;
            }
            ExecuteMsg::SetCrossValidationExtraNodesCount { count } => {
                if count == 0 || count > MAX_EXTRA_NODES {
                    return Err(bad("the extra-nodes count is 1 to 16"));
                }
                p.cross_validation_extra_nodes_count = count;
            }
            ExecuteMsg::SetSamplingConsensusChargePermille { permille } => {
                if !(1000..=10_000).contains(&permille) {
                    return Err(bad(
                        "the sampling-consensus charge is 1000‰ to 10000‰ (a node never earns less than the base price)",
                    ));
                }
                p.sampling_consensus_charge_permille = permille;
            }
            ExecuteMsg::SetCrossValidationExtraNodesChargePermille { permille } => {
                if permille > 10_000 {
                    return Err(bad("the extra-nodes charge is at most 10000‰"));
                }
                p.cross_validation_extra_nodes_charge_permille = permille;
            }
            ExecuteMsg::SetStackSettlementDeadlineEpochs { epochs } => {
                if epochs == 0 || epochs > 3650 {
                    return Err(bad("the settlement deadline is 1 to 3650 epochs"));
                }
                p.stack_settlement_deadline_epochs = epochs;
            }
            _ => return Err(bad("not a parameter")),
        }
        Ok(())
    }

    /// The node the signer registered as (Atoma's NodeBadge).
    fn caller_node(&self, ctx: &Ctx<'_>) -> Result<u64, ContractError> {
        self.nodes_by_key
            .get(&ctx.sender_key())
            .copied()
            .ok_or_else(|| MarketCode::ENotAMarketNode.err("the signer is not a registered market node"))
    }

    fn node_mut(&mut self, id: u64) -> Result<&mut Node, ContractError> {
        self.nodes.get_mut(&id).ok_or_else(|| MarketCode::ENodeNotFound.err(format!("node {id}")))
    }

    fn task(&self, id: u64) -> Result<&Task, ContractError> {
        self.tasks.get(&id).ok_or_else(|| MarketCode::ETaskNotFound.err(format!("task {id}")))
    }

    fn task_mut(&mut self, id: u64) -> Result<&mut Task, ContractError> {
        self.tasks.get_mut(&id).ok_or_else(|| MarketCode::ETaskNotFound.err(format!("task {id}")))
    }

    fn stack(&self, id: u64) -> Result<&Stack, ContractError> {
        self.stacks.get(&id).ok_or_else(|| MarketCode::EStackNotFound.err(format!("stack {id}")))
    }

    /// Raises (`gain`) or lowers reputation by `amount`, within 0..=100.
    fn adjust_reputation(&mut self, id: u64, gain: bool, amount: u8) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.reputation_score = if gain {
                n.reputation_score.saturating_add(amount).min(REPUTATION_MAX)
            } else {
                n.reputation_score.saturating_sub(amount)
            };
        }
    }

    /// The market's books against the bank (the property test runs it after every step): the
    /// collateral account holds
    /// every node's collateral, the escrow account every live stack's escrow, and the fee
    /// treasury at least what nodes may withdraw.
    pub fn accounts_balance(&self, bank: &bank::State) -> Result<(), String> {
        use bank::accounts::*;
        let collateral: u128 = self.nodes.values().map(|n| n.collateral.0).sum();
        if bank.module_balance(MARKET_COLLATERAL) != collateral {
            return Err(format!(
                "collateral account {} ≠ Σ collateral {collateral}",
                bank.module_balance(MARKET_COLLATERAL)
            ));
        }
        let escrow: u128 = self.stacks.values().map(|s| s.escrow_left.0).sum();
        if bank.module_balance(MARKET_ESCROW) != escrow {
            return Err(format!("escrow account {} ≠ Σ escrow left {escrow}", bank.module_balance(MARKET_ESCROW)));
        }
        let owed: u128 = self.nodes.values().map(|n| n.available_fee_amount.0 + n.last_fee_epoch_amount.0).sum();
        if bank.module_balance(MARKET_FEE_TREASURY) < owed {
            return Err(format!("fee treasury {} < fees owed {owed}", bank.module_balance(MARKET_FEE_TREASURY)));
        }
        Ok(())
    }
}
