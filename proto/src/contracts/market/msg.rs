//! The market's messages and queries in Atoma's names (snake_case, externally tagged).
//!
//! Atoma authorises by badge objects; PRAG by the signing key: the node badge is the storage key
//! a market node registered with (so a node message names no node id: the signer is the node),
//! the manager and task badges are the contracts' admin, and a stack belongs to the address
//! that bought it.

use serde::{Deserialize, Serialize};

use crate::contracts::rewards::Uint128;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecuteMsg {
    // --- nodes (signed by the node's storage key) ---
    /// Registers the signer, an admitted `prag-storage` worker, as a market node; `collateral`
    /// moves from its account into the market's collateral (at least the configured amount).
    RegisterNode {
        collateral: Uint128,
    },
    PermanentlyDisableNode {},
    /// After 4 epochs disabled: pays out fees and returns the collateral; the node is gone.
    DestroyDisabledNode {},
    WithdrawFees {},
    SubscribeNodeToTask {
        task_small_id: u64,
        price_per_one_million_compute_units: u64,
    },
    UpdateNodeSubscription {
        task_small_id: u64,
        price_per_one_million_compute_units: u64,
    },
    UnsubscribeNodeFromTask {
        task_small_id: u64,
    },
    TrySettleStack {
        stack_small_id: u64,
        num_claimed_compute_units: u64,
        /// Hex of 32 bytes (see `commitment`).
        committed_stack_proof: String,
        stack_merkle_leaf: String,
    },
    SubmitStackSettlementAttestation {
        stack_small_id: u64,
        committed_stack_proof: String,
        stack_merkle_leaf: String,
    },
    StartAttestationDispute {
        stack_small_id: u64,
        attestation_commitment: String,
    },
    ClaimFunds {
        settled_ticket_ids: Vec<u64>,
    },
    ClaimFundsForStacks {
        stack_small_ids: Vec<u64>,
        num_compute_units_per_stack_to_claim: Vec<u64>,
    },
    /// PRAG: a task's oracle resolves a dispute with the stack root it recomputed (hex, 32 bytes).
    SettleDispute {
        stack_small_id: u64,
        stack_root: String,
    },

    // --- users ---
    AcquireNewStack {
        task_small_id: u64,
        num_compute_units: u64,
        price: u64,
    },
    /// PRAG: the owner takes back a stack's unused escrow after its settlement deadline.
    ReclaimStack {
        stack_small_id: u64,
    },

    // --- the admin (Atoma's manager and task badges) ---
    CreateTask {
        role: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security_level: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minimum_reputation_score: Option<u8>,
        is_public: bool,
    },
    DeprecateTask {
        task_small_id: u64,
    },
    RemoveDeprecatedTask {
        task_small_id: u64,
    },
    WhitelistNodesForTask {
        task_small_id: u64,
        nodes: Vec<u64>,
    },
    /// PRAG: appoints a node as one of the task's dispute oracles (Atoma's echelon oracles).
    AddTaskOracle {
        task_small_id: u64,
        node_small_id: u64,
    },
    RemoveTaskOracle {
        task_small_id: u64,
        node_small_id: u64,
    },
    DisableRegistration {},
    EnableRegistration {},
    SetRequiredRegistrationCollateral {
        amount: Uint128,
    },
    SetPermilleToSlashNodeOnTimeout {
        permille: u64,
    },
    SetPermilleForOracleOnDispute {
        permille: u64,
    },
    SetPermilleForHonestNodesOnDispute {
        permille: u64,
    },
    SetCrossValidationProbabilityPermille {
        permille: u64,
    },
    SetCrossValidationExtraNodesCount {
        count: u64,
    },
    SetSamplingConsensusChargePermille {
        permille: u64,
    },
    SetCrossValidationExtraNodesChargePermille {
        permille: u64,
    },
    SetStackSettlementDeadlineEpochs {
        epochs: u64,
    },
}

impl ExecuteMsg {
    /// Every message name, for the ledger's parser.
    pub const NAMES: &'static [&'static str] = &[
        "register_node",
        "permanently_disable_node",
        "destroy_disabled_node",
        "withdraw_fees",
        "subscribe_node_to_task",
        "update_node_subscription",
        "unsubscribe_node_from_task",
        "try_settle_stack",
        "submit_stack_settlement_attestation",
        "start_attestation_dispute",
        "claim_funds",
        "claim_funds_for_stacks",
        "settle_dispute",
        "acquire_new_stack",
        "reclaim_stack",
        "create_task",
        "deprecate_task",
        "remove_deprecated_task",
        "whitelist_nodes_for_task",
        "add_task_oracle",
        "remove_task_oracle",
        "disable_registration",
        "enable_registration",
        "set_required_registration_collateral",
        "set_permille_to_slash_node_on_timeout",
        "set_permille_for_oracle_on_dispute",
        "set_permille_for_honest_nodes_on_dispute",
        "set_cross_validation_probability_permille",
        "set_cross_validation_extra_nodes_count",
        "set_sampling_consensus_charge_permille",
        "set_cross_validation_extra_nodes_charge_permille",
        "set_stack_settlement_deadline_epochs",
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum QueryMsg {
    GetMarketParams {},
    GetNode {
        node_small_id: u64,
    },
    /// The node registered with this public key (hex).
    GetNodeByKey {
        public_key: String,
    },
    GetNodes {},
    GetTask {
        task_small_id: u64,
    },
    GetTasks {},
    GetStack {
        stack_small_id: u64,
    },
    GetStacks {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    GetTicket {
        stack_small_id: u64,
    },
    GetTickets {},
    /// The most recent events (at most [`super::RECENT_EVENTS`]).
    GetMarketEvents {},
    /// What the console's Market screen shows.
    MarketOverview {},
}

impl QueryMsg {
    pub const NAMES: &'static [&'static str] = &[
        "get_market_params",
        "get_node",
        "get_node_by_key",
        "get_nodes",
        "get_task",
        "get_tasks",
        "get_stack",
        "get_stacks",
        "get_ticket",
        "get_tickets",
        "get_market_events",
        "market_overview",
    ];
}
