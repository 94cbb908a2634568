//! Stacks: purchase (node sampling, escrow), `try_settle_stack` (attester sampling), and the
//! owner's reclaim after the deadline.

use super::error::{MarketCode, overflow};
use super::fees;
use super::nodes::insufficient;
use super::sampling::Rng;
use super::{Ctx, Event, State, types::*};
use crate::contracts::ContractError;
use crate::contracts::bank::{accounts, module_address};
use crate::contracts::rewards::Uint128;

impl State {
    /// Nodes a stack of `task` at price cap `cap` for `units` may go to (§7.1, PRAG's rules):
    /// subscribed at or under the cap, room for the units, registered and not disabled, at or
    /// above the task's minimum reputation *now*, whitelisted for a private task, and holding at
    /// least the required collateral. Ordered by node id.
    pub(super) fn eligible_nodes(&self, task: &Task, cap: u64, units: u64) -> Vec<u64> {
        task.subscribed_nodes
            .values()
            .filter(|d| d.price_per_one_million_compute_units <= cap && d.max_num_compute_units >= units)
            .filter(|d| {
                self.nodes.get(&d.node_id).is_some_and(|n| {
                    n.was_disabled_in_epoch.is_none()
                        && n.reputation_score >= task.minimum_reputation_score
                        && n.collateral.0 >= self.params.registration_collateral.0
                        && (task.is_public || task.whitelisted_nodes.contains(&d.node_id))
                })
            })
            .map(|d| d.node_id)
            .collect()
    }

    pub(super) fn acquire_new_stack(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        task_id: u64,
        units: u64,
        price: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        if units == 0 {
            return Err(MarketCode::EInvalidComputeUnits.err("buy at least one compute unit"));
        }
        if price == 0 {
            return Err(MarketCode::EInvalidPricePerComputeUnit.err("the price must be positive"));
        }
        let task = self.task(task_id)?;
        if task.is_deprecated {
            return Err(MarketCode::ETaskDeprecated.err(format!("task {task_id} is deprecated")));
        }
        let level = task.security_level;
        let sampling = level == security::SAMPLING_CONSENSUS;
        let p = self.params.clone();
        let escrow = fees::escrow(
            sampling,
            price,
            units,
            p.sampling_consensus_charge_permille,
            p.cross_validation_extra_nodes_charge_permille,
        )?;
        if escrow == 0 {
            return Err(MarketCode::EInvalidPricePerComputeUnit
                .err("the stack would cost nothing: price × units must reach one million"));
        }
        let owner = ctx.sender.address();
        let have = ctx.bank.balance(&owner);
        if have < escrow {
            return Err(MarketCode::EInsufficientBalance.err(format!("the stack costs {escrow}; {owner} has {have}")));
        }
        if task.subscribed_nodes.is_empty() {
            return Err(MarketCode::ENoNodesSubscribedToTask.err(format!("task {task_id} has no subscribed node")));
        }
        let eligible = self.eligible_nodes(task, price, units);
        if eligible.is_empty() {
            return Err(MarketCode::ENoNodesEligibleForTask
                .err(format!("no node of task {task_id} serves {units} units at or under {price} per million")));
        }
        let id = self.next_stack_small_id;
        let mut rng = Rng::for_purpose(&ctx.seed, "stack", id);
        let selected = eligible[rng.below(eligible.len() as u64) as usize];
        ctx.bank.transfer(&owner, &module_address(accounts::MARKET_ESCROW), escrow).map_err(insufficient)?;
        self.next_stack_small_id = id.checked_add(1).ok_or_else(overflow)?;
        self.stacks.insert(
            id,
            Stack {
                stack_small_id: id,
                owner: owner.clone(),
                price_per_one_million_compute_units: price,
                num_compute_units: units,
                selected_node_id: selected,
                task_small_id: task_id,
                is_claimed: false,
                security_level: level,
                escrow: Uint128(escrow),
                escrow_left: Uint128(escrow),
                created_epoch: now,
                settle_by_epoch: now.saturating_add(p.stack_settlement_deadline_epochs),
                sampling_consensus_charge_permille: p.sampling_consensus_charge_permille,
                cross_validation_extra_nodes_charge_permille: p.cross_validation_extra_nodes_charge_permille,
                cross_validation_extra_nodes_count: p.cross_validation_extra_nodes_count,
                cross_validation_probability_permille: p.cross_validation_probability_permille,
                status: StackStatus::Open,
            },
        );
        events.push(Event::StackCreatedEvent {
            stack_id: format!("stack/{id}"),
            stack_small_id: id,
            owner,
            task_small_id: task_id,
            selected_node_id: selected,
            num_compute_units: units,
            price_per_one_million_compute_units: price,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn try_settle_stack(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        claimed: u64,
        proof: &str,
        leaf: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let caller = self.caller_node(ctx)?;
        let stack = self.stack(stack_id)?.clone();
        if stack.selected_node_id != caller {
            return Err(MarketCode::ENodeNotSelectedForStack
                .err(format!("stack {stack_id} went to node {}, not {caller}", stack.selected_node_id)));
        }
        if claimed > stack.num_compute_units {
            return Err(MarketCode::ETooManyComputedUnits
                .err(format!("{claimed} units claimed of {} bought", stack.num_compute_units)));
        }
        if self.tickets.contains_key(&stack_id) {
            return Err(MarketCode::EStackInSettlementDispute.err(format!("stack {stack_id} already has a ticket")));
        }
        super::check_proof_and_leaf(proof, leaf)?;
        if stack.status != StackStatus::Open {
            return Err(MarketCode::EStackAlreadyClaimed.err(format!("stack {stack_id} is {:?}", stack.status)));
        }
        if now > stack.settle_by_epoch {
            return Err(MarketCode::EStackSettlementDeadlinePassed
                .err(format!("stack {stack_id} had to be settled by epoch {}", stack.settle_by_epoch)));
        }
        let k = stack.cross_validation_extra_nodes_count;
        let (attestation, requested) = if stack.security_level != security::SAMPLING_CONSENSUS {
            (Attestation::NotApplicable, Vec::new())
        } else {
            let mut rng = Rng::for_purpose(&ctx.seed, "attesters", stack_id);
            let r = rng.below(1000) + 1;
            if r > stack.cross_validation_probability_permille {
                (Attestation::NotDrawn, Vec::new())
            } else {
                let eligible: Vec<u64> = self
                    .tasks
                    .get(&stack.task_small_id)
                    .map(|t| self.eligible_nodes(t, stack.price_per_one_million_compute_units, stack.num_compute_units))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|n| *n != caller)
                    .collect();
                match rng.choose_distinct(&eligible, k as usize) {
                    Some(chosen) => (Attestation::Sampled, chosen),
                    None => (Attestation::TooFewEligible { eligible: eligible.len() as u64, needed: k }, Vec::new()),
                }
            }
        };
        let mut leaves = vec![leaf.to_string()];
        if attestation == Attestation::Sampled {
            leaves.extend(std::iter::repeat_n(String::new(), requested.len()));
        }
        let dispute_settled_at_epoch = now.saturating_add(STACK_DISPUTE_SETTLEMENT_DELAY);
        self.tickets.insert(
            stack_id,
            Ticket {
                stack_small_id: stack_id,
                selected_node_id: caller,
                num_claimed_compute_units: claimed,
                requested_attestation_nodes: requested.clone(),
                dispute_settled_at_epoch,
                committed_stack_proof: proof.to_string(),
                stack_merkle_leaves: leaves,
                already_attested_nodes: Vec::new(),
                is_in_dispute: false,
                attestation,
                commitments: Default::default(),
                dispute_opened_by: None,
                resolution: None,
            },
        );
        if let Some(s) = self.stacks.get_mut(&stack_id) {
            s.status = StackStatus::Settling;
        }
        events.push(Event::StackTrySettleEvent {
            stack_small_id: stack_id,
            selected_node_id: caller,
            requested_attestation_nodes: requested,
            committed_stack_proof: proof.to_string(),
            stack_merkle_leaf: leaf.to_string(),
            num_claimed_compute_units: claimed,
        });
        Ok(())
    }

    /// PRAG: what the owner of an abandoned stack does (Atoma has no way back for that money).
    /// - never settled by its deadline: the whole escrow comes back, the node loses reputation;
    /// - settled, undisputed, and not claimed within the deadline after its window: it is paid
    ///   out as the node's claim would have paid it;
    /// - disputed and never resolved within the deadline after its window (no oracle acted):
    ///   the whole escrow comes back, nobody is slashed.
    pub(super) fn reclaim_stack(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let stack = self.stack(stack_id)?.clone();
        if stack.owner != ctx.sender.address() {
            return Err(MarketCode::ENotStackOwner.err(format!("stack {stack_id} belongs to {}", stack.owner)));
        }
        let grace = self.params.stack_settlement_deadline_epochs;
        let ticket = self.tickets.get(&stack_id).cloned();
        let not_yet =
            |by: u64| MarketCode::EStackNotExpired.err(format!("stack {stack_id} can be reclaimed after epoch {by}"));
        match (stack.status, ticket) {
            (StackStatus::Open, _) => {
                if now <= stack.settle_by_epoch {
                    return Err(not_yet(stack.settle_by_epoch));
                }
                self.adjust_reputation(stack.selected_node_id, false, REPUTATION_TIMEOUT_LOSS);
                self.return_escrow(ctx, stack_id, events)
            }
            (StackStatus::Settling, Some(t)) => {
                let by = t.dispute_settled_at_epoch.saturating_add(grace);
                if now <= by {
                    return Err(not_yet(by));
                }
                self.pay_out_ticket(ctx, stack_id, events).map(|_| ())
            }
            (StackStatus::Disputed, Some(t)) => {
                let by = t.dispute_settled_at_epoch.saturating_add(grace);
                if now <= by {
                    return Err(not_yet(by));
                }
                self.return_escrow(ctx, stack_id, events)
            }
            (status, _) => Err(MarketCode::EStackAlreadyClaimed.err(format!("stack {stack_id} is {status:?}"))),
        }
    }

    /// Gives the owner everything left in a stack's escrow and closes it.
    fn return_escrow(
        &mut self,
        ctx: &mut Ctx<'_>,
        stack_id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let s = self
            .stacks
            .get_mut(&stack_id)
            .ok_or_else(|| MarketCode::EStackNotFound.err(format!("stack {stack_id}")))?;
        let amount = s.escrow_left.0;
        s.escrow_left = Uint128(0);
        s.status = StackStatus::Reclaimed;
        s.is_claimed = true;
        let owner = s.owner.clone();
        ctx.bank.transfer(&module_address(accounts::MARKET_ESCROW), &owner, amount)?;
        events.push(Event::StackReclaimedEvent { stack_small_id: stack_id, owner, amount: Uint128(amount) });
        Ok(())
    }

    /// Pays `amount` out of a stack's escrow to `to` (never more than the stack has left).
    pub(super) fn pay_from_escrow(
        &mut self,
        ctx: &mut Ctx<'_>,
        stack_id: u64,
        to: &str,
        amount: u128,
    ) -> Result<u128, ContractError> {
        let s = self
            .stacks
            .get_mut(&stack_id)
            .ok_or_else(|| MarketCode::EStackNotFound.err(format!("stack {stack_id}")))?;
        let paid = amount.min(s.escrow_left.0);
        s.escrow_left = Uint128(s.escrow_left.0 - paid);
        ctx.bank.transfer(&module_address(accounts::MARKET_ESCROW), to, paid)?;
        Ok(paid)
    }
}
