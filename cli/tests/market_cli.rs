//! The compute market through `prag market …` against real nodes: one scenario per security
//! level (fees and refunds to the unit), sampling consensus with cross-validation forced on
//! (agreement pays the attester; a planted lie is resolved by the oracle against the liar),
//! refusals naming Atoma's error and number, bad input changing nothing, and the same state hash
//! after a SIGKILL and restart and on a follower that replicated the ledger over libp2p.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::cli::{Cli, strs};
use common::*;
use prag_proto::contracts::market::commitment::{merkle_root, request_leaf};
use serde_json::Value;

/// Seconds per market epoch in this test's network: short, so claims do not wait a day, long
/// enough that an attestation lands inside its window on a loaded machine.
const EPOCH_SECS: u64 = 3;

fn root(tag: &str) -> String {
    let leaves: Vec<[u8; 32]> = (0..5u8).map(|i| request_leaf(format!("{tag} q{i}").as_bytes(), b"top-k")).collect();
    hex::encode(merkle_root(&leaves).expect("root"))
}

fn balance(cli: &Cli<'_>, address: &str) -> u128 {
    let v = cli.json(&["market", "balance", address]);
    v["amount"].as_str().unwrap_or("0").parse().expect("amount")
}

/// The first event of `kind` in a committed market transaction's receipt.
fn event(receipt: &Value, kind: &str) -> Value {
    receipt["answer"]["events"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["type"] == kind).cloned())
        .unwrap_or_else(|| panic!("no {kind} in {receipt}"))
}

fn state_hash(cli: &Cli<'_>) -> (u64, String) {
    let v = cli.json(&["admin", "--key", "admin.key", "status"]);
    (v["height"].as_u64().unwrap_or(0), v["state_hash"].as_str().unwrap_or_default().to_string())
}

/// Waits until the market epoch (node and test share the clock) reaches `epoch`.
fn wait_epoch(epoch: u64) {
    while prag_node::unix_now() / EPOCH_SECS < epoch {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ticket_epoch(cli: &Cli<'_>, stack: u64) -> u64 {
    let v = cli.json(&["market", "stack", "show", &stack.to_string()]);
    v["ticket"]["dispute_settled_at_epoch"].as_u64().expect("ticket")
}

/// `prag market --key KEY stack buy --task T --units U --price P`.
fn buy_args(key: &str, task: u64, units: u64, price: u64) -> Vec<String> {
    let line = format!("market --key {key} stack buy --task {task} --units {units} --price {price}");
    line.split(' ').map(String::from).collect()
}

struct Net<'a> {
    cli: Cli<'a>,
    owner: String,
    /// node key file → (address, node small id)
    nodes: Vec<(String, String, u64)>,
}

impl Net<'_> {
    fn node_key(&self, id: u64) -> &str {
        &self.nodes.iter().find(|n| n.2 == id).expect("node").0
    }

    fn addr(&self, id: u64) -> &str {
        &self.nodes.iter().find(|n| n.2 == id).expect("node").1
    }

    fn task(&self, security: &str) -> u64 {
        let r = self.cli.json(&["market", "--key", "admin.key", "task", "create", "--security", security]);
        event(&r, "TaskRegisteredEvent")["task_small_id"].as_u64().expect("task id")
    }

    fn subscribe(&self, key: &str, task: u64, price: u64) {
        self.cli.ok(&["market", "--key", key, "subscribe", "--task", &task.to_string(), "--price", &price.to_string()]);
    }

    /// Buys a stack as the owner: (stack id, selected node id).
    fn buy(&self, task: u64, units: u64, price: u64) -> (u64, u64) {
        let r = self.cli.json(&strs(&buy_args("owner.key", task, units, price)));
        let e = event(&r, "StackCreatedEvent");
        (e["stack_small_id"].as_u64().expect("stack"), e["selected_node_id"].as_u64().expect("node"))
    }
}

#[test]
fn the_market_through_the_command_line_settles_disputes_and_replicates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let cli0 = Cli { url: "http://127.0.0.1:1", dir };
    let (_, admin_addr) = cli0.key("admin.key");
    let (_, owner) = cli0.key("owner.key");
    cli0.key("stranger.key");
    let port = free_port();
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let opening = format!("{admin_addr}=1000000000000");
    let epoch = EPOCH_SECS.to_string();
    let mut a = NodeProcess::start(
        &dir.join("a"),
        &[
            "--admin-key",
            dir.join("admin.key").to_str().unwrap(),
            "--genesis-account",
            &opening,
            "--market-epoch-secs",
            &epoch,
            "--p2p-listen",
            &p2p,
        ],
    );
    let url = a.url.clone();
    let cli = Cli { url: &url, dir };

    // Four storage nodes' keys, registered as attested prag-storage workers (dev reports) and
    // funded by the admin; a fifth key that is not a storage worker.
    let mut nodes = Vec::new();
    for name in ["n1", "n2", "n3", "n4", "n5"] {
        let key_file = format!("{name}.key");
        let (pk, address) = cli.key(&key_file);
        cli.ok(&["market", "--key", "admin.key", "transfer", &address, "1000000"]);
        if name != "n5" {
            std::fs::write(dir.join(format!("{name}.report")), cli.ok(&["worker", "--key", &key_file, "dev-report"]))
                .expect("report");
            cli.ok(&[
                "admin",
                "--key",
                "admin.key",
                "register-worker",
                "--ip",
                &format!("peer-{name}"),
                "--wallet",
                &address,
                "--type",
                "prag-storage",
                "--report",
                &format!("{name}.report"),
                "--signing-key",
                &pk,
            ]);
        }
        nodes.push((key_file, address));
    }
    cli.ok(&["market", "--key", "admin.key", "transfer", &owner, "100000000"]);
    cli.ok(&["market", "--key", "admin.key", "exec", r#"{"set_required_registration_collateral":{"amount":"5000"}}"#]);
    cli.refused(
        &["market", "--key", "n5.key", "node", "register", "--collateral", "5000"],
        "ENotAdmittedStorageNode (312012301)",
    );
    cli.refused(
        &["market", "--key", "n1.key", "node", "register", "--collateral", "4999"],
        "EInsufficientCollateral (312012303)",
    );
    let mut registered = Vec::new();
    for (i, (key_file, address)) in nodes.iter().take(4).enumerate() {
        let collateral = if i == 1 { "8000" } else { "5000" };
        let r = cli.json(&["market", "--key", key_file, "node", "register", "--collateral", collateral]);
        let id = event(&r, "NodeRegisteredEvent")["node_small_id"].as_u64().expect("id");
        registered.push((key_file.clone(), address.clone(), id));
    }
    assert_eq!(balance(&cli, &nodes[1].1), 1_000_000 - 8_000, "collateral left the node's account");
    let net = Net { cli, owner: owner.clone(), nodes: registered };
    let cli = &net.cli;
    let n2 = net.nodes[1].2;

    // --- One scenario per security level: n1 asks 3_000_000, n2 1_000_000 per million; a cap of
    // 2_000_000 only n2 meets, so n2 serves every stack. U = 500_000, C = 300_000.
    let (u, c, p) = (500_000u64, 300_000u64, 2_000_000u64);
    for (level, sampling) in [("no-security", false), ("confidential-compute", false), ("sampling-consensus", true)] {
        let t = net.task(level);
        net.subscribe("n1.key", t, 3_000_000);
        net.subscribe("n2.key", t, 1_000_000);
        let owner_before = balance(cli, &net.owner);
        let (s, selected) = net.buy(t, u, p);
        assert_eq!(selected, n2, "{level}: the only node at or under the cap is selected");
        let base = u128::from(p) * u128::from(u) / 1_000_000;
        let escrow = if sampling { base * (1200 + 12) / 1000 } else { base };
        assert_eq!(owner_before - balance(cli, &net.owner), escrow, "{level}: escrow");
        let (fee, refund) = if sampling {
            (
                u128::from(c) * u128::from(p) * 1200 / 1_000_000_000,
                u128::from(u - c) * u128::from(p) * 1200 / 1_000_000_000,
            )
        } else {
            (u128::from(c) * u128::from(p) / 1_000_000, u128::from(u - c) * u128::from(p) / 1_000_000)
        };
        let node_before = balance(cli, net.addr(n2));
        if level == "confidential-compute" {
            cli.ok(&["market", "--key", "n2.key", "claim", &s.to_string(), "--units", &c.to_string()]);
        } else {
            cli.ok(&[
                "market",
                "--key",
                "n2.key",
                "settle",
                "--stack",
                &s.to_string(),
                "--units",
                &c.to_string(),
                "--root",
                &root(level),
            ]);
            cli.refused(
                &["market", "--key", "n2.key", "claim", &s.to_string()],
                "EStackDisputePeriodIsNotOver (312012032)",
            );
            cli.refused(
                &["market", "--key", "n1.key", "claim", &s.to_string()],
                "ENodeNotSelectedForSettlement (312012033)",
            );
            wait_epoch(ticket_epoch(cli, s));
            cli.ok(&["market", "--key", "n2.key", "claim", &s.to_string()]);
        }
        assert_eq!(balance(cli, net.addr(n2)) - node_before, fee, "{level}: the node's fee");
        assert_eq!(owner_before - balance(cli, &net.owner), escrow - refund, "{level}: the owner's refund");
        let shown = cli.json(&["market", "stack", "show", &s.to_string()]);
        assert_eq!(shown["stack"]["status"], "claimed", "{level}");
    }

    // --- Sampling consensus with cross-validation at 1000‰: n1, n2, n3 ask the same; n4 is the
    // task's oracle.
    cli.ok(&[
        "market",
        "--key",
        "admin.key",
        "exec",
        r#"{"set_cross_validation_probability_permille":{"permille":1000}}"#,
    ]);
    let t = net.task("sampling-consensus");
    for key_file in ["n1.key", "n2.key", "n3.key"] {
        net.subscribe(key_file, t, 1_000_000);
    }
    let oracle = net.nodes[3].2;
    cli.ok(&["market", "--key", "admin.key", "task", "add-oracle", &t.to_string(), &oracle.to_string()]);

    // Agreement: the attester re-executes, commits the same root, settles; it is paid its share
    // of the surcharge, ⌊C·P·X/1e9⌋.
    let (s, selected) = net.buy(t, 100_000, 1_000_000);
    let honest = root("agreement");
    cli.ok(&[
        "market",
        "--key",
        net.node_key(selected),
        "settle",
        "--stack",
        &s.to_string(),
        "--units",
        "100000",
        "--root",
        &honest,
    ]);
    let shown = cli.json(&["market", "stack", "show", &s.to_string()]);
    let attester = shown["ticket"]["requested_attestation_nodes"][0].as_u64().expect("an attester was drawn");
    assert_ne!(attester, selected, "the serving node never attests itself");
    let r =
        cli.json(&["market", "--key", net.node_key(attester), "attest", "--stack", &s.to_string(), "--root", &honest]);
    event(&r, "StackSettlementTicketEvent");
    cli.refused(
        &["market", "--key", net.node_key(attester), "attest", "--stack", &s.to_string(), "--root", &honest],
        "ENodeAlreadyAttested (312012307)",
    );
    wait_epoch(ticket_epoch(cli, s));
    cli.ok(&["market", "--key", net.node_key(selected), "claim", &s.to_string()]);
    let before = balance(cli, net.addr(attester));
    cli.ok(&["market", "--key", net.node_key(attester), "node", "withdraw"]);
    assert_eq!(balance(cli, net.addr(attester)) - before, 100_000u128 * 1_000_000 * 12 / 1_000_000_000);

    // A planted lie: the serving node commits to a root it did not compute; the attester's
    // honest root differs, which opens a dispute; the oracle's recomputed root decides.
    let (s, liar) = net.buy(t, 100_000, 1_000_000);
    cli.ok(&[
        "market",
        "--key",
        net.node_key(liar),
        "settle",
        "--stack",
        &s.to_string(),
        "--units",
        "100000",
        "--root",
        &root("a lie"),
    ]);
    let shown = cli.json(&["market", "stack", "show", &s.to_string()]);
    let attester = shown["ticket"]["requested_attestation_nodes"][0].as_u64().expect("attester");
    let truth = root("the truth");
    cli.ok(&["market", "--key", net.node_key(attester), "attest", "--stack", &s.to_string(), "--root", &truth]);
    assert_eq!(cli.json(&["market", "stack", "show", &s.to_string()])["stack"]["status"], "disputed");
    cli.refused(&["market", "--key", net.node_key(liar), "claim", &s.to_string()], "EStackInDispute (312012031)");
    cli.refused(
        &["market", "--key", net.node_key(attester), "resolve", "--stack", &s.to_string(), "--root", &truth],
        "ENotAnOracle (312012205)",
    );
    let owner_before = balance(cli, &net.owner);
    let r =
        cli.json(&["market", "--key", net.node_key(oracle), "resolve", "--stack", &s.to_string(), "--root", &truth]);
    let resolution = &event(&r, "StackDisputeResolvedEvent")["resolution"];
    assert_eq!(resolution["dishonest_nodes"], serde_json::json!([liar]));
    let liar_node = cli.json(&["market", "node", "show", &liar.to_string()]);
    assert_eq!((liar_node["collateral"].as_str(), liar_node["reputation_score"].as_u64()), (Some("0"), Some(0)));
    // Collateral T = 5000 (or 8000 for n2): oracle ⌈T/10⌉, honest ⌊(T − oracle)/5⌋, the rest communal.
    let t_slashed: u128 = if liar == n2 { 8_000 } else { 5_000 };
    let oracle_cut = t_slashed.div_ceil(10);
    assert_eq!(resolution["oracle_reward"], oracle_cut.to_string());
    assert_eq!(resolution["honest_reward_each"], ((t_slashed - oracle_cut) / 5).to_string());
    // The owner gets back what the liar claimed and the unused part: ⌊U·P·S/1e9⌋ = 120_000.
    assert_eq!(balance(cli, &net.owner) - owner_before, 120_000);
    let supply = cli.json(&["market", "supply"]);
    let communal = supply["accounts"]["market/communal_treasury"]["amount"].as_str().expect("communal").to_string();
    assert_eq!(communal, (t_slashed - oracle_cut - (t_slashed - oracle_cut) / 5).to_string());

    // --- Refusals name Atoma's error; bad input changes nothing.
    let (height_before, hash_before) = state_hash(cli);
    cli.refused(&strs(&buy_args("owner.key", t, 100_000, 999_999)), "ENoNodesEligibleForTask (312012022)");
    cli.refused(&strs(&buy_args("stranger.key", t, 1_000, 1_000_000)), "EInsufficientBalance (312012040)");
    cli.refused(
        &[
            "market",
            "--key",
            "owner.key",
            "exec",
            r#"{"acquire_new_stack":{"task_small_id":1,"num_compute_units":1,"price":1,"tip":5}}"#,
        ],
        "unknown field",
    );
    cli.refused(
        &[
            "market",
            "--key",
            "owner.key",
            "exec",
            r#"{"transfer":{"to":"secret1x","amount":"340282366920938463463374607431768211456"}}"#,
        ],
        "msg.transfer",
    );
    // Refusals map to HTTP like the node's other errors: not the signer's to do, no such thing.
    let claim_999 = r#"{"claim_funds":{"settled_ticket_ids":[999]}}"#;
    cli.refused(
        &["market", "--key", "owner.key", "exec", claim_999],
        "(403 forbidden): refused by the contract: ENotAMarketNode (312012309)",
    );
    cli.refused(
        &["market", "--key", "n1.key", "exec", claim_999],
        "(404 not_found): refused by the contract: EStackNotFound (312012027)",
    );
    cli.refused(
        &["market", "--key", "n1.key", "settle", "--stack", "1", "--units", "1", "--root", "nothex"],
        "not 32 bytes of hex",
    );
    assert_eq!(state_hash(cli), (height_before, hash_before.clone()), "refusals changed nothing");
    assert!(a.is_running());

    // --- A follower replicates the ledger over libp2p and replays it to the same state; the
    // orderer after SIGKILL and restart too.
    let b = NodeProcess::start(&dir.join("b"), &["--peer", &p2p, "--p2p-listen", "/ip4/127.0.0.1/tcp/0"]);
    let cli_b = Cli { url: &b.url, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while state_hash(&cli_b).0 < height_before {
        assert!(Instant::now() < deadline, "the follower did not catch up:\n{}", b.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(state_hash(&cli_b), (height_before, hash_before.clone()), "the follower's state equals the orderer's");
    assert_eq!(balance(&cli_b, &net.owner), balance(cli, &net.owner));
    a.restart();
    let cli = Cli { url: &a.url, dir };
    assert_eq!(state_hash(&cli), (height_before, hash_before), "replayed after SIGKILL: the same state");
}
