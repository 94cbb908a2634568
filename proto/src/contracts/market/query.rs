//! The market's queries, and the overview the console's Market screen shows.

use serde::{Deserialize, Serialize};

use super::error::MarketCode;
use super::{QueryMsg, Recorded, State, types::*};
use crate::contracts::bank::{self, accounts};
use crate::contracts::rewards::Uint128;
use crate::contracts::{ContractError, check_address};

/// One task line of the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskLine {
    pub task_small_id: u64,
    pub role: String,
    pub security_level: String,
    pub minimum_reputation_score: u8,
    pub is_deprecated: bool,
    pub subscribers: u64,
    /// The lowest ask, per million compute units.
    pub lowest_price: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeLine {
    pub node_small_id: u64,
    pub peer_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub collateral: Uint128,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub slashed: Uint128,
    pub reputation_score: u8,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackLine {
    pub stack_small_id: u64,
    pub task_small_id: u64,
    pub selected_node_id: u64,
    pub num_compute_units: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub escrow_left: Uint128,
    pub status: String,
}

/// A slash or a refund, for the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MoneyLine {
    pub time: u64,
    /// "slash", "refund" or "reclaim".
    pub kind: String,
    pub stack_small_id: u64,
    pub node_small_id: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub amount: Uint128,
    pub reason: String,
}

/// What the Market screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarketOverview {
    pub epoch: u64,
    pub tasks: Vec<TaskLine>,
    pub nodes: Vec<NodeLine>,
    /// Stacks not yet paid out (open, settling, disputed), newest first, at most 50.
    pub stacks: Vec<StackLine>,
    pub open_stacks: u64,
    pub settling_stacks: u64,
    pub disputed_stacks: u64,
    pub recent: Vec<MoneyLine>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub escrow: Uint128,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub collateral: Uint128,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub communal_treasury: Uint128,
}

fn status_name(s: StackStatus) -> &'static str {
    match s {
        StackStatus::Open => "open",
        StackStatus::Settling => "settling",
        StackStatus::Disputed => "disputed",
        StackStatus::Claimed => "claimed",
        StackStatus::Resolved => "resolved",
        StackStatus::Reclaimed => "reclaimed",
    }
}

fn money_line(r: &Recorded) -> Option<MoneyLine> {
    let line = |kind: &str, stack, node, amount: Uint128, reason: String| MoneyLine {
        time: r.time,
        kind: kind.into(),
        stack_small_id: stack,
        node_small_id: node,
        amount,
        reason,
    };
    match &r.event {
        Event::NodeSlashedEvent { node_small_id, stack_small_id, amount, reason } => {
            Some(line("slash", *stack_small_id, Some(*node_small_id), *amount, reason.clone()))
        }
        Event::StackReclaimedEvent { stack_small_id, amount, .. } => {
            Some(line("reclaim", *stack_small_id, None, *amount, "deadline passed".into()))
        }
        Event::StackDisputeResolvedEvent { stack_small_id, resolution } => Some(line(
            "refund",
            *stack_small_id,
            None,
            resolution.user_refund_amount,
            format!("dispute resolved by {}", resolution.resolved_by),
        )),
        Event::StackSettlementTicketClaimedEvent { stack_small_id, selected_node_id, user_refund_amount, .. }
        | Event::ClaimedStackEvent { stack_small_id, selected_node_id, user_refund_amount, .. } => {
            Some(line("refund", *stack_small_id, Some(*selected_node_id), *user_refund_amount, "unused units".into()))
        }
        _ => None,
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, ContractError> {
    serde_json::to_value(v).map_err(|e| ContractError::Rule(e.to_string()))
}

impl State {
    pub fn overview(&self, bank: &bank::State, time: u64) -> MarketOverview {
        let tasks = self
            .tasks
            .values()
            .map(|t| TaskLine {
                task_small_id: t.task_small_id,
                role: role::name(t.role).into(),
                security_level: security::name(t.security_level).into(),
                minimum_reputation_score: t.minimum_reputation_score,
                is_deprecated: t.is_deprecated,
                subscribers: t.subscribed_nodes.len() as u64,
                lowest_price: t.subscribed_nodes.values().map(|d| d.price_per_one_million_compute_units).min(),
            })
            .collect();
        let nodes = self
            .nodes
            .values()
            .map(|n| NodeLine {
                node_small_id: n.node_small_id,
                peer_id: n.peer_id.clone(),
                collateral: n.collateral,
                slashed: n.slashed,
                reputation_score: n.reputation_score,
                disabled: n.was_disabled_in_epoch.is_some(),
            })
            .collect();
        let live = |s: &&Stack| matches!(s.status, StackStatus::Open | StackStatus::Settling | StackStatus::Disputed);
        let (mut open, mut settling, mut disputed) = (0, 0, 0);
        for s in self.stacks.values() {
            match s.status {
                StackStatus::Open => open += 1,
                StackStatus::Settling => settling += 1,
                StackStatus::Disputed => disputed += 1,
                _ => {}
            }
        }
        MarketOverview {
            epoch: self.epoch_at(time),
            tasks,
            nodes,
            stacks: self
                .stacks
                .values()
                .rev()
                .filter(live)
                .take(50)
                .map(|s| StackLine {
                    stack_small_id: s.stack_small_id,
                    task_small_id: s.task_small_id,
                    selected_node_id: s.selected_node_id,
                    num_compute_units: s.num_compute_units,
                    escrow_left: s.escrow_left,
                    status: status_name(s.status).into(),
                })
                .collect(),
            open_stacks: open,
            settling_stacks: settling,
            disputed_stacks: disputed,
            recent: self.recent_events.iter().rev().filter_map(money_line).take(20).collect(),
            escrow: Uint128(bank.module_balance(accounts::MARKET_ESCROW)),
            collateral: Uint128(bank.module_balance(accounts::MARKET_COLLATERAL)),
            communal_treasury: Uint128(bank.module_balance(accounts::MARKET_COMMUNAL_TREASURY)),
        }
    }

    pub fn query(&self, bank: &bank::State, time: u64, q: &QueryMsg) -> Result<serde_json::Value, ContractError> {
        match q {
            QueryMsg::GetMarketParams {} => to_json(&self.params),
            QueryMsg::GetNode { node_small_id } => to_json(
                self.nodes
                    .get(node_small_id)
                    .ok_or_else(|| MarketCode::ENodeNotFound.err(format!("node {node_small_id}")))?,
            ),
            QueryMsg::GetNodeByKey { public_key } => {
                let key = crate::account::canonical_public_key(public_key)
                    .map_err(|e| ContractError::invalid("public_key", e.to_string()))?;
                let id =
                    self.nodes_by_key.get(&key).ok_or_else(|| MarketCode::ENodeNotFound.err("no node has this key"))?;
                to_json(&self.nodes.get(id))
            }
            QueryMsg::GetNodes {} => to_json(&self.nodes.values().collect::<Vec<_>>()),
            QueryMsg::GetTask { task_small_id } => to_json(self.task(*task_small_id)?),
            QueryMsg::GetTasks {} => to_json(&self.tasks.values().collect::<Vec<_>>()),
            QueryMsg::GetStack { stack_small_id } => {
                let s = self.stack(*stack_small_id)?;
                to_json(&serde_json::json!({"stack": s, "ticket": self.tickets.get(stack_small_id)}))
            }
            QueryMsg::GetStacks { owner } => {
                if let Some(o) = owner {
                    check_address("owner", o)?;
                }
                let v: Vec<&Stack> =
                    self.stacks.values().filter(|s| owner.as_ref().is_none_or(|o| *o == s.owner)).collect();
                to_json(&v)
            }
            QueryMsg::GetTicket { stack_small_id } => to_json(self.tickets.get(stack_small_id).ok_or_else(|| {
                MarketCode::EStackNotInSettlementDispute.err(format!("stack {stack_small_id} has no ticket"))
            })?),
            QueryMsg::GetTickets {} => to_json(&self.tickets.values().collect::<Vec<_>>()),
            QueryMsg::GetMarketEvents {} => to_json(&self.recent_events),
            QueryMsg::MarketOverview {} => to_json(&self.overview(bank, time)),
        }
    }
}
