//! Three nodes on loopback over real libp2p sockets (TCP and QUIC): the ledger replicates from the
//! admin's node, transactions sent to another node are forwarded to it, a node killed and
//! restarted catches up, and node identities are stable.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use prag_proto::api::NodeStatus;
use prag_proto::ledger::SignedTx;
use serde_json::json;

fn ledger_head(node: &NodeProcess) -> (u64, String) {
    let rt = rt();
    let v: serde_json::Value =
        rt.block_on(node.client(&key(99)).public::<(), _>("GET", "/v1/ledger/status", None)).expect("ledger status");
    (v["height"].as_u64().unwrap_or(0), v["head_hash"].as_str().unwrap_or_default().to_string())
}

fn wait_same_ledger(a: &NodeProcess, b: &NodeProcess, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (ha, hb) = (ledger_head(a), ledger_head(b));
        if ha == hb && ha.0 > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: ledgers differ: {ha:?} vs {hb:?}\n{}", b.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn submit(node: &NodeProcess, n: u32, subscriber: u8) -> serde_json::Value {
    let admin = key(1);
    let pk = prag_proto::account::public_key_hex(key(subscriber).verifying_key());
    let tx = SignedTx::sign(
        &admin,
        &format!("p2pnonce{n:012}"),
        prag_node::unix_now(),
        json!({"register_subscriber": {"public_key": pk}}),
    )
    .expect("sign");
    rt().block_on(node.client(&admin).public("POST", "/v1/ledger/tx", Some(&tx))).expect("submit")
}

fn is_subscriber(node: &NodeProcess, subscriber: u8) -> bool {
    let pk = prag_proto::account::public_key_hex(key(subscriber).verifying_key());
    let v: serde_json::Value = rt()
        .block_on(node.client(&key(99)).public(
            "POST",
            "/v1/ledger/query",
            Some(&json!({"subscriber_status": {"public_key": pk}})),
        ))
        .expect("query");
    v.to_string().contains("true")
}

fn status(node: &NodeProcess) -> NodeStatus {
    node.status()
}

#[test]
fn ledger_replicates_forwards_and_catches_up_over_libp2p() {
    let tmp = tempfile::tempdir().expect("tmp");
    let admin_file = tmp.path().join("admin.key");
    std::fs::write(
        &admin_file,
        json!({"type": "secp256k1", "private_key": hex::encode(key(1).to_bytes())}).to_string(),
    )
    .expect("key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&admin_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (pa, pb) = (free_port(), free_port());
    let a_tcp = format!("/ip4/127.0.0.1/tcp/{pa}");
    let b_quic = format!("/ip4/127.0.0.1/udp/{pb}/quic-v1");

    let a = NodeProcess::start(
        &tmp.path().join("a"),
        &["--admin-key", admin_file.to_str().unwrap(), "--p2p-listen", &a_tcp],
    );
    submit(&a, 1, 10);
    submit(&a, 2, 11);

    let mut b = NodeProcess::start(&tmp.path().join("b"), &["--p2p-listen", &b_quic, "--peer", &a_tcp]);
    wait_same_ledger(&a, &b, "B joins over TCP");
    assert!(is_subscriber(&b, 11));

    // A transaction sent to B is ordered by A and comes back to B.
    let receipt = submit(&b, 3, 12);
    assert_eq!(receipt["height"], 3, "{receipt}");
    wait_same_ledger(&a, &b, "forwarded transaction");
    assert!(is_subscriber(&b, 12) && is_subscriber(&a, 12));

    // C knows only B, over QUIC.
    let c = NodeProcess::start(&tmp.path().join("c"), &["--peer", &b_quic]);
    wait_same_ledger(&a, &c, "C joins through B over QUIC");

    let b_id = status(&b).peer_id;
    assert!(!b_id.is_empty());
    assert!(status(&a).peers.iter().any(|p| p.peer_id == b_id), "A lists B as a peer");

    // B is killed; A goes on; B restarts with the same identity and catches up; C follows.
    b.kill();
    submit(&a, 4, 13);
    submit(&a, 5, 14);
    b.restart();
    wait_same_ledger(&a, &b, "B catches up after a restart");
    assert_eq!(status(&b).peer_id, b_id, "peer id is stable across restarts");
    wait_same_ledger(&a, &c, "C catches up through B");
    assert!(is_subscriber(&c, 14));
}
