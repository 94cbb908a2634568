//! The contracts through the `prag admin` / `prag worker` commands against a real node: who may do
//! what, API keys never stored in plaintext, bad messages refused without state change, and the
//! ledger replayed to the same state after a SIGKILL.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::cli::{Cli, strs};
use common::*;

#[test]
fn admin_and_worker_commands_follow_the_contract_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let cli0 = Cli { url: "http://127.0.0.1:1", dir };
    let (_admin_pk, admin_addr) = cli0.key("admin.key");
    let (sub_pk, _) = cli0.key("sub.key");
    let (_, wallet_addr) = cli0.key("wallet.key");
    let (worker_pk, _) = cli0.key("worker.key");
    let (_, _) = cli0.key("stranger.key");

    let data = dir.join("data");
    let admin_key = dir.join("admin.key");
    // The admin's opening balance funds the reward epoch below (epochs are real money).
    let opening = format!("{admin_addr}=1000000");
    let mut node = NodeProcess::start(
        &data,
        &["--admin-key", admin_key.to_str().expect("utf8"), "--attestation", "dev", "--genesis-account", &opening],
    );
    let cli = Cli { url: &node.url.clone(), dir };
    std::fs::write(dir.join("worker.report"), cli.ok(&["worker", "--key", "worker.key", "dev-report"]))
        .expect("report");
    std::fs::write(dir.join("stranger.report"), cli.ok(&["worker", "--key", "stranger.key", "dev-report"]))
        .expect("report");

    let status: serde_json::Value =
        serde_json::from_str(&cli.ok(&["admin", "--key", "admin.key", "status", "--json"])).expect("json");
    assert_eq!(status["admin"], admin_addr.as_str());
    assert_eq!(status["orderer"], true);

    // Subscribers: admin yes, stranger no.
    cli.refused(&["admin", "--key", "stranger.key", "register-subscriber", &sub_pk], "only the admin");
    cli.ok(&["admin", "--key", "admin.key", "register-subscriber", &sub_pk]);
    let q = format!(r#"{{"subscriber_status":{{"public_key":"{sub_pk}"}}}}"#);
    assert!(cli.ok(&["admin", "--key", "stranger.key", "query", "--json", &q]).contains("true"));

    // API keys: stored hashed; the generated plaintext is shown once and found nowhere on disk.
    let added: serde_json::Value =
        serde_json::from_str(&cli.ok(&["admin", "--key", "admin.key", "add-api-key", "--json"])).expect("json");
    let plaintext = added["api_key"].as_str().expect("key").to_string();
    assert!(plaintext.starts_with("sk-") && plaintext.len() == 75);
    cli.refused(&["admin", "--key", "stranger.key", "add-api-key", "sk-mine"], "only the admin");
    cli.refused(&["admin", "--key", "stranger.key", "list-api-keys"], "admin");
    let listed = cli.ok(&["admin", "--key", "admin.key", "list-api-keys", "--json"]);
    assert!(listed.contains(&prag_proto::contracts::subscription::hash_api_key(&plaintext)));
    let on_disk = all_files(&data)
        .into_iter()
        .filter(|f| std::fs::read(f).unwrap_or_default().windows(plaintext.len()).any(|w| w == plaintext.as_bytes()))
        .count();
    assert_eq!(on_disk, 0, "plaintext API key found in the data directory");

    // Workers: admin registers; wallet owner updates; worker key reports; strangers refused.
    cli.refused(
        &[
            "admin",
            "--key",
            "stranger.key",
            "register-worker",
            "--ip",
            "10.9.0.1",
            "--wallet",
            &wallet_addr,
            "--type",
            "llama",
            "--report-text",
            "r",
        ],
        "only the admin",
    );
    let register = |report: &str| {
        vec![
            "admin".to_string(),
            "--key".into(),
            "admin.key".into(),
            "register-worker".into(),
            "--ip".into(),
            "10.9.0.1".into(),
            "--wallet".into(),
            wallet_addr.clone(),
            "--type".into(),
            "llama".into(),
            "--report".into(),
            report.into(),
            "--signing-key".into(),
            worker_pk.clone(),
        ]
    };
    // The attestation gate: a file that is not a report, and a genuine dev report for another key.
    cli.refused(&strs(&register("worker.key")), "attestation");
    cli.refused(&strs(&register("stranger.report")), "does not bind");
    cli.ok(&strs(&register("worker.report")));
    cli.refused(
        &[
            "admin",
            "--key",
            "admin.key",
            "register-worker",
            "--ip",
            "10.9.0.1",
            "--wallet",
            &wallet_addr,
            "--type",
            "x",
            "--report",
            "worker.report",
            "--signing-key",
            &worker_pk,
        ],
        "already exists",
    );
    cli.refused(&["worker", "--key", "stranger.key", "set-type", "--ip", "10.9.0.1", "mistral"], "payment wallet");
    cli.ok(&["worker", "--key", "wallet.key", "set-type", "--ip", "10.9.0.1", "mistral"]);
    cli.refused(&["worker", "--key", "stranger.key", "liveliness", "--ip", "10.9.0.1"], "registered worker");
    cli.ok(&["worker", "--key", "worker.key", "liveliness", "--ip", "10.9.0.1"]);
    cli.ok(&["admin", "--key", "admin.key", "fund-epoch", "1", "1000"]);
    let report = [
        "worker",
        "--key",
        "worker.key",
        "report-work",
        "--ip",
        "10.9.0.1",
        "--report-id",
        "r1",
        "--epoch",
        "1",
        "--input-tokens",
        "40",
        "--output-tokens",
        "2",
    ];
    cli.ok(&report);
    cli.refused(&report, "replayed");
    cli.ok(&["admin", "--key", "admin.key", "close-epoch", "1"]);
    cli.refused(&["worker", "--key", "stranger.key", "claim", "1"], "not found");
    cli.ok(&["worker", "--key", "wallet.key", "claim", "1"]);
    cli.refused(&["worker", "--key", "wallet.key", "claim", "1"], "replayed");
    // Client and output flags stand anywhere on the line, after the subcommand too.
    let models = cli.ok(&["admin", "query", "--key", "admin.key", "--json", r#"{"get_models":{}}"#]);
    assert!(models.contains("mistral"));
    serde_json::from_str::<serde_json::Value>(&models).expect("--json prints JSON");

    // Bad input: a clear error naming the problem; nothing changes; the node keeps running.
    let before: serde_json::Value =
        serde_json::from_str(&cli.ok(&["admin", "--key", "admin.key", "status", "--json"])).expect("json");
    cli.refused(&["admin", "exec", "--key", "admin.key", "--json", "{not json"], "not valid JSON");
    cli.refused(
        &["admin", "--key", "admin.key", "exec", "--json", r#"{"frobnicate":{"amount":"1"}}"#],
        "unknown message",
    );
    cli.refused(
        &["admin", "--key", "admin.key", "exec", "--json", r#"{"fund_epoch":{"epoch":"one","amount":"5"}}"#],
        "msg.fund_epoch",
    );
    cli.refused(&["admin", "--key", "admin.key", "register-subscriber", "not-a-key"], "public_key");
    let huge = format!(r#"{{"add_api_key":{{"api_key":"{}"}}}}"#, "k".repeat(5000));
    cli.refused(&["admin", "--key", "admin.key", "exec", "--json", &huge], "api_key");
    let after: serde_json::Value =
        serde_json::from_str(&cli.ok(&["admin", "--key", "admin.key", "status", "--json"])).expect("json");
    assert_eq!(before["height"], after["height"]);
    assert!(node.is_running());

    // SIGKILL and restart: the replayed ledger gives the same head and state.
    node.restart();
    let cli = Cli { url: &node.url.clone(), dir };
    let replayed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["admin", "--key", "admin.key", "status", "--json"])).expect("json");
    assert_eq!(replayed["height"], after["height"]);
    assert_eq!(replayed["head_hash"], after["head_hash"]);
    assert!(cli.ok(&["admin", "--key", "stranger.key", "query", "--json", &q]).contains("true"));
    let share = cli.ok(&["worker", "--key", "wallet.key", "share", "1", "--json"]);
    assert!(share.contains(r#""amount":"1000""#) && share.contains(r#""claimed":true"#), "{share}");
}
