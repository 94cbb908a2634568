//! Settlement after `try_settle_stack`: attestations, disputes and their resolution, and the
//! claims that pay nodes and refund owners.

use std::collections::BTreeSet;

use super::commitment::{parse32, proof_of_slots, slot};
use super::error::{MarketCode, overflow};
use super::fees;
use super::{Ctx, Event, State, types::*};
use crate::contracts::ContractError;
use crate::contracts::bank::{accounts, module_address};
use crate::contracts::rewards::Uint128;

/// What a settled stack owes by the spec's formulas (§5), at the stack's own S.
struct Owed {
    /// The serving node's fee for the units claimed.
    fee: u128,
    /// The owner's refund for the units not used.
    refund: u128,
}

impl Owed {
    fn of(stack: &Stack, ticket: &Ticket) -> Result<Owed, ContractError> {
        let sampling = stack.security_level == security::SAMPLING_CONSENSUS;
        let (c, p, u, s) = (
            ticket.num_claimed_compute_units,
            stack.price_per_one_million_compute_units,
            stack.num_compute_units,
            stack.sampling_consensus_charge_permille,
        );
        Ok(Owed { fee: fees::node_fee(sampling, c, p, s)?, refund: fees::refund(sampling, u, c, p, s)? })
    }
}

/// Who took part in a settlement and what each committed.
struct Participant {
    node: u64,
    /// Slot index: 0 the serving node, i+1 the i-th requested attester.
    index: usize,
    commitment: Option<String>,
}

impl State {
    fn ticket_mut(&mut self, id: u64) -> Result<&mut Ticket, ContractError> {
        self.tickets
            .get_mut(&id)
            .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err(format!("stack {id} has no ticket")))
    }

    fn set_status(&mut self, id: u64, status: StackStatus) {
        if let Some(s) = self.stacks.get_mut(&id) {
            s.status = status;
            s.is_claimed = matches!(status, StackStatus::Claimed | StackStatus::Resolved | StackStatus::Reclaimed);
        }
    }

    /// The attester checks shared by attestation and dispute (Atoma's order where it has them).
    fn attester_checks(&self, ctx: &Ctx<'_>, now: u64, stack_id: u64) -> Result<(u64, usize), ContractError> {
        let stack = self.stack(stack_id)?;
        let ticket = self
            .tickets
            .get(&stack_id)
            .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err(format!("stack {stack_id} has no ticket")))?;
        if stack.security_level != security::SAMPLING_CONSENSUS {
            return Err(MarketCode::EStackDoesNotRequireSamplingConsensus.err(format!("stack {stack_id}")));
        }
        if matches!(stack.status, StackStatus::Claimed | StackStatus::Resolved | StackStatus::Reclaimed) {
            return Err(MarketCode::EStackAlreadyClaimed.err(format!("stack {stack_id} is {:?}", stack.status)));
        }
        if ticket.dispute_settled_at_epoch < now {
            return Err(MarketCode::EStackDisputePeriodOver
                .err(format!("attestations closed after epoch {}", ticket.dispute_settled_at_epoch)));
        }
        let caller = self.caller_node(ctx)?;
        let Some(i) = ticket.requested_attestation_nodes.iter().position(|n| *n == caller) else {
            return Err(MarketCode::ENodeNotSelectedForAttestation.err(format!("node {caller} was not requested")));
        };
        if ticket.already_attested_nodes.contains(&caller) {
            return Err(
                MarketCode::ENodeAlreadyAttested.err(format!("node {caller} already attested stack {stack_id}"))
            );
        }
        Ok((caller, i))
    }

    fn open_dispute(
        &mut self,
        stack_id: u64,
        by: u64,
        commitment: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let t = self.ticket_mut(stack_id)?;
        t.is_in_dispute = true;
        t.dispute_opened_by = Some(by);
        let (original_node_id, original_commitment) = (t.selected_node_id, t.committed_stack_proof.clone());
        self.set_status(stack_id, StackStatus::Disputed);
        events.push(Event::StackAttestationDisputeEvent {
            stack_small_id: stack_id,
            attestation_commitment: commitment.to_string(),
            attestation_node_id: by,
            original_node_id,
            original_commitment,
        });
        Ok(())
    }

    pub(super) fn submit_attestation(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        proof: &str,
        leaf: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.stack(stack_id)?;
        if !self.tickets.contains_key(&stack_id) {
            return Err(MarketCode::EStackNotInSettlementDispute.err(format!("stack {stack_id} has no ticket")));
        }
        super::check_proof_and_leaf(proof, leaf)?;
        let (caller, i) = self.attester_checks(ctx, now, stack_id)?;
        let t = self.ticket_mut(stack_id)?;
        t.commitments.insert(caller, proof.to_string());
        t.already_attested_nodes.push(caller);
        if let Some(s) = t.stack_merkle_leaves.get_mut(i + 1) {
            *s = leaf.to_string();
        }
        let (in_dispute, agrees) = (t.is_in_dispute, t.committed_stack_proof == proof);
        let complete = t.already_attested_nodes.len() == t.requested_attestation_nodes.len();
        let ticket = t.clone();
        if !in_dispute && !agrees {
            return self
                .open_dispute(stack_id, caller, proof, events)
                .and_then(|_| self.try_majority(ctx, now, stack_id, events));
        }
        events.push(Event::NewStackSettlementAttestationEvent {
            stack_small_id: stack_id,
            attestation_node_id: caller,
            committed_stack_proof: proof.to_string(),
            stack_merkle_leaf: leaf.to_string(),
        });
        if in_dispute {
            return self.try_majority(ctx, now, stack_id, events);
        }
        if complete {
            let slots: Option<Vec<[u8; 32]>> = ticket.stack_merkle_leaves.iter().map(|s| parse32(s)).collect();
            let matches = slots.is_some_and(|s| hex::encode(proof_of_slots(&s)) == ticket.committed_stack_proof);
            if !matches {
                return self.open_dispute(stack_id, caller, proof, events);
            }
            events.push(Event::StackSettlementTicketEvent {
                stack_small_id: stack_id,
                selected_node_id: ticket.selected_node_id,
                num_claimed_compute_units: ticket.num_claimed_compute_units,
                requested_attestation_nodes: ticket.requested_attestation_nodes.clone(),
                dispute_settled_at_epoch: now,
                committed_stack_proof: ticket.committed_stack_proof.clone(),
            });
        }
        Ok(())
    }

    /// Only a requested attester, not yet attested, whose commitment differs, within the window.
    pub(super) fn start_attestation_dispute(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        commitment: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.stack(stack_id)?;
        let t = self
            .tickets
            .get(&stack_id)
            .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err(format!("stack {stack_id} has no ticket")))?;
        if t.is_in_dispute {
            return Err(MarketCode::EStackAlreadyInDispute.err(format!("stack {stack_id}")));
        }
        if self.stack(stack_id)?.security_level != security::SAMPLING_CONSENSUS {
            return Err(MarketCode::ETaskSecurityLevelNotSamplingConsensus.err(format!("stack {stack_id}")));
        }
        if parse32(commitment).is_none() {
            return Err(MarketCode::EInvalidCommittedStackProof.err("the commitment must be 32 bytes of hex"));
        }
        if t.committed_stack_proof == commitment {
            return Err(MarketCode::ECommitmentMatches.err("this commitment is the node's: attest instead"));
        }
        let (caller, _) = self.attester_checks(ctx, now, stack_id)?;
        let t = self.ticket_mut(stack_id)?;
        t.commitments.insert(caller, commitment.to_string());
        t.already_attested_nodes.push(caller);
        self.open_dispute(stack_id, caller, commitment, events)?;
        self.try_majority(ctx, now, stack_id, events)
    }

    fn participants(ticket: &Ticket) -> Vec<Participant> {
        let mut v = vec![Participant {
            node: ticket.selected_node_id,
            index: 0,
            commitment: Some(ticket.committed_stack_proof.clone()),
        }];
        for (i, n) in ticket.requested_attestation_nodes.iter().enumerate() {
            v.push(Participant { node: *n, index: i + 1, commitment: ticket.commitments.get(n).cloned() });
        }
        v
    }

    /// With K ≥ 2 and every attester in, a strict majority of the K+1 commitments decides.
    fn try_majority(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let Some(t) = self.tickets.get(&stack_id) else { return Ok(()) };
        let k = t.requested_attestation_nodes.len();
        if !t.is_in_dispute || k < 2 || t.already_attested_nodes.len() < k {
            return Ok(());
        }
        let parts = Self::participants(t);
        let mut votes: std::collections::BTreeMap<&str, usize> = Default::default();
        for p in &parts {
            if let Some(c) = &p.commitment {
                *votes.entry(c.as_str()).or_default() += 1;
            }
        }
        let Some((winner, count)) = votes.iter().max_by_key(|(_, c)| **c) else { return Ok(()) };
        if *count * 2 <= k + 1 {
            return Ok(()); // no strict majority: an oracle decides
        }
        let winner = winner.to_string();
        let wrong: BTreeSet<u64> =
            parts.iter().filter(|p| p.commitment.as_deref() != Some(winner.as_str())).map(|p| p.node).collect();
        if wrong.is_empty() {
            return Ok(()); // all proofs agree but the slots do not hash to them: an oracle decides
        }
        self.resolve(ctx, now, stack_id, &wrong, &[], None, "majority", Some(winner), events)
    }

    /// PRAG: one of the task's oracles recomputed the stack root; every participant is judged
    /// against the proof and slot that root gives.
    pub(super) fn settle_dispute(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        root: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let stack = self.stack(stack_id)?.clone();
        let ticket = self.tickets.get(&stack_id).filter(|t| t.is_in_dispute).cloned().ok_or_else(|| {
            MarketCode::EStackNotInSettlementDispute.err(format!("stack {stack_id} is not in dispute"))
        })?;
        let Some(root) = parse32(root) else {
            return Err(MarketCode::EInvalidCommittedStackProof.err("the stack root must be 32 bytes of hex"));
        };
        let caller = self.caller_node(ctx)?;
        let is_oracle = self.tasks.get(&stack.task_small_id).is_some_and(|t| t.oracles.contains(&caller));
        if !is_oracle {
            return Err(
                MarketCode::ENotAnOracle.err(format!("node {caller} is not an oracle of task {}", stack.task_small_id))
            );
        }
        let parts = Self::participants(&ticket);
        if parts.iter().any(|p| p.node == caller) {
            return Err(MarketCode::EOracleIsParticipant.err(format!("node {caller} took part in stack {stack_id}")));
        }
        let slots: Vec<[u8; 32]> = (0..parts.len()).map(|i| slot(i as u8, &root)).collect();
        let expected = hex::encode(proof_of_slots(&slots));
        let mut wrong = BTreeSet::new();
        let mut timed_out = Vec::new();
        for p in &parts {
            let Some(c) = &p.commitment else {
                timed_out.push(p.node);
                continue;
            };
            let leaf = ticket.stack_merkle_leaves.get(p.index).filter(|l| !l.is_empty());
            let bad_leaf = leaf.is_some_and(|l| *l != hex::encode(slots[p.index]));
            if *c != expected || bad_leaf {
                wrong.insert(p.node);
            }
        }
        self.resolve(ctx, now, stack_id, &wrong, &timed_out, Some(caller), "oracle", Some(expected), events)
    }

    /// Ends a dispute: the wrong lose all collateral and reputation, the timed-out the timeout
    /// per-mille; the slashed total pays the oracle (⌈T·oracle‰/1000⌉) and the honest
    /// participants (⌊rest·honest‰/1000⌋, equally), the rest stays in the communal treasury;
    /// the stack's escrow pays the node if it was right, refunds the owner everything it paid
    /// for if it was not, and pays the honest attesters their surcharge.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        stack_id: u64,
        wrong: &BTreeSet<u64>,
        timed_out: &[u64],
        oracle: Option<u64>,
        how: &str,
        winning: Option<String>,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let stack = self.stack(stack_id)?.clone();
        let ticket = self
            .tickets
            .get(&stack_id)
            .cloned()
            .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err("no ticket"))?;
        let mut slashed = 0u128;
        for n in wrong {
            let all = self.nodes.get(n).map(|x| x.collateral.0).unwrap_or(0);
            slashed =
                slashed.checked_add(self.slash(ctx, *n, all, stack_id, "dispute", events)?).ok_or_else(overflow)?;
            if let Some(x) = self.nodes.get_mut(n) {
                x.reputation_score = 0;
            }
        }
        for n in timed_out {
            self.slash_timeout(ctx, *n, stack_id, events)?;
        }
        let parts = Self::participants(&ticket);
        let honest: Vec<u64> = parts
            .iter()
            .filter(|p| p.commitment.is_some() && !wrong.contains(&p.node) && self.nodes.contains_key(&p.node))
            .map(|p| p.node)
            .collect();
        let oracle_reward = match oracle {
            Some(_) => fees::permille_ceil(slashed, self.params.permille_for_oracle_on_dispute)?.min(slashed),
            None => 0,
        };
        let honest_total =
            fees::permille_floor(slashed - oracle_reward, self.params.permille_for_honest_nodes_on_dispute)?;
        let each = if honest.is_empty() { 0 } else { honest_total / honest.len() as u128 };
        let honest_paid = each * honest.len() as u128;
        ctx.bank.move_between(
            accounts::MARKET_COMMUNAL_TREASURY,
            accounts::MARKET_FEE_TREASURY,
            oracle_reward.checked_add(honest_paid).ok_or_else(overflow)?,
        )?;
        if let Some(o) = oracle {
            self.attribute_fee(o, now, oracle_reward)?;
        }
        for n in &honest {
            self.attribute_fee(*n, now, each)?;
        }
        // The stack's own money.
        let Owed { fee, refund } = Owed::of(&stack, &ticket)?;
        let node_wrong = wrong.contains(&stack.selected_node_id);
        let (node_fee, owner_gets) =
            if node_wrong { (0, fee.checked_add(refund).ok_or_else(overflow)?) } else { (fee, refund) };
        if node_fee > 0 {
            let to = self.nodes.get(&stack.selected_node_id).map(|n| n.address.clone());
            let to = to.unwrap_or_else(|| module_address(accounts::MARKET_FEE_TREASURY));
            self.pay_from_escrow(ctx, stack_id, &to, node_fee)?;
        }
        let refunded = self.pay_from_escrow(ctx, stack_id, &stack.owner.clone(), owner_gets)?;
        let attesters: Vec<u64> = honest.iter().copied().filter(|n| *n != stack.selected_node_id).collect();
        self.pay_attesters(ctx, &stack, &ticket, &attesters)?;
        self.sweep_escrow(ctx, stack_id)?;
        for n in &honest {
            self.adjust_reputation(*n, true, REPUTATION_GAIN);
        }
        let resolution = Resolution {
            resolved_by: how.to_string(),
            oracle_node_id: oracle,
            winning_commitment: winning,
            dishonest_nodes: wrong.iter().copied().collect(),
            timed_out_nodes: timed_out.to_vec(),
            slashed_amount: Uint128(slashed),
            oracle_reward: Uint128(oracle_reward),
            honest_nodes: honest.clone(),
            honest_reward_each: Uint128(each),
            communal_amount: Uint128(slashed - oracle_reward - honest_paid),
            user_refund_amount: Uint128(refunded),
            node_fee: Uint128(node_fee),
            resolved_at_epoch: now,
        };
        let t = self.ticket_mut(stack_id)?;
        t.is_in_dispute = false;
        t.resolution = Some(resolution.clone());
        self.set_status(stack_id, StackStatus::Resolved);
        events.push(Event::StackDisputeResolvedEvent { stack_small_id: stack_id, resolution });
        Ok(())
    }

    /// The attesters' share of the stack's extra-nodes surcharge, credited to their fees.
    fn pay_attesters(
        &mut self,
        ctx: &mut Ctx<'_>,
        stack: &Stack,
        ticket: &Ticket,
        attesters: &[u64],
    ) -> Result<(), ContractError> {
        if attesters.is_empty() {
            return Ok(());
        }
        let stack_id = stack.stack_small_id;
        let pool = fees::attester_pool(
            ticket.num_claimed_compute_units,
            stack.price_per_one_million_compute_units,
            stack.cross_validation_extra_nodes_charge_permille,
        )?;
        let each = pool / attesters.len() as u128;
        let paid = self.pay_from_escrow(
            ctx,
            stack_id,
            &module_address(accounts::MARKET_FEE_TREASURY),
            each * attesters.len() as u128,
        )?;
        let each = paid / attesters.len() as u128;
        for a in attesters {
            self.credit_available(*a, each)?;
        }
        Ok(())
    }

    /// What is left of a settled stack's escrow (rounding, the unused surcharge) goes to the fee
    /// treasury, owned by the protocol, as in Atoma.
    fn sweep_escrow(&mut self, ctx: &mut Ctx<'_>, stack_id: u64) -> Result<(), ContractError> {
        let left = self.stack(stack_id)?.escrow_left.0;
        self.pay_from_escrow(ctx, stack_id, &module_address(accounts::MARKET_FEE_TREASURY), left)?;
        Ok(())
    }

    /// Pays out an undisputed ticket (a claim, or the owner's reclaim after the node never
    /// claimed): fee to the node, refund to the owner, surcharge to the attesters that attested,
    /// the timeout slash to those that did not.
    pub(super) fn pay_out_ticket(
        &mut self,
        ctx: &mut Ctx<'_>,
        stack_id: u64,
        events: &mut Vec<Event>,
    ) -> Result<u128, ContractError> {
        let stack = self.stack(stack_id)?.clone();
        let ticket = self
            .tickets
            .get(&stack_id)
            .cloned()
            .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err("no ticket"))?;
        let Owed { fee, refund } = Owed::of(&stack, &ticket)?;
        let to = self.nodes.get(&stack.selected_node_id).map(|n| n.address.clone());
        let fee_paid = self.pay_from_escrow(
            ctx,
            stack_id,
            &to.unwrap_or_else(|| module_address(accounts::MARKET_FEE_TREASURY)),
            fee,
        )?;
        let refunded = self.pay_from_escrow(ctx, stack_id, &stack.owner.clone(), refund)?;
        let attested: Vec<u64> =
            ticket.already_attested_nodes.iter().copied().filter(|n| self.nodes.contains_key(n)).collect();
        self.pay_attesters(ctx, &stack, &ticket, &attested)?;
        for a in &ticket.requested_attestation_nodes {
            if !ticket.already_attested_nodes.contains(a) {
                self.slash_timeout(ctx, *a, stack_id, events)?;
            }
        }
        self.sweep_escrow(ctx, stack_id)?;
        self.adjust_reputation(stack.selected_node_id, true, REPUTATION_GAIN);
        for a in &attested {
            self.adjust_reputation(*a, true, REPUTATION_GAIN);
        }
        self.set_status(stack_id, StackStatus::Claimed);
        events.push(Event::StackSettlementTicketClaimedEvent {
            stack_small_id: stack_id,
            selected_node_id: stack.selected_node_id,
            attestation_nodes: ticket.requested_attestation_nodes.clone(),
            num_claimed_compute_units: ticket.num_claimed_compute_units,
            user_refund_amount: Uint128(refunded),
        });
        Ok(fee_paid)
    }

    pub(super) fn claim_funds(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        ids: &[u64],
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        if ids.len() > MAX_IDS_PER_MESSAGE {
            return Err(MarketCode::ETooManyItems.err(format!("at most {MAX_IDS_PER_MESSAGE} tickets per claim")));
        }
        let caller = self.caller_node(ctx)?;
        for id in ids {
            self.stack(*id)?;
            let t = self
                .tickets
                .get(id)
                .ok_or_else(|| MarketCode::EStackNotInSettlementDispute.err(format!("stack {id} has no ticket")))?;
            if t.selected_node_id != caller {
                return Err(MarketCode::ENodeNotSelectedForSettlement
                    .err(format!("stack {id} went to node {}", t.selected_node_id)));
            }
            if t.is_in_dispute {
                return Err(MarketCode::EStackInDispute.err(format!("stack {id}")));
            }
            // PRAG: attesters may attest through epoch `dispute_settled_at_epoch`; a claim in that
            // epoch would cut out (and slash) the ones still within it, so it waits for the next
            // one unless every requested attester is in.
            let all_in = t.requested_attestation_nodes.iter().all(|n| t.already_attested_nodes.contains(n));
            let open_until = t.dispute_settled_at_epoch;
            if now < open_until || (now == open_until && !all_in) {
                let from = if all_in { open_until } else { open_until.saturating_add(1) };
                return Err(MarketCode::EStackDisputePeriodIsNotOver.err(format!("claim stack {id} from epoch {from}")));
            }
            if self.stack(*id)?.status != StackStatus::Settling {
                return Err(
                    MarketCode::EStackAlreadyClaimed.err(format!("stack {id} is {:?}", self.stack(*id)?.status))
                );
            }
            self.pay_out_ticket(ctx, *id, events)?;
        }
        self.withdraw_fees(ctx, caller, now, events)
    }

    /// The confidential-compute fast path: no ticket, no wait (§4.4).
    pub(super) fn claim_funds_for_stacks(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        ids: &[u64],
        units: &[u64],
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        if ids.len() != units.len() {
            return Err(MarketCode::EInvalidNumClaimedComputeUnitsPerStack.err("one unit count per stack"));
        }
        if ids.len() > MAX_IDS_PER_MESSAGE {
            return Err(MarketCode::ETooManyItems.err(format!("at most {MAX_IDS_PER_MESSAGE} stacks per claim")));
        }
        let caller = self.caller_node(ctx)?;
        for (id, c) in ids.iter().zip(units) {
            let stack = self.stack(*id)?.clone();
            if stack.selected_node_id != caller {
                return Err(MarketCode::ENodeNotSelectedForClaim
                    .err(format!("stack {id} went to node {}", stack.selected_node_id)));
            }
            if stack.status != StackStatus::Open {
                return Err(MarketCode::EStackAlreadyClaimed.err(format!("stack {id} is {:?}", stack.status)));
            }
            if *c > stack.num_compute_units {
                return Err(MarketCode::EInvalidNumClaimedComputeUnitsPerStack
                    .err(format!("{c} units claimed of {} bought", stack.num_compute_units)));
            }
            if stack.security_level != security::CONFIDENTIAL_COMPUTE {
                return Err(MarketCode::ETaskIsNotConfidentialCompute.err(format!("stack {id}")));
            }
            if now > stack.settle_by_epoch {
                return Err(MarketCode::EStackSettlementDeadlinePassed
                    .err(format!("stack {id} had to be claimed by epoch {}", stack.settle_by_epoch)));
            }
            let p = stack.price_per_one_million_compute_units;
            let fee = fees::node_fee(false, *c, p, 0)?;
            let refund = fees::refund(false, stack.num_compute_units, *c, p, 0)?;
            let to = self.nodes.get(&caller).map(|n| n.address.clone()).unwrap_or_default();
            self.pay_from_escrow(ctx, *id, &to, fee)?;
            let refunded = self.pay_from_escrow(ctx, *id, &stack.owner, refund)?;
            self.sweep_escrow(ctx, *id)?;
            self.adjust_reputation(caller, true, REPUTATION_GAIN);
            self.set_status(*id, StackStatus::Claimed);
            events.push(Event::ClaimedStackEvent {
                stack_small_id: *id,
                selected_node_id: caller,
                num_claimed_compute_units: *c,
                user_refund_amount: Uint128(refunded),
            });
        }
        self.withdraw_fees(ctx, caller, now, events)
    }
}
