//! The client checks the node before it sends anything: a development node only when told so
//! (and it says so), a node without attestation never, and a node cannot present a report made
//! for another key.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use prag_proto::api::CreateCollectionRequest;

fn prag(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_prag")).args(args).current_dir(dir).output().expect("run prag")
}

#[test]
fn a_client_sends_a_dev_node_nothing_unless_told_and_then_says_so_every_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let node = NodeProcess::start(&tmp.path().join("data"), &["--attestation", "dev"]);
    let strict = prag_node::client::NodeClient::new(&node.url, key(60), Default::default()).expect("client");
    let err = rt()
        .block_on(strict.post::<_, serde_json::Value>("/v1/collections", &CreateCollectionRequest { name: "x".into() }))
        .expect_err("refused");
    assert!(format!("{err:#}").contains("development mode"), "{err:#}");
    assert!(node.status().collections.is_empty(), "nothing reached the node");

    // The command line: refused without the flag; with it, done, and a warning on every run.
    let dir = tmp.path();
    assert!(prag(&["keys", "new", "--out", "k.key"], dir).status.success());
    let conn = ["--node", node.url.as_str(), "--key", "k.key"];
    let out = prag(&[&["collection", "create"][..], &conn, &["clinic"]].concat(), dir);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-dev-node"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..2 {
        let out = prag(&[&["collection", "list"][..], &conn, &["--allow-dev-node"]].concat(), dir);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("attestation development mode"));
    }
}

#[test]
fn a_node_that_cannot_prove_it_is_attested_gets_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    // This machine is no TEE guest and the node has no --self-report: no report to present.
    let node = NodeProcess::start(&tmp.path().join("data"), &["--attestation", "hardware"]);
    assert!(node.log_text().contains("NO ATTESTATION REPORT"));
    let client = node.client(&key(61)); // even a client that accepts development nodes
    let err = rt()
        .block_on(client.post::<_, serde_json::Value>("/v1/collections", &CreateCollectionRequest { name: "x".into() }))
        .expect_err("refused");
    assert!(format!("{err:#}").contains("cannot prove it is an attested node"), "{err:#}");
    let public: prag_proto::api::PublicStatus =
        rt().block_on(async { reqwest::get(format!("{}/v1/status", node.url)).await?.json().await }).expect("status");
    assert!(!public.attested);
}

#[test]
fn a_node_refuses_to_present_a_report_made_for_another_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let out = prag(&["storage", "identity", "--data", "other", "--dev-report", "other.report"], dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = |mode: &str| {
        Command::new(env!("CARGO_BIN_EXE_prag"))
            .args(["node", "--data", "mine", "--api", &format!("127.0.0.1:{}", free_port()), "--device", "cpu"])
            .args(["--attestation", mode, "--self-report", "other.report", "--model"])
            .arg(model_dir())
            .current_dir(dir)
            .output()
            .expect("run")
    };
    let out = start("dev");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not bind this node's storage key"));
    let out = start("hardware");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only a node in --attestation dev"));
}
