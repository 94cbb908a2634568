//! The market's state types and events, in Atoma's field names (db.move:395–761) with PRAG's
//! additions marked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::contracts::rewards::Uint128;

/// Task roles (Atoma's numbers, db.move:44–57, plus PRAG's retrieval).
pub mod role {
    pub const CHAT_COMPLETION: u16 = 0;
    pub const EMBEDDING: u16 = 1;
    pub const VISION: u16 = 2;
    pub const IMAGE_GEN: u16 = 3;
    pub const TEXT_TO_SPEECH: u16 = 4;
    pub const SPEECH_TO_TEXT: u16 = 5;
    pub const FINE_TUNING: u16 = 6;
    pub const TRAINING: u16 = 7;
    /// PRAG: top-k retrieval from a collection.
    pub const RETRIEVAL: u16 = 8;
    pub const MAX: u16 = RETRIEVAL;

    /// The role's name, as the command line spells it.
    pub fn name(role: u16) -> &'static str {
        match role {
            CHAT_COMPLETION => "chat-completion",
            EMBEDDING => "embedding",
            VISION => "vision",
            IMAGE_GEN => "image-gen",
            TEXT_TO_SPEECH => "text-to-speech",
            SPEECH_TO_TEXT => "speech-to-text",
            FINE_TUNING => "fine-tuning",
            TRAINING => "training",
            RETRIEVAL => "retrieval",
            _ => "unknown",
        }
    }

    pub fn parse(name: &str) -> Option<u16> {
        (0..=MAX).find(|r| self::name(*r) == name).or_else(|| name.parse().ok().filter(|r| *r <= MAX))
    }
}

/// Security levels (db.move:61–65).
pub mod security {
    pub const NO_SECURITY: u16 = 0;
    pub const CONFIDENTIAL_COMPUTE: u16 = 1;
    pub const SAMPLING_CONSENSUS: u16 = 2;

    pub fn name(level: u16) -> &'static str {
        match level {
            NO_SECURITY => "no-security",
            CONFIDENTIAL_COMPUTE => "confidential-compute",
            SAMPLING_CONSENSUS => "sampling-consensus",
            _ => "unknown",
        }
    }

    pub fn parse(name: &str) -> Option<u16> {
        (0..=2).find(|l| self::name(*l) == name).or_else(|| name.parse().ok().filter(|l| *l <= 2))
    }
}

/// `COMPUTE_UNITS_PER_STACK`: every subscription's maximum, so the most units one stack can buy.
pub const COMPUTE_UNITS_PER_STACK: u64 = 1_000_000;
/// `REPUTATION_SCORE_START`.
pub const REPUTATION_START: u8 = 50;
/// Reputation bounds: Atoma's u8 with task minimums ≤ 100.
pub const REPUTATION_MAX: u8 = 100;
/// PRAG: reputation gained per stack settled without dispute (serving node and each attester).
pub const REPUTATION_GAIN: u8 = 1;
/// PRAG: reputation lost per timeout (a stack left unsettled, an attestation not made).
pub const REPUTATION_TIMEOUT_LOSS: u8 = 10;
/// Epochs a disabled node waits before it can be destroyed (db.move:2236–2267).
pub const DESTROY_WAIT_EPOCHS: u64 = 4;
/// `STACK_DISPUTE_SETTLEMENT_DELAY`.
pub const STACK_DISPUTE_SETTLEMENT_DELAY: u64 = 1;
/// Largest id list in one message (whitelists, claims).
pub const MAX_IDS_PER_MESSAGE: usize = 256;
/// Most attesters per stack (the extra-nodes count's upper bound).
pub const MAX_EXTRA_NODES: u64 = 16;

/// The market's parameters (db.move:576–648 with Atoma's initial values, §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub is_registration_disabled: bool,
    /// Collateral a node must put up at `register_node` (Atoma: 0, and never taken).
    pub registration_collateral: Uint128,
    pub permille_to_slash_node_on_timeout: u64,
    pub permille_for_oracle_on_dispute: u64,
    pub permille_for_honest_nodes_on_dispute: u64,
    pub cross_validation_probability_permille: u64,
    pub cross_validation_extra_nodes_count: u64,
    pub sampling_consensus_charge_permille: u64,
    pub cross_validation_extra_nodes_charge_permille: u64,
    /// PRAG: seconds per market epoch (Sui's ~24 h), fixed at genesis.
    pub epoch_secs: u64,
    /// PRAG: epochs after purchase within which a stack must be settled; after them the owner
    /// may reclaim it.
    pub stack_settlement_deadline_epochs: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            is_registration_disabled: false,
            registration_collateral: Uint128(0),
            permille_to_slash_node_on_timeout: 100,
            permille_for_oracle_on_dispute: 100,
            permille_for_honest_nodes_on_dispute: 200,
            cross_validation_probability_permille: 10,
            cross_validation_extra_nodes_count: 1,
            sampling_consensus_charge_permille: 1200,
            cross_validation_extra_nodes_charge_permille: 12,
            epoch_secs: 86_400,
            stack_settlement_deadline_epochs: 7,
        }
    }
}

/// A market node (NodeEntry, db.move:651–694).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub node_small_id: u64,
    /// PRAG: the storage key that signs for the node (Atoma's NodeBadge), hex.
    pub public_key: String,
    /// PRAG: the key's account, where fees and returned collateral go.
    pub address: String,
    /// PRAG: the node's libp2p peer id (its WorkerManager registration).
    pub peer_id: String,
    pub was_disabled_in_epoch: Option<u64>,
    pub collateral: Uint128,
    pub last_fee_epoch: u64,
    pub last_fee_epoch_amount: Uint128,
    pub available_fee_amount: Uint128,
    pub reputation_score: u8,
    /// PRAG: collateral lost so far.
    pub slashed: Uint128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePriceData {
    pub node_id: u64,
    pub price_per_one_million_compute_units: u64,
    pub max_num_compute_units: u64,
}

/// A task (db.move:460–485). Subscribers are kept in a map ordered by node id: no stale ids and
/// no double weight (Atoma's lazily cleaned vector, §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_small_id: u64,
    pub role: u16,
    pub model_name: Option<String>,
    pub is_deprecated: bool,
    pub deprecated_at_epoch: Option<u64>,
    pub security_level: u16,
    pub minimum_reputation_score: u8,
    pub is_public: bool,
    pub whitelisted_nodes: BTreeSet<u64>,
    pub subscribed_nodes: BTreeMap<u64, NodePriceData>,
    /// PRAG: nodes the admin appointed to resolve this task's disputes.
    pub oracles: BTreeSet<u64>,
}

/// Where a stack is in its life (PRAG; Atoma has only `is_claimed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackStatus {
    /// Bought; the node serves it.
    Open,
    /// `try_settle_stack` was called: a ticket exists.
    Settling,
    /// Attesters disagree: waiting for the majority or an oracle.
    Disputed,
    /// Paid out to the node and the owner.
    Claimed,
    /// A dispute decided who was wrong; paid out by that decision.
    Resolved,
    /// The owner took the escrow back after the deadline.
    Reclaimed,
}

/// A stack (db.move:518–531), with what PRAG fixes at purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    pub stack_small_id: u64,
    pub owner: String,
    pub price_per_one_million_compute_units: u64,
    pub num_compute_units: u64,
    pub selected_node_id: u64,
    pub task_small_id: u64,
    pub is_claimed: bool,
    /// PRAG: the task's security level at purchase.
    pub security_level: u16,
    /// PRAG: what the owner paid, held in the escrow account until settlement.
    pub escrow: Uint128,
    /// PRAG: escrow still held for this stack (what is not paid out yet).
    pub escrow_left: Uint128,
    pub created_epoch: u64,
    /// PRAG: the last epoch `try_settle_stack` is accepted in.
    pub settle_by_epoch: u64,
    /// PRAG: S, X, K and p as they were at purchase, so the admin changing them later changes
    /// nothing for a stack already bought (Atoma reads S and K at claim time).
    pub sampling_consensus_charge_permille: u64,
    pub cross_validation_extra_nodes_charge_permille: u64,
    pub cross_validation_extra_nodes_count: u64,
    pub cross_validation_probability_permille: u64,
    pub status: StackStatus,
}

/// Whether a settlement was cross-validated, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attestation {
    /// The security level has no sampling.
    NotApplicable,
    /// Sampling consensus, but the p‰ draw did not fire.
    NotDrawn,
    /// Attesters were drawn (`requested_attestation_nodes`).
    Sampled,
    /// PRAG's rule when fewer than K nodes (other than the serving one) are eligible: no
    /// attesters, the ticket settles as if the draw had not fired, and says so here.
    TooFewEligible { eligible: u64, needed: u64 },
}

/// How a dispute ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// "majority" or "oracle".
    pub resolved_by: String,
    pub oracle_node_id: Option<u64>,
    pub winning_commitment: Option<String>,
    pub dishonest_nodes: Vec<u64>,
    pub timed_out_nodes: Vec<u64>,
    pub slashed_amount: Uint128,
    pub oracle_reward: Uint128,
    pub honest_nodes: Vec<u64>,
    pub honest_reward_each: Uint128,
    pub communal_amount: Uint128,
    pub user_refund_amount: Uint128,
    pub node_fee: Uint128,
    pub resolved_at_epoch: u64,
}

/// A settlement ticket (db.move:542–563).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub stack_small_id: u64,
    pub selected_node_id: u64,
    pub num_claimed_compute_units: u64,
    pub requested_attestation_nodes: Vec<u64>,
    pub dispute_settled_at_epoch: u64,
    pub committed_stack_proof: String,
    /// Slot 0 (the serving node's leaf) and one slot per extra node (hex; empty until attested).
    pub stack_merkle_leaves: Vec<String>,
    pub already_attested_nodes: Vec<u64>,
    pub is_in_dispute: bool,
    pub attestation: Attestation,
    /// PRAG: each attester's committed proof (what a dispute compares).
    pub commitments: BTreeMap<u64, String>,
    pub dispute_opened_by: Option<u64>,
    pub resolution: Option<Resolution>,
}

/// Atoma's events (with their fields), plus PRAG's for what Atoma never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    NodeRegisteredEvent {
        badge_id: String,
        node_small_id: u64,
        collateral: Uint128,
    },
    NodeSubscribedToTaskEvent {
        task_small_id: u64,
        node_small_id: u64,
        price_per_one_million_compute_units: u64,
        max_num_compute_units: u64,
    },
    NodeSubscriptionUpdatedEvent {
        node_small_id: u64,
        task_small_id: u64,
        price_per_one_million_compute_units: u64,
        max_num_compute_units: u64,
    },
    NodeUnsubscribedFromTaskEvent {
        task_small_id: u64,
        node_small_id: u64,
    },
    TaskRegisteredEvent {
        task_id: String,
        task_small_id: u64,
        role: u16,
        model_name: Option<String>,
        security_level: u16,
        minimum_reputation_score: Option<u8>,
    },
    TaskDeprecationEvent {
        task_id: String,
        task_small_id: u64,
        epoch: u64,
    },
    TaskRemovedEvent {
        task_id: String,
        task_small_id: u64,
        removed_at_epoch: u64,
    },
    StackCreatedEvent {
        stack_id: String,
        stack_small_id: u64,
        owner: String,
        task_small_id: u64,
        selected_node_id: u64,
        num_compute_units: u64,
        price_per_one_million_compute_units: u64,
    },
    StackTrySettleEvent {
        stack_small_id: u64,
        selected_node_id: u64,
        requested_attestation_nodes: Vec<u64>,
        committed_stack_proof: String,
        stack_merkle_leaf: String,
        num_claimed_compute_units: u64,
    },
    NewStackSettlementAttestationEvent {
        stack_small_id: u64,
        attestation_node_id: u64,
        committed_stack_proof: String,
        stack_merkle_leaf: String,
    },
    StackSettlementTicketEvent {
        stack_small_id: u64,
        selected_node_id: u64,
        num_claimed_compute_units: u64,
        requested_attestation_nodes: Vec<u64>,
        dispute_settled_at_epoch: u64,
        committed_stack_proof: String,
    },
    StackAttestationDisputeEvent {
        stack_small_id: u64,
        attestation_commitment: String,
        attestation_node_id: u64,
        original_node_id: u64,
        original_commitment: String,
    },
    StackSettlementTicketClaimedEvent {
        stack_small_id: u64,
        selected_node_id: u64,
        attestation_nodes: Vec<u64>,
        num_claimed_compute_units: u64,
        user_refund_amount: Uint128,
    },
    ClaimedStackEvent {
        stack_small_id: u64,
        selected_node_id: u64,
        num_claimed_compute_units: u64,
        user_refund_amount: Uint128,
    },
    /// PRAG.
    StackDisputeResolvedEvent {
        stack_small_id: u64,
        resolution: Resolution,
    },
    /// PRAG.
    NodeSlashedEvent {
        node_small_id: u64,
        stack_small_id: u64,
        amount: Uint128,
        reason: String,
    },
    /// PRAG.
    StackReclaimedEvent {
        stack_small_id: u64,
        owner: String,
        amount: Uint128,
    },
    /// PRAG.
    FeesWithdrawnEvent {
        node_small_id: u64,
        amount: Uint128,
    },
}
