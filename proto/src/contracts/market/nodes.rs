//! Market nodes: registration with collateral, disabling, fees, subscriptions, slashing.

use super::error::{MarketCode, overflow};
use super::fees;
use super::{Ctx, Event, NodePriceData, State, types::*};
use crate::contracts::ContractError;
use crate::contracts::bank::{accounts, module_address};
use crate::contracts::rewards::Uint128;

/// A bank refusal for want of funds, as Atoma names it.
pub(super) fn insufficient(e: ContractError) -> ContractError {
    match e {
        ContractError::InsufficientFunds { account, have, need } => {
            MarketCode::EInsufficientBalance.err(format!("{account} has {have}, needs {need}"))
        }
        other => other,
    }
}

impl State {
    pub(super) fn register_node(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        collateral: u128,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        if self.params.is_registration_disabled {
            return Err(MarketCode::ENodeRegDisabled.err("node registration is disabled"));
        }
        let key = ctx.sender_key();
        let Some(peer_id) = (ctx.storage_node)(&key) else {
            return Err(MarketCode::ENotAdmittedStorageNode.err(
                "the signer is not a registered prag-storage worker (register it with `prag admin register-worker --type prag-storage --signing-key …`)",
            ));
        };
        if self.nodes_by_key.contains_key(&key) {
            return Err(MarketCode::ENodeAlreadyRegistered.err("this key already registered a node"));
        }
        if collateral < self.params.registration_collateral.0 {
            return Err(MarketCode::EInsufficientCollateral.err(format!(
                "collateral {collateral} is below the required {}",
                self.params.registration_collateral.0
            )));
        }
        let address = ctx.sender.address();
        ctx.bank.transfer(&address, &module_address(accounts::MARKET_COLLATERAL), collateral).map_err(insufficient)?;
        let id = self.next_node_small_id;
        self.next_node_small_id = id.checked_add(1).ok_or_else(overflow)?;
        self.nodes.insert(
            id,
            Node {
                node_small_id: id,
                public_key: key.clone(),
                address,
                peer_id,
                was_disabled_in_epoch: None,
                collateral: Uint128(collateral),
                last_fee_epoch: now,
                last_fee_epoch_amount: Uint128(0),
                available_fee_amount: Uint128(0),
                reputation_score: REPUTATION_START,
                slashed: Uint128(0),
            },
        );
        self.nodes_by_key.insert(key.clone(), id);
        events.push(Event::NodeRegisteredEvent { badge_id: key, node_small_id: id, collateral: Uint128(collateral) });
        Ok(())
    }

    pub(super) fn permanently_disable_node(&mut self, ctx: &Ctx<'_>, now: u64) -> Result<(), ContractError> {
        let id = self.caller_node(ctx)?;
        let node = self.node_mut(id)?;
        if node.was_disabled_in_epoch.is_some() {
            return Err(MarketCode::ENodeAlreadyDisabled.err(format!("node {id} is already disabled")));
        }
        node.was_disabled_in_epoch = Some(now);
        Ok(())
    }

    pub(super) fn destroy_disabled_node(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let id = self.caller_node(ctx)?;
        let node = self.node_mut(id)?;
        let Some(disabled) = node.was_disabled_in_epoch else {
            return Err(MarketCode::ENodeMustWaitBeforeDestroy.err(format!("node {id} is not disabled")));
        };
        if disabled.saturating_add(DESTROY_WAIT_EPOCHS) > now {
            return Err(MarketCode::ENodeMustWaitBeforeDestroy
                .err(format!("disabled in epoch {disabled}: destroy from epoch {}", disabled + DESTROY_WAIT_EPOCHS)));
        }
        self.withdraw_fees(ctx, id, now, events)?;
        let node = self.nodes.remove(&id).ok_or_else(|| MarketCode::ENodeNotFound.err(format!("node {id}")))?;
        self.nodes_by_key.remove(&node.public_key);
        for t in self.tasks.values_mut() {
            t.subscribed_nodes.remove(&id);
            t.oracles.remove(&id);
        }
        ctx.bank.transfer(&module_address(accounts::MARKET_COLLATERAL), &node.address, node.collateral.0)?;
        Ok(())
    }

    /// Atoma's epoch-locked fee accounting (`attribute_fee_to_node`): a fee attributed in epoch E
    /// can be withdrawn from E+1. The money must already be in the fee treasury.
    pub(super) fn attribute_fee(&mut self, id: u64, now: u64, fee: u128) -> Result<(), ContractError> {
        let Some(n) = self.nodes.get_mut(&id) else { return Ok(()) };
        if n.last_fee_epoch == now {
            n.last_fee_epoch_amount = Uint128(n.last_fee_epoch_amount.0.checked_add(fee).ok_or_else(overflow)?);
        } else {
            n.available_fee_amount =
                Uint128(n.available_fee_amount.0.checked_add(n.last_fee_epoch_amount.0).ok_or_else(overflow)?);
            n.last_fee_epoch_amount = Uint128(fee);
            n.last_fee_epoch = now;
        }
        Ok(())
    }

    /// Credits a fee withdrawable at once (Atoma's stack path), already in the fee treasury.
    pub(super) fn credit_available(&mut self, id: u64, fee: u128) -> Result<(), ContractError> {
        let Some(n) = self.nodes.get_mut(&id) else { return Ok(()) };
        n.available_fee_amount = Uint128(n.available_fee_amount.0.checked_add(fee).ok_or_else(overflow)?);
        Ok(())
    }

    pub(super) fn withdraw_fees(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        now: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.attribute_fee(id, now, 0)?;
        let n = self.node_mut(id)?;
        let amount = n.available_fee_amount.0;
        if amount == 0 {
            return Ok(());
        }
        n.available_fee_amount = Uint128(0);
        let to = n.address.clone();
        ctx.bank.transfer(&module_address(accounts::MARKET_FEE_TREASURY), &to, amount)?;
        events.push(Event::FeesWithdrawnEvent { node_small_id: id, amount: Uint128(amount) });
        Ok(())
    }

    /// Takes `amount` of a node's collateral into the communal treasury; returns what was taken.
    pub(super) fn slash(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        amount: u128,
        stack: u64,
        reason: &str,
        events: &mut Vec<Event>,
    ) -> Result<u128, ContractError> {
        let Some(n) = self.nodes.get_mut(&id) else { return Ok(0) };
        let taken = amount.min(n.collateral.0);
        n.collateral = Uint128(n.collateral.0 - taken);
        n.slashed = Uint128(n.slashed.0.checked_add(taken).ok_or_else(overflow)?);
        ctx.bank.move_between(accounts::MARKET_COLLATERAL, accounts::MARKET_COMMUNAL_TREASURY, taken)?;
        events.push(Event::NodeSlashedEvent {
            node_small_id: id,
            stack_small_id: stack,
            amount: Uint128(taken),
            reason: reason.to_string(),
        });
        Ok(taken)
    }

    /// A requested attester that never attested: the timeout per-mille of its collateral, and
    /// reputation down.
    pub(super) fn slash_timeout(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u64,
        stack: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let collateral = self.nodes.get(&id).map(|n| n.collateral.0).unwrap_or(0);
        let amount = fees::permille_ceil(collateral, self.params.permille_to_slash_node_on_timeout)?;
        self.slash(ctx, id, amount, stack, "attestation timeout", events)?;
        self.adjust_reputation(id, false, REPUTATION_TIMEOUT_LOSS);
        Ok(())
    }

    pub(super) fn subscribe(
        &mut self,
        ctx: &Ctx<'_>,
        task_id: u64,
        price: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        let task = self.task(task_id)?;
        let id = self.caller_node(ctx)?;
        let node = self.nodes.get(&id).ok_or_else(|| MarketCode::ENodeNotFound.err(format!("node {id}")))?;
        if node.reputation_score < task.minimum_reputation_score {
            return Err(MarketCode::ENodeDoesNotMeetTaskRequirements.err(format!(
                "reputation {} is below the task's minimum {}",
                node.reputation_score, task.minimum_reputation_score
            )));
        }
        if !task.is_public && !task.whitelisted_nodes.contains(&id) {
            return Err(MarketCode::ENodeNotWhitelistedForTask.err(format!("task {task_id} is private")));
        }
        if task.is_deprecated {
            return Err(MarketCode::ETaskDeprecated.err(format!("task {task_id} is deprecated")));
        }
        if task.subscribed_nodes.contains_key(&id) {
            return Err(MarketCode::ENodeAlreadySubscribedToTask.err(format!("node {id} on task {task_id}")));
        }
        if price == 0 {
            return Err(MarketCode::EInvalidPricePerComputeUnit.err("the price must be positive"));
        }
        let data = NodePriceData {
            node_id: id,
            price_per_one_million_compute_units: price,
            max_num_compute_units: COMPUTE_UNITS_PER_STACK,
        };
        self.task_mut(task_id)?.subscribed_nodes.insert(id, data);
        events.push(Event::NodeSubscribedToTaskEvent {
            task_small_id: task_id,
            node_small_id: id,
            price_per_one_million_compute_units: price,
            max_num_compute_units: COMPUTE_UNITS_PER_STACK,
        });
        Ok(())
    }

    pub(super) fn update_subscription(
        &mut self,
        ctx: &Ctx<'_>,
        task_id: u64,
        price: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        if price == 0 {
            return Err(MarketCode::EInvalidPricePerComputeUnit.err("the price must be positive"));
        }
        let task = self.task(task_id)?;
        let id = self.caller_node(ctx)?;
        if !task.subscribed_nodes.contains_key(&id) {
            return Err(MarketCode::ENodeNotSubscribedToTask.err(format!("node {id} on task {task_id}")));
        }
        if task.is_deprecated {
            return Err(MarketCode::ETaskDeprecated.err(format!("task {task_id} is deprecated")));
        }
        if let Some(d) = self.task_mut(task_id)?.subscribed_nodes.get_mut(&id) {
            d.price_per_one_million_compute_units = price;
        }
        events.push(Event::NodeSubscriptionUpdatedEvent {
            node_small_id: id,
            task_small_id: task_id,
            price_per_one_million_compute_units: price,
            max_num_compute_units: COMPUTE_UNITS_PER_STACK,
        });
        Ok(())
    }

    /// Unlike Atoma, a node may leave a deprecated task (Atoma refuses with ETaskDeprecated and
    /// keeps it subscribed until the task is removed).
    pub(super) fn unsubscribe(
        &mut self,
        ctx: &Ctx<'_>,
        task_id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.task(task_id)?;
        let id = self.caller_node(ctx)?;
        if self.task_mut(task_id)?.subscribed_nodes.remove(&id).is_none() {
            return Err(MarketCode::ENodeNotSubscribedToTask.err(format!("node {id} on task {task_id}")));
        }
        events.push(Event::NodeUnsubscribedFromTaskEvent { task_small_id: task_id, node_small_id: id });
        Ok(())
    }
}
