//! The ledger across two nodes in this process, over real libp2p sockets on loopback: the orderer
//! applies its transaction gate to a transaction forwarded by a peer exactly as to one it got
//! over HTTP, and a refusal reaches the client with the same status and code through either node.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use k256::ecdsa::VerifyingKey;
use prag_node::config::AttestationMode;
use prag_proto::api::ErrorBody;
use prag_testkit::fake::fake_embedder;
use prag_testkit::inproc::{TestNode, config, eventually, networked, tx};
use prag_testkit::{key, public_hex};
use serde_json::json;

/// POSTs `tx` to `node`'s `/v1/ledger/tx`: (status, code or "").
async fn submit(node: &TestNode, tx: &prag_proto::ledger::SignedTx) -> (u16, String) {
    let r = reqwest::Client::new().post(format!("{}/v1/ledger/tx", node.url)).json(tx).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str::<ErrorBody>(&text).map(|e| e.code).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_transaction_meets_the_orderers_gate_and_refusals_look_the_same_through_a_follower() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut c, orderer_addr) = networked(config(&tmp.path().join("a")), &[]);
    // The orderer accepts hardware reports only; the follower would accept development ones.
    c.access.attestation = AttestationMode::Hardware;
    let orderer = TestNode::start(c, fake_embedder(1), Some(&key(1))).await;
    let (c, _) = networked(config(&tmp.path().join("b")), &[orderer_addr]);
    let follower = TestNode::start(c, fake_embedder(1), None).await;
    let (o, f) = (orderer.node.clone(), follower.node.clone());
    eventually(30, "the follower to replicate the genesis", || f.ledger().height() == o.ledger().height()).await;
    assert!(o.ledger().is_orderer() && !f.ledger().is_orderer());

    // A development report, registered by the admin: the follower's own gate (dev) would let it
    // through; the orderer's (hardware) does not — and it is the orderer's that decides.
    let worker = key(50);
    let report = prag_node::attest::AttestationReport::development(&public_hex(&worker));
    let register = |n: u64| {
        tx(
            &key(1),
            n,
            json!({"register_worker": {"ip_address": "10.0.0.9", "payment_wallet":
                prag_proto::account::address(key(51).verifying_key()), "attestation_report": report,
                "worker_type": "llama", "signing_key": public_hex(&worker)}}),
        )
    };
    let direct = submit(&orderer, &register(1)).await;
    let forwarded = submit(&follower, &register(2)).await;
    assert_eq!(direct, (403, "attestation".into()));
    assert_eq!(forwarded, direct, "the forwarded registration met the orderer's gate");
    assert!(o.ledger().state().worker.workers.is_empty(), "nothing was registered");
    let operator = VerifyingKey::from(&key(99));
    let refused = o.access().audit_entries(&operator, 100).unwrap();
    assert_eq!(refused.iter().filter(|e| e.event == "register_refused").count(), 2, "both audited by the orderer");

    // A contract refusal: the same status and code at the orderer and through the follower.
    let by_stranger = |n: u64| tx(&key(7), n, json!({"register_subscriber": {"public_key": public_hex(&key(8))}}));
    let direct = submit(&orderer, &by_stranger(3)).await;
    assert_eq!(direct, (403, "forbidden".into()));
    assert_eq!(submit(&follower, &by_stranger(4)).await, direct);
    // A replay too (the orderer remembers the nonce, whichever node it came through).
    let ok = tx(&key(1), 5, json!({"register_subscriber": {"public_key": public_hex(&key(8))}}));
    assert_eq!(submit(&follower, &ok).await.0, 200, "a good transaction is forwarded and ordered");
    assert_eq!(submit(&orderer, &ok).await, (401, "replayed".into()));
    assert_eq!(submit(&follower, &ok).await, (401, "replayed".into()));
    eventually(30, "the follower to catch up", || f.ledger().state().subscription.is_active(&public_hex(&key(8))))
        .await;
}
