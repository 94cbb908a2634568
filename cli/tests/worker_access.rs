//! The attested-worker retrieval path, as a table: for each single failed condition the request is
//! refused with that reason and no chunk text; with every condition met the answer holds the
//! expected chunks and opens only with the request's ephemeral key.
//!
//! Workers are registered in the ledger before the node starts (as by an earlier orderer, or
//! before a policy change), so that workers the registration gate would now refuse (a malformed
//! report, a report bound to another key) exist: the node judges every request on its own.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use k256::ecdsa::SigningKey;
use k256::ecdsa::signature::Signer;
use prag_node::LedgerService;
use prag_node::client::WorkerQuery;
use prag_proto::account::{address, public_key_hex};
use prag_proto::api::{
    AuditEntry, CreateCollectionRequest, GrantRequest, GrantsResponse, NodeStatus, SealedAnswer, UploadResponse,
    WorkerAnswer, WorkerQueryRequest,
};
use prag_proto::ledger::SignedTx;
use serde_json::json;

const DOCS: &[(&str, &str)] = &[
    ("policies/retention.md", include_str!("../../node/assets/demo/records-retention.md")),
    ("leaflets/mri.md", include_str!("../../node/assets/demo/mri-preparation.md")),
    ("leaflets/heart.md", include_str!("../../node/assets/demo/discharge-advice.md")),
];
const QUESTION: &str = "Can I wear my earrings in the scanner?";
const EXPECTED: &str = "leaflets/mri.md";

fn vk(k: &SigningKey) -> String {
    public_key_hex(k.verifying_key())
}

fn dev_report(k: &SigningKey) -> String {
    prag_node::attest::AttestationReport::development(&vk(k))
}

struct Tx<'a> {
    ledger: &'a LedgerService,
    rt: &'a tokio::runtime::Runtime,
    n: std::cell::Cell<u32>,
}

impl Tx<'_> {
    fn run(&self, key: &SigningKey, msg: serde_json::Value) -> Option<serde_json::Value> {
        self.n.set(self.n.get() + 1);
        let tx =
            SignedTx::sign(key, &format!("testnonce{:010}", self.n.get()), prag_node::unix_now(), msg).expect("sign");
        self.rt.block_on(self.ledger.submit(tx)).unwrap_or_else(|e| panic!("tx refused: {e}")).answer
    }

    fn register(&self, admin: &SigningKey, ip: &str, wallet: &SigningKey, report: String, signer: &SigningKey) {
        self.run(
            admin,
            json!({"register_worker": {"ip_address": ip, "payment_wallet": address(wallet.verifying_key()),
                "attestation_report": report, "worker_type": "llama", "signing_key": vk(signer)}}),
        );
    }

    fn liveliness(&self, worker: &SigningKey, ip: &str) {
        let answer = self.run(worker, json!({"get_liveliness_challenge": {}})).expect("challenge");
        let challenge = answer["challenge"].as_str().expect("challenge").to_string();
        let sig: k256::ecdsa::Signature =
            worker.sign(prag_proto::contracts::worker::liveliness_message(ip, &challenge).as_bytes());
        self.run(
            worker,
            json!({"report_liveliness": {"ip_address": ip, "challenge": challenge, "signature": hex::encode(sig.to_bytes())}}),
        );
    }
}

#[test]
fn every_single_failed_condition_is_refused_with_its_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "min_tcb_status = \"UpToDate\"\nmax_report_age_secs = 86400\n").expect("policy");

    let (admin, owner, wallet) = (key(1), key(2), key(3));
    let (w_good, w_unreg, w_bad, w_unbound, w_stale, stranger) = (key(10), key(11), key(12), key(13), key(14), key(15));
    let (s_active, s_inactive, s_key, s_revoked, s_nogrant) = (key(20), key(21), key(22), key(23), key(24));
    let (good_api_key, revoked_api_key) = ("sk-test-live-key-0123456789", "sk-test-revoked-key-0123456789");

    // The contracts' state, written by the orderer before this node starts.
    {
        let rt = rt();
        let ledger = LedgerService::open_ungated(&data, Some(&admin), "prag-test").expect("ledger");
        let tx = Tx { ledger: &ledger, rt: &rt, n: Default::default() };
        tx.run(&admin, json!({"register_subscriber": {"public_key": vk(&s_active)}}));
        tx.run(&admin, json!({"register_subscriber": {"public_key": vk(&s_nogrant)}}));
        tx.run(&admin, json!({"add_api_key": {"api_key": good_api_key}}));
        tx.run(&admin, json!({"add_api_key": {"api_key": revoked_api_key}}));
        tx.run(&admin, json!({"revoke_api_key": {"api_key": revoked_api_key}}));
        tx.register(&admin, "10.0.0.1", &wallet, dev_report(&w_good), &w_good);
        let malformed = json!({"kind": "dev", "notice": "trust me", "signing_key": vk(&w_bad)}).to_string();
        tx.register(&admin, "10.0.0.2", &wallet, malformed, &w_bad);
        tx.register(&admin, "10.0.0.3", &wallet, dev_report(&stranger), &w_unbound);
        tx.register(&admin, "10.0.0.4", &wallet, dev_report(&w_stale), &w_stale);
        for (k, ip) in [(&w_good, "10.0.0.1"), (&w_bad, "10.0.0.2"), (&w_unbound, "10.0.0.3")] {
            tx.liveliness(k, ip);
        }
    }

    let policy_arg = policy.to_str().expect("utf8").to_string();
    let node =
        NodeProcess::start(&data, &["--attestation", "dev", "--policy", &policy_arg, "--max-liveliness-age", "600"]);
    assert!(node.log_text().contains("ATTESTATION DEVELOPMENT MODE"), "dev mode is announced loudly");
    let rt = rt();
    let oc = node.client(&owner);
    let status: NodeStatus = node.status();
    assert_eq!(status.attestation.mode, "dev");
    assert_eq!((status.attestation.workers_accepted, status.attestation.workers_refused), (2, 2));
    let audience = status.node_id.clone();

    let _: Option<prag_proto::api::CollectionInfo> =
        rt.block_on(oc.post("/v1/collections", &CreateCollectionRequest { name: "clinic".into() })).expect("create");
    for (path, text) in DOCS {
        let _: UploadResponse = rt.block_on(oc.upload("clinic", path, text.as_bytes())).expect("upload");
    }
    for s in [&s_active, &s_inactive, &s_key, &s_revoked] {
        let g: GrantsResponse =
            rt.block_on(oc.post("/v1/collections/clinic/grants", &GrantRequest { subscriber: vk(s) })).expect("grant");
        assert!(g.subscribers.contains(&vk(s)));
    }
    // Only the owner grants.
    let err = rt
        .block_on(
            node.client(&stranger).post::<_, GrantsResponse>(
                "/v1/collections/clinic/grants",
                &GrantRequest { subscriber: vk(&s_nogrant) },
            ),
        )
        .unwrap_err();
    assert!(err.to_string().contains("owner"), "{err}");

    let query = |subscriber: &SigningKey, api_key: Option<&str>| WorkerQuery {
        collection: "clinic".into(),
        text: QUESTION.into(),
        k: 3,
        subscriber: vk(subscriber),
        api_key: api_key.map(str::to_string),
        stack: None,
    };
    let ask = |worker: &SigningKey, q: &WorkerQuery, aud: &str| -> Result<WorkerAnswer, String> {
        rt.block_on(node.client(worker).worker_query(aud, q)).map_err(|e| format!("{e:#}"))
    };
    let chunk_words = ["earrings", "scanner", "stent", "retention"];
    let refused = |result: Result<WorkerAnswer, String>, code: &str| {
        let err = result.expect_err(&format!("expected refusal {code}"));
        assert!(err.contains(&format!(" {code}): ")), "expected {code}, got: {err}");
        for w in chunk_words {
            assert!(!err.to_lowercase().contains(w), "a refusal carried chunk text: {err}");
        }
    };

    // All conditions met, by subscription and by API key.
    for q in [query(&s_active, None), query(&s_key, Some(good_api_key))] {
        let a = ask(&w_good, &q, &audience).expect("served");
        assert_eq!(a.hits.first().map(|h| h.path.as_str()), Some(EXPECTED), "{:?}", a.hits);
        assert!(a.hits[0].text.contains("earring") || a.hits[0].text.to_lowercase().contains("jewel"));
    }

    // One failed condition at a time.
    refused(ask(&w_unreg, &query(&s_active, None), &audience), "unregistered_worker");
    refused(ask(&w_bad, &query(&s_active, None), &audience), "attestation");
    refused(ask(&w_unbound, &query(&s_active, None), &audience), "unbound_key");
    refused(ask(&w_stale, &query(&s_active, None), &audience), "stale_liveliness");
    refused(ask(&w_good, &query(&s_inactive, None), &audience), "inactive_subscriber");
    refused(ask(&w_good, &query(&s_revoked, Some(revoked_api_key)), &audience), "revoked_api_key");
    refused(ask(&w_good, &query(&s_nogrant, None), &audience), "no_grant");
    refused(ask(&w_good, &query(&s_active, None), "another-node"), "wrong_audience");

    // Freshness and replay, with hand-made signature headers.
    let ephemeral = prag_node::sealed::EphemeralKey::generate().expect("x25519");
    let body = serde_json::to_vec(&WorkerQueryRequest {
        collection: "clinic".into(),
        text: QUESTION.into(),
        k: 3,
        subscriber: vk(&s_active),
        api_key: None,
        audience: audience.clone(),
        request_id: "req-raw-1".into(),
        ephemeral_public_key: ephemeral.public_hex(),
        stack: None,
        mode: None,
    })
    .expect("json");
    let now = prag_node::unix_now();
    let wc = node.client(&w_good);
    let stale =
        sealed_request(&wc, "POST", "/v1/worker/query", &body, now - 120, "5a1e00000000000000000000000000a1", |_| {});
    let a = send_sealed(&wc, &stale);
    assert_eq!((a.status, a.code()), (401, "stale".to_string()));
    let fresh = sealed_request(&wc, "POST", "/v1/worker/query", &body, now, "4e9a00000000000000000000000000b2", |_| {});
    let a = send_sealed(&wc, &fresh);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let first = String::from_utf8_lossy(&a.body).into_owned();
    let sealed: SealedAnswer = serde_json::from_str(&first).expect("sealed");
    for w in chunk_words {
        assert!(!first.to_lowercase().contains(w), "plaintext in the answer");
    }
    // Only the request's ephemeral key opens it.
    let other = prag_node::sealed::EphemeralKey::generate().expect("x25519");
    assert!(other.open(&sealed, &audience, "req-raw-1").is_err());
    let plain = ephemeral.open(&sealed, &audience, "req-raw-1").expect("opens");
    let answer: WorkerAnswer = serde_json::from_slice(&plain).expect("answer");
    assert_eq!(answer.hits[0].path, EXPECTED);
    // The same request again, byte for byte, and re-spelled (its key in upper case): refused,
    // neither served nor metered a second time.
    let a = send_sealed(&wc, &fresh);
    assert_eq!((a.status, a.code()), (401, "replayed".to_string()));
    let respelled =
        sealed_request(&wc, "POST", "/v1/worker/query", &body, now, "4e9a00000000000000000000000000b2", |h| {
            h.auth.pubkey = h.auth.pubkey.to_uppercase();
        });
    let a = send_sealed(&wc, &respelled);
    assert_eq!((a.status, a.code()), (401, "replayed".to_string()));

    // A policy change re-judges registered workers: reports older than 1 s are now refused.
    std::fs::write(&policy, "max_report_age_secs = 1\n").expect("policy");
    std::thread::sleep(std::time::Duration::from_secs(5));
    refused(ask(&w_good, &query(&s_active, None), &audience), "attestation");
    assert!(node.log_text().contains("attestation policy changed"));

    // Metering, refusal metrics, and the audit log (operators only, no request text).
    let status: NodeStatus = node.status();
    let usage = status.worker_usage.iter().find(|u| u.subscriber == vk(&s_active)).expect("usage");
    assert_eq!((usage.worker.as_str(), usage.requests), ("10.0.0.1", 2));
    assert!(usage.chunks >= 2 && usage.tokens > 50, "{usage:?}");
    for reason in [
        "unregistered_worker",
        "attestation",
        "unbound_key",
        "stale_liveliness",
        "inactive_subscriber",
        "revoked_api_key",
        "no_grant",
        "wrong_audience",
        "stale",
        "replayed",
    ] {
        assert!(status.refusals.get(reason).copied().unwrap_or(0) >= 1, "refusal {reason} not counted");
    }
    let metrics = rt.block_on(async { reqwest::get(format!("{}/metrics", node.url)).await?.text().await }).expect("m");
    assert!(metrics.contains("prag_refusals_total{reason=\"no_grant\"} 1"));
    assert!(metrics.contains("prag_worker_queries_total 3"), "{metrics}");
    let audit: Vec<AuditEntry> = rt.block_on(node.client(&admin).get("/v1/audit?limit=100")).expect("audit");
    assert!(audit.iter().any(|e| e.event == "refused" && e.reason == "no_grant" && e.worker == "10.0.0.1"));
    assert!(audit.iter().any(|e| e.event == "served" && e.subscriber == vk(&s_key)));
    assert!(audit.iter().any(|e| e.event == "grant" && e.actor == vk(&owner)));
    let audit_text = serde_json::to_string(&audit).expect("json");
    assert!(!audit_text.contains("earrings"), "the audit log holds no request text");
    assert!(rt.block_on(oc.get::<Vec<AuditEntry>>("/v1/audit")).is_err(), "the owner is not an operator");
    let raw_audit = std::fs::read(data.join("audit.log")).expect("audit file");
    assert!(!raw_audit.windows(6).any(|w| w == b"clinic"), "the audit file is sealed");
}
