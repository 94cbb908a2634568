//! The market through the ledger (signed transactions, the bank, WorkerManager admission), one
//! rule at a time, with each of Atoma's published gaps checked closed.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::commitment::{merkle_root, request_leaf, slot, stack_proof};
use super::*;
use crate::contracts::bank::{accounts, module_address};
use crate::contracts::testing::{key, sender};
use crate::ledger::{LedgerState, SignedTx};

const ADMIN: u8 = 1;
const OWNER: u8 = 2;
const STRANGER: u8 = 3;
/// Node keys are seeds 10.. (node small id = seed − 9 when registered in order).
const N1: u8 = 10;
const N2: u8 = 11;
const N3: u8 = 12;
const N4: u8 = 13;

/// A ledger in memory: signs, orders and applies like the node's, with a clock in epochs.
struct Net {
    state: LedgerState,
    height: u64,
    time: u64,
    nonce: u64,
}

impl Net {
    fn new() -> Net {
        Net::with_genesis(json!({}))
    }

    /// A network whose admin holds 10^12, with `extra` genesis fields; epochs of 100 s.
    fn with_genesis(extra: Value) -> Net {
        let admin = sender(ADMIN).address();
        let mut g = json!({"admin": admin, "chain_id": "prag-test", "contract_address": "secret1contract",
            "accounts": [{"address": admin, "amount": "1000000000000"}], "market_epoch_secs": 100, "allow_mint": true});
        if let (Some(g), Some(e)) = (g.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                g.insert(k.clone(), v.clone());
            }
        }
        let mut net = Net { state: LedgerState::default(), height: 0, time: 10_000, nonce: 0 };
        net.exec(ADMIN, json!({ "genesis": g })).expect("genesis");
        net
    }

    fn env(&self) -> Env {
        let mut random = [0u8; 32];
        random[..8].copy_from_slice(&self.height.to_le_bytes());
        Env {
            time: self.time,
            random,
            contract_address: "secret1contract".into(),
            chain_id: "prag-test".into(),
            next_random_sha256: None,
        }
    }

    fn exec(&mut self, who: u8, msg: Value) -> Result<Value, ContractError> {
        self.nonce += 1;
        let tx = SignedTx::sign(&key(who), &format!("nonce{:016}", self.nonce), self.time, msg)?;
        let before = self.state.clone();
        let r = self.state.apply(&self.env(), &tx, self.height);
        match &r {
            Ok(_) => self.height += 1,
            Err(_) => assert_eq!(self.state, before, "a refused message changed the state"),
        }
        r.map(|a| a.unwrap_or(Value::Null))
    }

    fn ok(&mut self, who: u8, msg: Value) -> Value {
        match self.exec(who, msg.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{msg} refused: {e}"),
        }
    }

    /// Refused with Atoma's (or PRAG's) code.
    fn refused(&mut self, who: u8, msg: Value, code: MarketCode) {
        match self.exec(who, msg.clone()) {
            Err(ContractError::Market { code: c, name, .. }) => {
                assert_eq!((c, name.as_str()), (code.code(), code.name()), "{msg}")
            }
            other => panic!("{msg}: expected {}, got {other:?}", code.name()),
        }
    }

    fn epochs(&mut self, n: u64) {
        self.time += 100 * n;
    }

    fn balance(&self, who: u8) -> u128 {
        self.state.bank.balance(&sender(who).address())
    }

    fn fund(&mut self, who: u8, amount: u128) {
        if amount == 0 {
            return;
        }
        self.ok(ADMIN, json!({"transfer": {"to": sender(who).address(), "amount": amount.to_string()}}));
    }

    /// Registers `who` as a prag-storage worker and then as a market node.
    fn node(&mut self, who: u8, collateral: u128) -> u64 {
        self.storage_worker(who);
        self.fund(who, collateral);
        let v = self.ok(who, json!({"register_node": {"collateral": collateral.to_string()}}));
        v["events"][0]["node_small_id"].as_u64().expect("node id")
    }

    fn storage_worker(&mut self, who: u8) {
        self.ok(
            ADMIN,
            json!({"register_worker": {"ip_address": format!("peer-{who}"), "payment_wallet": sender(who).address(),
                "attestation_report": "dev", "worker_type": "prag-storage", "signing_key": sender(who).public_key_hex()}}),
        );
    }

    fn task(&mut self, level: u16, extra: Value) -> u64 {
        let mut m = json!({"role": role::RETRIEVAL, "security_level": level, "is_public": true});
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        let v = self.ok(ADMIN, json!({ "create_task": m }));
        v["events"][0]["task_small_id"].as_u64().expect("task id")
    }

    fn subscribe(&mut self, who: u8, task: u64, price: u64) {
        self.ok(
            who,
            json!({"subscribe_node_to_task": {"task_small_id": task, "price_per_one_million_compute_units": price}}),
        );
    }

    fn buy(&mut self, who: u8, task: u64, units: u64, price: u64) -> (u64, u64) {
        let v = self
            .ok(who, json!({"acquire_new_stack": {"task_small_id": task, "num_compute_units": units, "price": price}}));
        let e = &v["events"][0];
        (e["stack_small_id"].as_u64().expect("stack"), e["selected_node_id"].as_u64().expect("node"))
    }

    fn stack(&self, id: u64) -> Stack {
        self.state.market.stacks[&id].clone()
    }

    fn ticket(&self, id: u64) -> Ticket {
        self.state.market.tickets[&id].clone()
    }

    fn node_of(&self, id: u64) -> Node {
        self.state.market.nodes[&id].clone()
    }

    fn set(&mut self, name: &str, field: &str, v: u64) {
        self.ok(ADMIN, json!({ name: { field: v } }));
    }

    /// Every account adds up: supply = Σ balances, and the market's accounts hold what it owes.
    fn check_books(&self) {
        let bank = &self.state.bank;
        assert_eq!(bank.total(), Some(bank.supply), "money created or lost");
        self.state.market.accounts_balance(bank).expect("market accounts");
    }
}

fn seed_of(id: u64) -> u8 {
    (id + 9) as u8
}

fn root_for(stack: u64) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = (0..3u8).map(|i| request_leaf(&[i, stack as u8], b"top-k answer")).collect();
    merkle_root(&leaves).expect("root")
}

fn settle_msg(stack: u64, units: u64, root: &[u8; 32], k: u8) -> Value {
    json!({"try_settle_stack": {"stack_small_id": stack, "num_claimed_compute_units": units,
        "committed_stack_proof": hex::encode(stack_proof(root, k)), "stack_merkle_leaf": hex::encode(slot(0, root))}})
}

fn attest_msg(stack: u64, root: &[u8; 32], k: u8, index: u8) -> Value {
    json!({"submit_stack_settlement_attestation": {"stack_small_id": stack,
        "committed_stack_proof": hex::encode(stack_proof(root, k)), "stack_merkle_leaf": hex::encode(slot(index, root))}})
}

/// Two nodes with collateral, a task, two prices, a cap only the cheaper meets.
fn two_node_market(level: u16) -> (Net, u64, u64, u64) {
    let mut net = Net::new();
    net.ok(ADMIN, json!({"set_required_registration_collateral": {"amount": "5000"}}));
    let a = net.node(N1, 5_000);
    let b = net.node(N2, 8_000);
    let t = net.task(level, json!({}));
    net.subscribe(N1, t, 3_000_000);
    net.subscribe(N2, t, 1_000_000);
    net.fund(OWNER, 10_000_000);
    (net, a, b, t)
}

#[test]
fn no_security_stack_goes_to_the_only_node_under_the_cap_and_pays_by_the_formulas() {
    let (mut net, _a, b, t) = two_node_market(security::NO_SECURITY);
    let before = net.balance(OWNER);
    let (s, selected) = net.buy(OWNER, t, 500_000, 2_000_000);
    assert_eq!(selected, b, "only node b asks at or under 2_000_000");
    let escrow = fees::escrow(false, 2_000_000, 500_000, 1200, 12).expect("escrow");
    assert_eq!(escrow, 1_000_000);
    assert_eq!(net.balance(OWNER), before - escrow);
    net.check_books();
    let root = root_for(s);
    net.ok(N2, settle_msg(s, 300_000, &root, 1));
    net.refused(N2, json!({"claim_funds": {"settled_ticket_ids": [s]}}), MarketCode::EStackDisputePeriodIsNotOver);
    net.epochs(1);
    let node_before = net.balance(N2);
    net.ok(N2, json!({"claim_funds": {"settled_ticket_ids": [s]}}));
    // Fee ⌊C·P/1e6⌋ = 600_000; refund ⌊(U−C)·P/1e6⌋ = 400_000.
    assert_eq!(net.balance(N2) - node_before, 600_000);
    assert_eq!(net.balance(OWNER), before - escrow + 400_000);
    assert_eq!(net.stack(s).status, StackStatus::Claimed);
    assert_eq!(net.node_of(b).reputation_score, REPUTATION_START + REPUTATION_GAIN);
    net.refused(N2, json!({"claim_funds": {"settled_ticket_ids": [s]}}), MarketCode::EStackAlreadyClaimed);
    net.check_books();
}

#[test]
fn confidential_compute_claims_at_once_by_the_formulas() {
    let (mut net, _a, b, t) = two_node_market(security::CONFIDENTIAL_COMPUTE);
    let before = net.balance(OWNER);
    let (s, selected) = net.buy(OWNER, t, 1_000_000, 1_500_000);
    assert_eq!(selected, b);
    let node_before = net.balance(N2);
    let claim =
        json!({"claim_funds_for_stacks": {"stack_small_ids": [s], "num_compute_units_per_stack_to_claim": [950_001]}});
    net.refused(N1, claim.clone(), MarketCode::ENodeNotSelectedForClaim);
    net.ok(N2, claim.clone());
    // Fee ⌊950_001·1.5⌋ = 1_425_001; refund ⌊49_999·1.5⌋ = 74_998; 1 unit of dust to the treasury.
    assert_eq!(net.balance(N2) - node_before, 1_425_001);
    assert_eq!(before - net.balance(OWNER), 1_500_000 - 74_998);
    assert_eq!(net.state.bank.module_balance(accounts::MARKET_FEE_TREASURY), 1);
    net.refused(N2, claim, MarketCode::EStackAlreadyClaimed);
    net.check_books();
}

#[test]
fn sampling_consensus_agreement_settles_and_pays_the_attester_from_the_surcharge() {
    let (mut net, a, b, t) = two_node_market(security::SAMPLING_CONSENSUS);
    net.set("set_cross_validation_probability_permille", "permille", 1000);
    // Both nodes must be eligible as attesters: raise the cap over both asks.
    let before = net.balance(OWNER);
    let (s, selected) = net.buy(OWNER, t, 500_000, 4_000_000);
    let other = if selected == a { b } else { a };
    let escrow = fees::escrow(true, 4_000_000, 500_000, 1200, 12).expect("escrow");
    assert_eq!(escrow, 2_424_000);
    let root = root_for(s);
    net.ok(seed_of(selected), settle_msg(s, 250_000, &root, 1));
    let ticket = net.ticket(s);
    assert_eq!(ticket.attestation, Attestation::Sampled);
    assert_eq!(ticket.requested_attestation_nodes, vec![other], "the serving node never attests itself");
    let v = net.ok(seed_of(other), attest_msg(s, &root, 1, 1));
    assert!(v.to_string().contains("StackSettlementTicketEvent"), "{v}");
    net.refused(seed_of(other), attest_msg(s, &root, 1, 1), MarketCode::ENodeAlreadyAttested);
    net.epochs(1);
    let node_before = net.balance(seed_of(selected));
    net.ok(seed_of(selected), json!({"claim_funds": {"settled_ticket_ids": [s]}}));
    // Fee ⌊C·P·S/1e9⌋ = 1_200_000; refund ⌊(U−C)·P·S/1e9⌋ = 1_200_000; attesters ⌊C·P·X/1e9⌋ = 12_000.
    assert_eq!(net.balance(seed_of(selected)) - node_before, 1_200_000);
    assert_eq!(before - net.balance(OWNER), escrow - 1_200_000);
    assert_eq!(net.node_of(other).available_fee_amount.0, 12_000);
    let attester_before = net.balance(seed_of(other));
    net.ok(seed_of(other), json!({"withdraw_fees": {}}));
    assert_eq!(net.balance(seed_of(other)) - attester_before, 12_000);
    assert_eq!(net.node_of(other).reputation_score, REPUTATION_START + REPUTATION_GAIN);
    net.check_books();
}

/// A SamplingConsensus market with four nodes (all asking the same), the admin's oracle node,
/// cross-validation always on and `k` attesters.
fn consensus_market(k: u64) -> (Net, u64, u64) {
    let mut net = Net::new();
    net.ok(ADMIN, json!({"set_required_registration_collateral": {"amount": "10000"}}));
    net.set("set_cross_validation_probability_permille", "permille", 1000);
    net.set("set_cross_validation_extra_nodes_count", "count", k);
    let t = net.task(security::SAMPLING_CONSENSUS, json!({}));
    for who in [N1, N2, N3] {
        net.node(who, 10_000);
        net.subscribe(who, t, 1_000_000);
    }
    let oracle = net.node(N4, 10_000);
    net.ok(ADMIN, json!({"add_task_oracle": {"task_small_id": t, "node_small_id": oracle}}));
    net.fund(OWNER, 100_000_000);
    (net, t, oracle)
}

#[test]
fn a_planted_mismatch_is_resolved_by_the_oracle_against_the_node_that_lied() {
    let (mut net, t, oracle) = consensus_market(1);
    let owner_before = net.balance(OWNER);
    let (s, selected) = net.buy(OWNER, t, 400_000, 1_000_000);
    let honest_root = root_for(s);
    let lie = root_for(s + 100);
    // The serving node commits to a root it did not compute.
    net.ok(seed_of(selected), settle_msg(s, 400_000, &lie, 1));
    let attester = net.ticket(s).requested_attestation_nodes[0];
    net.refused(
        seed_of(attester),
        json!({"start_attestation_dispute": {"stack_small_id": s,
        "attestation_commitment": hex::encode(stack_proof(&lie, 1))}}),
        MarketCode::ECommitmentMatches,
    );
    net.ok(seed_of(attester), attest_msg(s, &honest_root, 1, 1));
    let ticket = net.ticket(s);
    assert!(ticket.is_in_dispute && ticket.dispute_opened_by == Some(attester));
    net.refused(seed_of(selected), json!({"claim_funds": {"settled_ticket_ids": [s]}}), MarketCode::EStackInDispute);
    // Only the task's oracle, not a participant, resolves.
    let settle = json!({"settle_dispute": {"stack_small_id": s, "stack_root": hex::encode(honest_root)}});
    net.refused(seed_of(attester), settle.clone(), MarketCode::ENotAnOracle);
    net.ok(ADMIN, json!({"add_task_oracle": {"task_small_id": t, "node_small_id": attester}}));
    net.refused(seed_of(attester), settle.clone(), MarketCode::EOracleIsParticipant);
    let oracle_seed = seed_of(oracle);
    net.ok(oracle_seed, settle);
    let liar = net.node_of(selected);
    assert_eq!((liar.collateral.0, liar.reputation_score, liar.slashed.0), (0, 0, 10_000));
    let r = net.ticket(s).resolution.expect("resolved");
    assert_eq!(r.dishonest_nodes, vec![selected]);
    assert_eq!(r.resolved_by, "oracle");
    // Oracle ⌈10_000·100/1000⌉ = 1_000; honest ⌊9_000·200/1000⌋ = 1_800 to the one honest
    // attester; 7_200 stays communal.
    assert_eq!((r.oracle_reward.0, r.honest_reward_each.0, r.communal_amount.0), (1_000, 1_800, 7_200));
    assert_eq!(net.state.bank.module_balance(accounts::MARKET_COMMUNAL_TREASURY), 7_200);
    // The owner gets back what the liar claimed plus the unused part: ⌊U·P·S/1e9⌋ = 480_000 of
    // the 484_800 paid; the honest attester its surcharge ⌊C·P·X/1e9⌋ = 4_800.
    assert_eq!(owner_before - net.balance(OWNER), 484_800 - 480_000);
    assert_eq!(r.user_refund_amount.0, 480_000);
    net.epochs(1);
    let (a_before, o_before) = (net.balance(seed_of(attester)), net.balance(oracle_seed));
    net.ok(seed_of(attester), json!({"withdraw_fees": {}}));
    net.ok(oracle_seed, json!({"withdraw_fees": {}}));
    assert_eq!(net.balance(seed_of(attester)) - a_before, 1_800 + 4_800);
    assert_eq!(net.balance(oracle_seed) - o_before, 1_000);
    assert_eq!(net.node_of(attester).reputation_score, REPUTATION_START + REPUTATION_GAIN);
    // A slashed node is no longer eligible: its collateral is under the requirement.
    for _ in 0..10 {
        let (_, n) = net.buy(OWNER, t, 1_000, 1_000_000);
        assert_ne!(n, selected);
    }
    net.check_books();
}

#[test]
fn with_two_attesters_the_majority_decides_against_a_lying_attester() {
    let (mut net, t, _) = consensus_market(2);
    let (s, selected) = net.buy(OWNER, t, 100_000, 1_000_000);
    let root = root_for(s);
    net.ok(seed_of(selected), settle_msg(s, 100_000, &root, 2));
    let req = net.ticket(s).requested_attestation_nodes;
    assert_eq!(req.len(), 2);
    assert!(!req.contains(&selected));
    // The first attester lies (a commitment of its own): a dispute opens.
    let lie = root_for(s + 7);
    net.ok(
        seed_of(req[0]),
        json!({"start_attestation_dispute": {"stack_small_id": s,
        "attestation_commitment": hex::encode(stack_proof(&lie, 2))}}),
    );
    assert_eq!(net.stack(s).status, StackStatus::Disputed);
    // The second agrees with the node: 2 of 3 commitments agree, the liar loses.
    let node_before = net.balance(seed_of(selected));
    net.ok(seed_of(req[1]), attest_msg(s, &root, 2, 2));
    let r = net.ticket(s).resolution.expect("resolved by majority");
    assert_eq!((r.resolved_by.as_str(), r.dishonest_nodes.clone()), ("majority", vec![req[0]]));
    assert_eq!(net.node_of(req[0]).collateral.0, 0);
    // The honest node is paid its fee: ⌊C·P·S/1e9⌋ = 120_000.
    assert_eq!(net.balance(seed_of(selected)) - node_before, 120_000);
    assert_eq!(r.honest_nodes.len(), 2);
    net.check_books();
}

#[test]
fn attesters_are_drawn_without_replacement_and_never_the_serving_node() {
    let (mut net, t, _) = consensus_market(2);
    for i in 0..30 {
        let (s, selected) = net.buy(OWNER, t, 1_000 + i, 1_000_000);
        net.ok(seed_of(selected), settle_msg(s, 10, &root_for(s), 2));
        let req = net.ticket(s).requested_attestation_nodes;
        let distinct: std::collections::BTreeSet<_> = req.iter().collect();
        assert_eq!((req.len(), distinct.len()), (2, 2));
        assert!(!req.contains(&selected));
    }
}

#[test]
fn too_few_eligible_attesters_is_said_on_the_ticket_and_settles_without_them() {
    let (mut net, _a, b, t) = two_node_market(security::SAMPLING_CONSENSUS);
    net.set("set_cross_validation_probability_permille", "permille", 1000);
    // Cap 2_000_000: only b is eligible, so nobody else can attest.
    let (s, selected) = net.buy(OWNER, t, 10_000, 2_000_000);
    assert_eq!(selected, b);
    net.ok(seed_of(b), settle_msg(s, 10_000, &root_for(s), 1));
    let ticket = net.ticket(s);
    assert_eq!(ticket.attestation, Attestation::TooFewEligible { eligible: 0, needed: 1 });
    assert!(ticket.requested_attestation_nodes.is_empty());
    net.epochs(1);
    net.ok(seed_of(b), json!({"claim_funds": {"settled_ticket_ids": [s]}}));
    net.check_books();
}

#[test]
fn only_a_requested_attester_whose_commitment_differs_may_dispute() {
    let (mut net, t, oracle) = consensus_market(1);
    let (s, selected) = net.buy(OWNER, t, 10_000, 1_000_000);
    let root = root_for(s);
    net.ok(seed_of(selected), settle_msg(s, 10_000, &root, 1));
    let attester = net.ticket(s).requested_attestation_nodes[0];
    let other =
        [N1, N2, N3].into_iter().map(|x| x as u64 - 9).find(|n| *n != selected && *n != attester).expect("third");
    let dispute =
        json!({"start_attestation_dispute": {"stack_small_id": s, "attestation_commitment": hex::encode([9u8; 32])}});
    net.refused(seed_of(other), dispute.clone(), MarketCode::ENodeNotSelectedForAttestation);
    net.refused(seed_of(oracle), dispute.clone(), MarketCode::ENodeNotSelectedForAttestation);
    net.refused(seed_of(selected), dispute.clone(), MarketCode::ENodeNotSelectedForAttestation);
    net.refused(STRANGER, dispute.clone(), MarketCode::ENotAMarketNode);
    net.ok(seed_of(attester), dispute.clone());
    net.refused(seed_of(attester), dispute, MarketCode::EStackAlreadyInDispute);
}

#[test]
fn a_requested_attester_that_never_attests_is_slashed_the_timeout_permille() {
    let (mut net, t, _) = consensus_market(1);
    let (s, selected) = net.buy(OWNER, t, 10_000, 1_000_000);
    net.ok(seed_of(selected), settle_msg(s, 10_000, &root_for(s), 1));
    let attester = net.ticket(s).requested_attestation_nodes[0];
    // In the window's last epoch the attester may still attest, so the node may not yet claim
    // (a claim then would cut it out and slash it).
    net.epochs(1);
    net.refused(
        seed_of(selected),
        json!({"claim_funds": {"settled_ticket_ids": [s]}}),
        MarketCode::EStackDisputePeriodIsNotOver,
    );
    net.epochs(1);
    net.refused(seed_of(attester), attest_msg(s, &root_for(s), 1, 1), MarketCode::EStackDisputePeriodOver);
    net.ok(seed_of(selected), json!({"claim_funds": {"settled_ticket_ids": [s]}}));
    let n = net.node_of(attester);
    // ⌈10_000·100/1000⌉ = 1_000.
    assert_eq!((n.collateral.0, n.reputation_score), (9_000, REPUTATION_START - REPUTATION_TIMEOUT_LOSS));
    assert_eq!(net.state.bank.module_balance(accounts::MARKET_COMMUNAL_TREASURY), 1_000);
    net.check_books();
}

#[test]
fn an_abandoned_stack_is_reclaimed_after_its_deadline_and_costs_the_node_reputation() {
    let (mut net, _a, b, t) = two_node_market(security::NO_SECURITY);
    net.set("set_stack_settlement_deadline_epochs", "epochs", 2);
    let before = net.balance(OWNER);
    let (s, _) = net.buy(OWNER, t, 100_000, 2_000_000);
    let reclaim = json!({"reclaim_stack": {"stack_small_id": s}});
    net.refused(OWNER, reclaim.clone(), MarketCode::EStackNotExpired);
    net.epochs(3);
    net.refused(STRANGER, reclaim.clone(), MarketCode::ENotStackOwner);
    net.refused(seed_of(b), settle_msg(s, 1, &root_for(s), 1), MarketCode::EStackSettlementDeadlinePassed);
    net.ok(OWNER, reclaim.clone());
    assert_eq!(net.balance(OWNER), before);
    assert_eq!(net.node_of(b).reputation_score, REPUTATION_START - REPUTATION_TIMEOUT_LOSS);
    net.refused(OWNER, reclaim, MarketCode::EStackAlreadyClaimed);
    net.check_books();
}

#[test]
fn sampling_skips_nodes_below_the_tasks_minimum_at_purchase() {
    let (mut net, t, _) = consensus_market(1);
    let picky = net.task(security::NO_SECURITY, json!({"minimum_reputation_score": 45}));
    net.subscribe(N1, picky, 1_000_000);
    net.subscribe(N2, picky, 1_000_000);
    // Node 1 times out twice as an attester: 50 → 30, under the minimum after subscribing.
    for _ in 0..20 {
        let (s, selected) = net.buy(OWNER, t, 1_000, 1_000_000);
        net.ok(seed_of(selected), settle_msg(s, 1_000, &root_for(s), 1));
        let attester = net.ticket(s).requested_attestation_nodes[0];
        if attester != 1 {
            net.ok(seed_of(attester), attest_msg(s, &root_for(s), 1, 1));
        }
        net.epochs(2);
        net.ok(seed_of(selected), json!({"claim_funds": {"settled_ticket_ids": [s]}}));
        if net.node_of(1).reputation_score < 45 {
            break;
        }
    }
    assert!(net.node_of(1).reputation_score < 45, "node 1 should have timed out");
    for _ in 0..10 {
        let (_, n) = net.buy(OWNER, picky, 1_000, 1_000_000);
        assert_eq!(n, 2, "node 1 is below the minimum now");
    }
}

#[test]
fn registration_needs_an_admitted_storage_node_collateral_and_money() {
    let mut net = Net::new();
    net.ok(ADMIN, json!({"set_required_registration_collateral": {"amount": "100"}}));
    let reg = |c: &str| json!({"register_node": {"collateral": c}});
    net.refused(N1, reg("100"), MarketCode::ENotAdmittedStorageNode);
    // A worker of another type is not a storage node.
    net.ok(
        ADMIN,
        json!({"register_worker": {"ip_address": "10.0.0.9", "payment_wallet": sender(N1).address(),
        "attestation_report": "dev", "worker_type": "llama", "signing_key": sender(N1).public_key_hex()}}),
    );
    net.refused(N1, reg("100"), MarketCode::ENotAdmittedStorageNode);
    net.storage_worker(N2);
    net.refused(N2, reg("99"), MarketCode::EInsufficientCollateral);
    net.refused(N2, reg("100"), MarketCode::EInsufficientBalance);
    net.fund(N2, 150);
    net.ok(N2, reg("150"));
    net.refused(N2, reg("100"), MarketCode::ENodeAlreadyRegistered);
    assert_eq!(net.state.bank.module_balance(accounts::MARKET_COLLATERAL), 150);
    net.ok(ADMIN, json!({"disable_registration": {}}));
    net.storage_worker(N3);
    net.fund(N3, 100);
    net.refused(N3, reg("100"), MarketCode::ENodeRegDisabled);
    // Disable, wait 4 epochs, destroy: the collateral comes back.
    net.refused(N2, json!({"destroy_disabled_node": {}}), MarketCode::ENodeMustWaitBeforeDestroy);
    net.ok(N2, json!({"permanently_disable_node": {}}));
    net.refused(N2, json!({"permanently_disable_node": {}}), MarketCode::ENodeAlreadyDisabled);
    net.epochs(3);
    net.refused(N2, json!({"destroy_disabled_node": {}}), MarketCode::ENodeMustWaitBeforeDestroy);
    net.epochs(1);
    net.ok(N2, json!({"destroy_disabled_node": {}}));
    assert_eq!(net.balance(N2), 150);
    net.check_books();
}

#[test]
fn task_and_subscription_refusals_one_condition_at_a_time() {
    let mut net = Net::new();
    let ct = |v: Value| json!({ "create_task": v });
    net.refused(STRANGER, ct(json!({"role": 8, "is_public": true})), MarketCode::ENotAuthorized);
    net.refused(ADMIN, ct(json!({"role": 9, "is_public": true})), MarketCode::EInvalidTaskRole);
    net.refused(
        ADMIN,
        ct(json!({"role": 8, "security_level": 3, "is_public": true})),
        MarketCode::EInvalidSecurityLevel,
    );
    net.refused(
        ADMIN,
        ct(json!({"role": 8, "minimum_reputation_score": 101, "is_public": true})),
        MarketCode::EInvalidMinimumReputationScore,
    );
    let public = net.task(security::NO_SECURITY, json!({}));
    let private = net.task(security::NO_SECURITY, json!({"is_public": false, "minimum_reputation_score": 40}));
    let high = net.task(security::NO_SECURITY, json!({"minimum_reputation_score": 60}));
    let n1 = net.node(N1, 0);
    let sub = |t: u64, p: u64| json!({"subscribe_node_to_task": {"task_small_id": t, "price_per_one_million_compute_units": p}});
    net.refused(N1, sub(99, 1), MarketCode::ETaskNotFound);
    net.refused(STRANGER, sub(public, 1), MarketCode::ENotAMarketNode);
    net.refused(N1, sub(high, 1), MarketCode::ENodeDoesNotMeetTaskRequirements);
    net.refused(N1, sub(private, 1), MarketCode::ENodeNotWhitelistedForTask);
    net.refused(N1, sub(public, 0), MarketCode::EInvalidPricePerComputeUnit);
    net.refused(
        ADMIN,
        json!({"whitelist_nodes_for_task": {"task_small_id": public, "nodes": [n1]}}),
        MarketCode::ETaskIsPublic,
    );
    net.refused(
        ADMIN,
        json!({"whitelist_nodes_for_task": {"task_small_id": private, "nodes": [77]}}),
        MarketCode::ENodeNotFound,
    );
    net.ok(ADMIN, json!({"whitelist_nodes_for_task": {"task_small_id": private, "nodes": [n1]}}));
    net.subscribe(N1, private, 5);
    net.subscribe(N1, public, 5);
    net.refused(N1, sub(public, 5), MarketCode::ENodeAlreadySubscribedToTask);
    let upd = |t: u64, p: u64| json!({"update_node_subscription": {"task_small_id": t, "price_per_one_million_compute_units": p}});
    net.refused(N1, upd(public, 0), MarketCode::EInvalidPricePerComputeUnit);
    net.refused(N1, upd(high, 3), MarketCode::ENodeNotSubscribedToTask);
    net.ok(N1, upd(public, 7));
    assert_eq!(net.state.market.tasks[&public].subscribed_nodes[&n1].price_per_one_million_compute_units, 7);
    // Deprecation and removal.
    let dep = json!({"deprecate_task": {"task_small_id": public}});
    let rem = json!({"remove_deprecated_task": {"task_small_id": public}});
    net.refused(ADMIN, rem.clone(), MarketCode::ETaskNotDeprecated);
    net.ok(ADMIN, dep.clone());
    net.refused(ADMIN, dep, MarketCode::ETaskAlreadyDeprecated);
    net.refused(N1, upd(public, 8), MarketCode::ETaskDeprecated);
    net.refused(
        OWNER,
        json!({"acquire_new_stack": {"task_small_id": public, "num_compute_units": 1, "price": 1}}),
        MarketCode::ETaskDeprecated,
    );
    net.refused(ADMIN, rem.clone(), MarketCode::ENotEnoughEpochsPassed);
    net.epochs(1);
    net.ok(N1, json!({"unsubscribe_node_from_task": {"task_small_id": public}}));
    net.refused(
        N1,
        json!({"unsubscribe_node_from_task": {"task_small_id": public}}),
        MarketCode::ENodeNotSubscribedToTask,
    );
    net.ok(ADMIN, rem);
    net.refused(N1, sub(public, 1), MarketCode::ETaskNotFound);
}

#[test]
fn stack_refusals_one_condition_at_a_time() {
    let (mut net, _a, b, t) = two_node_market(security::NO_SECURITY);
    let buy = |task: u64, units: u64, price: u64| json!({"acquire_new_stack": {"task_small_id": task, "num_compute_units": units, "price": price}});
    net.refused(OWNER, buy(t, 0, 1_000_000), MarketCode::EInvalidComputeUnits);
    net.refused(OWNER, buy(t, 1, 0), MarketCode::EInvalidPricePerComputeUnit);
    net.refused(OWNER, buy(99, 1, 1), MarketCode::ETaskNotFound);
    net.refused(OWNER, buy(t, 1, 1), MarketCode::EInvalidPricePerComputeUnit); // costs nothing
    net.refused(STRANGER, buy(t, 1_000, 1_000_000), MarketCode::EInsufficientBalance);
    net.refused(OWNER, buy(t, 1_000, 999_999), MarketCode::ENoNodesEligibleForTask);
    net.refused(OWNER, buy(t, COMPUTE_UNITS_PER_STACK + 1, 1_000_000), MarketCode::ENoNodesEligibleForTask);
    let empty = net.task(security::NO_SECURITY, json!({}));
    net.refused(OWNER, buy(empty, 1_000, 1_000_000), MarketCode::ENoNodesSubscribedToTask);
    let (s, selected) = net.buy(OWNER, t, 10_000, 2_000_000);
    assert_eq!(selected, b);
    let root = root_for(s);
    let mut bad_proof = settle_msg(s, 1, &root, 1);
    bad_proof["try_settle_stack"]["committed_stack_proof"] = json!("abcd");
    let mut bad_leaf = settle_msg(s, 1, &root, 1);
    bad_leaf["try_settle_stack"]["stack_merkle_leaf"] = json!("zz".repeat(32));
    let mut missing = settle_msg(s, 1, &root, 1);
    missing["try_settle_stack"]["stack_small_id"] = json!(99);
    net.refused(N2, missing, MarketCode::EStackNotFound);
    net.refused(N1, settle_msg(s, 1, &root, 1), MarketCode::ENodeNotSelectedForStack);
    net.refused(N2, settle_msg(s, 10_001, &root, 1), MarketCode::ETooManyComputedUnits);
    net.refused(N2, bad_proof, MarketCode::EInvalidCommittedStackProof);
    net.refused(N2, bad_leaf, MarketCode::EInvalidStackMerkleLeaf);
    net.ok(N2, settle_msg(s, 1, &root, 1));
    net.refused(N2, settle_msg(s, 1, &root, 1), MarketCode::EStackInSettlementDispute);
    net.refused(N1, json!({"claim_funds": {"settled_ticket_ids": [s]}}), MarketCode::ENodeNotSelectedForSettlement);
    net.refused(N2, attest_msg(s, &root, 1, 1), MarketCode::EStackDoesNotRequireSamplingConsensus);
    net.refused(
        N2,
        json!({"start_attestation_dispute": {"stack_small_id": s, "attestation_commitment": hex::encode([1u8; 32])}}),
        MarketCode::ETaskSecurityLevelNotSamplingConsensus,
    );
    net.refused(
        N2,
        json!({"claim_funds_for_stacks": {"stack_small_ids": [s], "num_compute_units_per_stack_to_claim": []}}),
        MarketCode::EInvalidNumClaimedComputeUnitsPerStack,
    );
    let (s2, _) = net.buy(OWNER, t, 10_000, 2_000_000);
    net.refused(
        N2,
        json!({"claim_funds_for_stacks": {"stack_small_ids": [s2], "num_compute_units_per_stack_to_claim": [10_001]}}),
        MarketCode::EInvalidNumClaimedComputeUnitsPerStack,
    );
    net.refused(
        N2,
        json!({"claim_funds_for_stacks": {"stack_small_ids": [s2], "num_compute_units_per_stack_to_claim": [5]}}),
        MarketCode::ETaskIsNotConfidentialCompute,
    );
    net.refused(N2, attest_msg(s2, &root, 1, 1), MarketCode::EStackNotInSettlementDispute);
}

#[test]
fn admin_setters_are_validated() {
    let mut net = Net::new();
    let set = |n: &str, f: &str, v: u64| json!({ n: { f: v } });
    net.refused(STRANGER, set("set_cross_validation_extra_nodes_count", "count", 2), MarketCode::ENotAuthorized);
    net.refused(
        ADMIN,
        set("set_permille_to_slash_node_on_timeout", "permille", 1001),
        MarketCode::ETotalPermilleMustBeLessThan1000,
    );
    net.refused(
        ADMIN,
        set("set_permille_for_oracle_on_dispute", "permille", 801),
        MarketCode::ETotalPermilleMustBeLessThan1000,
    );
    net.refused(
        ADMIN,
        set("set_permille_for_honest_nodes_on_dispute", "permille", 901),
        MarketCode::ETotalPermilleMustBeLessThan1000,
    );
    net.refused(
        ADMIN,
        set("set_cross_validation_probability_permille", "permille", 1001),
        MarketCode::EInvalidParameter,
    );
    net.refused(ADMIN, set("set_cross_validation_extra_nodes_count", "count", 0), MarketCode::EInvalidParameter);
    net.refused(ADMIN, set("set_sampling_consensus_charge_permille", "permille", 999), MarketCode::EInvalidParameter);
    net.ok(ADMIN, set("set_permille_for_oracle_on_dispute", "permille", 800));
    assert_eq!(net.state.market.params.permille_for_oracle_on_dispute, 800);
}

#[test]
fn bad_input_is_refused_with_the_field_named_and_nothing_changes() {
    let mut net = Net::new();
    let before = net.state.clone();
    for (msg, why) in [
        (json!({"register_node": {"collateral": "1", "extra": 1}}), "unknown field"),
        (json!({"register_node": {"collateral": "-1"}}), "msg.register_node"),
        (json!({"register_node": {"collateral": "340282366920938463463374607431768211456"}}), "msg.register_node"),
        (
            serde_json::from_str(
                r#"{"acquire_new_stack": {"task_small_id": 1, "num_compute_units": 18446744073709551616, "price": 1}}"#,
            )
            .expect("json"),
            "msg.acquire_new_stack",
        ),
        (
            json!({"acquire_new_stack": {"task_small_id": "one", "num_compute_units": 1, "price": 1}}),
            "msg.acquire_new_stack",
        ),
        (json!({"transfer": {"to": "secret1nope", "amount": "1"}}), "to"),
        (json!({"claim_funds": {"settled_ticket_ids": (0..300).collect::<Vec<u64>>()}}), "ETooManyItems"),
    ] {
        let e = net.exec(ADMIN, msg.clone()).expect_err("refused");
        assert!(e.to_string().contains(why), "{msg}: {e}");
    }
    assert_eq!(net.state.bank, before.bank);
    assert_eq!(net.state.market, before.market);
    // Amounts that would overflow are refused, not wrapped.
    net.storage_worker(N1);
    net.fund(N1, 10);
    net.ok(N1, json!({"register_node": {"collateral": "10"}}));
    let t = net.task(security::SAMPLING_CONSENSUS, json!({}));
    net.subscribe(N1, t, u64::MAX);
    // A stack at u64::MAX per million for a million units costs ⌊(2⁶⁴−1)·1212/1000⌋, computed
    // exactly (no wrap) and refused for want of money.
    let e = net.exec(
        ADMIN,
        json!({"acquire_new_stack": {"task_small_id": t, "num_compute_units": 1_000_000, "price": u64::MAX}}),
    );
    let cost = u128::from(u64::MAX) * 1212 / 1000;
    match e {
        Err(ContractError::Market { code, detail, .. }) => {
            assert_eq!(code, MarketCode::EInsufficientBalance.code());
            assert!(detail.contains(&cost.to_string()), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    net.check_books();
}

#[test]
fn rewards_epochs_are_funded_and_claimed_with_real_money() {
    let mut net = Net::new();
    let admin_before = net.balance(ADMIN);
    net.ok(ADMIN, json!({"fund_epoch": {"epoch": 1, "amount": "1000"}}));
    assert_eq!(net.state.bank.module_balance(accounts::REWARDS_POOL), 1000);
    assert_eq!(admin_before - net.balance(ADMIN), 1000);
    let e = net.exec(OWNER, json!({"fund_epoch": {"epoch": 1, "amount": "1"}})).expect_err("not admin");
    assert!(matches!(e, ContractError::Unauthorized { .. }));
    net.state.rewards.record_work(1, &sender(OWNER).address(), 5).expect("work");
    net.ok(ADMIN, json!({"close_epoch": {"epoch": 1}}));
    net.ok(OWNER, json!({"claim": {"epoch": 1}}));
    assert_eq!(net.balance(OWNER), 1000);
    assert_eq!(net.state.bank.module_balance(accounts::REWARDS_POOL), 0);
    let e = net.exec(ADMIN, json!({"fund_epoch": {"epoch": 2, "amount": "2000000000000"}})).expect_err("too much");
    assert!(matches!(e, ContractError::InsufficientFunds { .. }), "{e}");
    net.check_books();
}

#[test]
fn mint_is_refused_unless_the_genesis_allowed_it() {
    let mut net = Net::with_genesis(json!({"allow_mint": false}));
    let e = net.exec(ADMIN, json!({"mint": {"to": sender(OWNER).address(), "amount": "5"}})).expect_err("off");
    assert!(e.to_string().contains("minting is off"), "{e}");
    let mut dev = Net::new();
    dev.ok(ADMIN, json!({"mint": {"to": sender(OWNER).address(), "amount": "5"}}));
    assert_eq!(dev.balance(OWNER), 5);
    dev.check_books();
}

#[test]
fn module_accounts_are_where_the_money_is() {
    let (mut net, _, _, t) = two_node_market(security::NO_SECURITY);
    net.buy(OWNER, t, 500_000, 2_000_000);
    assert_eq!(net.state.bank.balance(&module_address(accounts::MARKET_ESCROW)), 1_000_000);
    assert_eq!(net.state.bank.balance(&module_address(accounts::MARKET_COLLATERAL)), 13_000);
    let o = net.state.market.overview(&net.state.bank, net.time);
    assert_eq!((o.open_stacks, o.nodes.len(), o.tasks.len()), (1, 2, 1));
    assert_eq!(o.tasks[0].lowest_price, Some(1_000_000));
}

/// One random step of the property test.
#[derive(Debug, Clone)]
enum Step {
    Transfer(u8, u8, u64),
    Buy(u8, u64, u64),
    Settle(u64, u64, bool),
    Attest(u64, bool),
    Claim(u64),
    ClaimCc(u64, u64),
    Reclaim(u64),
    Oracle(u64),
    Epochs(u64),
    Withdraw(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, 0u8..4, 0u64..5_000_000).prop_map(|(a, b, x)| Step::Transfer(a, b, x)),
        (0u8..3, 1u64..1_200_000, 1u64..5_000_000).prop_map(|(t, u, p)| Step::Buy(t, u, p)),
        (1u64..12, 0u64..1_100_000, any::<bool>()).prop_map(|(s, c, honest)| Step::Settle(s, c, honest)),
        (1u64..12, any::<bool>()).prop_map(|(s, honest)| Step::Attest(s, honest)),
        (1u64..12).prop_map(Step::Claim),
        (1u64..12, 0u64..1_100_000).prop_map(|(s, c)| Step::ClaimCc(s, c)),
        (1u64..12).prop_map(Step::Reclaim),
        (1u64..12).prop_map(Step::Oracle),
        (0u64..4).prop_map(Step::Epochs),
        (0u8..4).prop_map(Step::Withdraw),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn money_is_conserved_and_the_market_accounts_always_add_up(steps in proptest::collection::vec(step(), 1..60)) {
        let mut net = Net::new();
        net.ok(ADMIN, json!({"set_required_registration_collateral": {"amount": "1000"}}));
        net.set("set_cross_validation_probability_permille", "permille", 500);
        net.set("set_stack_settlement_deadline_epochs", "epochs", 3);
        let tasks: Vec<u64> = (0..3).map(|l| net.task(l, json!({}))).collect();
        let oracle = net.node(N4, 1000);
        for who in [N1, N2, N3] {
            net.node(who, 50_000);
            for (i, t) in tasks.iter().enumerate() {
                net.subscribe(who, *t, 1_000_000 + (who as u64) * 100_000 * i as u64);
            }
        }
        net.ok(ADMIN, json!({"add_task_oracle": {"task_small_id": tasks[2], "node_small_id": oracle}}));
        for who in [OWNER, STRANGER] { net.fund(who, 50_000_000); }
        let supply = net.state.bank.supply;
        let who = |i: u8| [OWNER, STRANGER, N1, N2][i as usize % 4];
        for s in steps {
            let _ = match s {
                Step::Transfer(a, b, x) => net.exec(who(a), json!({"transfer": {"to": sender(who(b)).address(), "amount": x.to_string()}})),
                Step::Buy(t, u, p) => net.exec(who(t), json!({"acquire_new_stack": {"task_small_id": tasks[t as usize], "num_compute_units": u, "price": p}})),
                Step::Settle(id, c, honest) => {
                    let node = net.state.market.stacks.get(&id).map(|s| s.selected_node_id).unwrap_or(1);
                    let root = if honest { root_for(id) } else { root_for(id + 50) };
                    net.exec(seed_of(node), settle_msg(id, c, &root, 1))
                }
                Step::Attest(id, honest) => {
                    let a = net.state.market.tickets.get(&id).and_then(|t| t.requested_attestation_nodes.first().copied()).unwrap_or(1);
                    let root = if honest { root_for(id) } else { root_for(id + 60) };
                    net.exec(seed_of(a), attest_msg(id, &root, 1, 1))
                }
                Step::Claim(id) => {
                    let node = net.state.market.stacks.get(&id).map(|s| s.selected_node_id).unwrap_or(1);
                    net.exec(seed_of(node), json!({"claim_funds": {"settled_ticket_ids": [id]}}))
                }
                Step::ClaimCc(id, c) => {
                    let node = net.state.market.stacks.get(&id).map(|s| s.selected_node_id).unwrap_or(1);
                    net.exec(seed_of(node), json!({"claim_funds_for_stacks": {"stack_small_ids": [id], "num_compute_units_per_stack_to_claim": [c]}}))
                }
                Step::Reclaim(id) => {
                    let owner = net.state.market.stacks.get(&id).map(|s| s.owner.clone());
                    let o = if owner == Some(sender(STRANGER).address()) { STRANGER } else { OWNER };
                    net.exec(o, json!({"reclaim_stack": {"stack_small_id": id}}))
                }
                Step::Oracle(id) => net.exec(N4, json!({"settle_dispute": {"stack_small_id": id, "stack_root": hex::encode(root_for(id))}})),
                Step::Epochs(n) => { net.epochs(n); Ok(Value::Null) }
                Step::Withdraw(i) => net.exec(who(i), json!({"withdraw_fees": {}})),
            };
            prop_assert_eq!(net.state.bank.total(), Some(supply));
            prop_assert_eq!(net.state.bank.supply, supply);
            if let Err(e) = net.state.market.accounts_balance(&net.state.bank) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
