//! Tasks (the admin's): creation, deprecation, removal, whitelists and dispute oracles.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{MarketCode, overflow};
use super::{Ctx, Event, State, types::*};
use crate::contracts::{ContractError, check_field};

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn create_task(
        &mut self,
        ctx: &Ctx<'_>,
        role: u16,
        model_name: Option<String>,
        security_level: Option<u16>,
        minimum_reputation_score: Option<u8>,
        is_public: bool,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.require_admin(ctx, "create tasks")?;
        if role > role::MAX {
            return Err(MarketCode::EInvalidTaskRole.err(format!("role {role} (0 to {})", role::MAX)));
        }
        let level = security_level.unwrap_or(security::NO_SECURITY);
        if level > security::SAMPLING_CONSENSUS {
            return Err(MarketCode::EInvalidSecurityLevel.err(format!("security level {level} (0, 1 or 2)")));
        }
        if let Some(m) = minimum_reputation_score
            && m > REPUTATION_MAX
        {
            return Err(MarketCode::EInvalidMinimumReputationScore.err(format!("{m} is above {REPUTATION_MAX}")));
        }
        if let Some(name) = &model_name {
            check_field("model_name", name, 256)?;
        }
        let id = self.next_task_small_id;
        self.next_task_small_id = id.checked_add(1).ok_or_else(overflow)?;
        self.tasks.insert(
            id,
            Task {
                task_small_id: id,
                role,
                model_name: model_name.clone(),
                is_deprecated: false,
                deprecated_at_epoch: None,
                security_level: level,
                minimum_reputation_score: minimum_reputation_score.unwrap_or(0),
                is_public,
                whitelisted_nodes: BTreeSet::new(),
                subscribed_nodes: BTreeMap::new(),
                oracles: BTreeSet::new(),
            },
        );
        events.push(Event::TaskRegisteredEvent {
            task_id: format!("task/{id}"),
            task_small_id: id,
            role,
            model_name,
            security_level: level,
            minimum_reputation_score,
        });
        Ok(())
    }

    pub(super) fn deprecate_task(
        &mut self,
        ctx: &Ctx<'_>,
        now: u64,
        id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.require_admin(ctx, "deprecate tasks")?;
        let t = self.task_mut(id)?;
        if t.is_deprecated {
            return Err(MarketCode::ETaskAlreadyDeprecated.err(format!("task {id}")));
        }
        t.is_deprecated = true;
        t.deprecated_at_epoch = Some(now);
        events.push(Event::TaskDeprecationEvent { task_id: format!("task/{id}"), task_small_id: id, epoch: now });
        Ok(())
    }

    /// Open stacks of a removed task keep their escrow and their deadline: they can still be
    /// settled, claimed or reclaimed (in Atoma they become unsettleable and the escrow is locked).
    pub(super) fn remove_deprecated_task(
        &mut self,
        ctx: &Ctx<'_>,
        now: u64,
        id: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ContractError> {
        self.require_admin(ctx, "remove tasks")?;
        let t = self.task(id)?;
        let Some(at) = t.deprecated_at_epoch.filter(|_| t.is_deprecated) else {
            return Err(MarketCode::ETaskNotDeprecated.err(format!("task {id}")));
        };
        if now < at.saturating_add(1) {
            return Err(MarketCode::ENotEnoughEpochsPassed
                .err(format!("deprecated in epoch {at}: remove from epoch {}", at + 1)));
        }
        self.tasks.remove(&id);
        events.push(Event::TaskRemovedEvent {
            task_id: format!("task/{id}"),
            task_small_id: id,
            removed_at_epoch: now,
        });
        Ok(())
    }

    pub(super) fn whitelist_nodes(&mut self, ctx: &Ctx<'_>, id: u64, nodes: &[u64]) -> Result<(), ContractError> {
        self.require_admin(ctx, "whitelist nodes")?;
        if nodes.len() > MAX_IDS_PER_MESSAGE {
            return Err(MarketCode::ETooManyItems.err(format!("at most {MAX_IDS_PER_MESSAGE} nodes per message")));
        }
        let t = self.task(id)?;
        if t.is_public {
            return Err(MarketCode::ETaskIsPublic.err(format!("task {id} is public: every node may subscribe")));
        }
        if let Some(missing) = nodes.iter().find(|n| !self.nodes.contains_key(n)) {
            return Err(MarketCode::ENodeNotFound.err(format!("node {missing}")));
        }
        self.task_mut(id)?.whitelisted_nodes.extend(nodes.iter().copied());
        Ok(())
    }

    pub(super) fn set_oracle(&mut self, ctx: &Ctx<'_>, task: u64, node: u64, add: bool) -> Result<(), ContractError> {
        self.require_admin(ctx, "appoint oracles")?;
        if !self.nodes.contains_key(&node) {
            return Err(MarketCode::ENodeNotFound.err(format!("node {node}")));
        }
        let t = self.task_mut(task)?;
        let changed = if add { t.oracles.insert(node) } else { t.oracles.remove(&node) };
        if !changed {
            return Err(MarketCode::EInvalidParameter
                .err(format!("node {node} is {} an oracle of task {task}", if add { "already" } else { "not" })));
        }
        Ok(())
    }
}
