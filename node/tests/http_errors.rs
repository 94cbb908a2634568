//! The one error table, seen from outside: every kind has its status and code; the conditions the
//! node meets give those kinds, on plain routes and inside the owner's channel alike; every
//! refusal is counted once, under its code; an internal error tells the caller nothing of its
//! cause. A node in this process with the stand-in embedder: no model, no process.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use axum::response::IntoResponse;
use http_body_util::BodyExt;
use prag_node::{ClientError, Error, ErrorKind, NodeClient};
use prag_proto::api::{CreateCollectionRequest, ErrorBody, QueryRequest, WorkerQueryRequest};
use prag_testkit::fake::fake_embedder;
use prag_testkit::inproc::{TestNode, config};
use prag_testkit::requests::sealed_for;
use prag_testkit::{key, public_hex};

/// (status, code) of a refusal, or panics.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Refused { status, code, .. }) => (status, code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_answers_with_its_status_and_code_and_hides_internal_causes() {
    for &kind in ErrorKind::ALL {
        let resp = Error::new(kind, "the-reason").into_response();
        assert_eq!(resp.status().as_u16(), kind.http_status(), "{kind:?}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.code, kind.code());
        if kind.is_internal() {
            assert!(!body.error.contains("the-reason"), "an internal error's message stays in the log");
        } else {
            assert_eq!(body.error, "the-reason");
        }
    }
    let cause = std::io::Error::other("/srv/prag/collections/0a1b/docs/x.doc: No space left on device");
    let resp = Error::internal("cannot commit the document", cause).into_response();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("/srv"), "no server path reaches the caller");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conditions_a_node_meets_give_their_kinds_everywhere_and_each_is_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.limits.max_collections_per_key = 1;
    let node = TestNode::start(c, fake_embedder(1), None).await;
    let http = reqwest::Client::new();
    let (owner, stranger) = (key(2), key(3));
    let oc: NodeClient = node.client(&owner);
    let sc = node.client(&stranger);

    // Plain routes.
    let plain = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let body: ErrorBody = r.json().await.unwrap();
        (status, body.code)
    };
    let url = |p: &str| format!("{}{p}", node.url);
    assert_eq!(plain(http.get(url("/v2/nothing")).send().await.unwrap()).await, (404, "not_found".into()));
    assert_eq!(plain(http.post(url("/v1/sealed")).body("x").send().await.unwrap()).await, (400, "bad_channel".into()));
    let garbled = http.post(url("/v1/sealed")).header("x-prag-channel", "AAAA").body("x").send().await.unwrap();
    assert_eq!(plain(garbled).await, (400, "bad_channel".into()));
    assert_eq!(plain(http.get(url("/v1/audit")).send().await.unwrap()).await, (401, "unsigned".into()));
    assert_eq!(
        plain(http.post(url("/v1/ledger/tx")).body("{").send().await.unwrap()).await,
        (400, "bad_request".into())
    );
    let huge = http.post(url("/v1/ledger/tx")).body(vec![b'['; 2 << 20]).send().await.unwrap();
    assert_eq!(plain(huge).await, (413, "too_large".into()));
    // This node was started without an admin key: it has no ledger.
    let q = http.post(url("/v1/ledger/query")).body(r#"{"get_models":{}}"#).send().await.unwrap();
    assert_eq!(plain(q).await, (409, "no_ledger".into()));

    // Inside the owner's channel.
    let create = |name: &str| CreateCollectionRequest { name: name.into() };
    let _: serde_json::Value = oc.post("/v1/collections", &create("clinic")).await.expect("create");
    let r: Result<serde_json::Value, _> = oc.post("/v1/collections", &create("clinic")).await;
    assert_eq!(refusal(r), (409, "conflict".into()));
    let r: Result<serde_json::Value, _> = oc.post("/v1/collections", &create("second")).await;
    assert_eq!(refusal(r), (429, "quota".into()), "one collection per key here");
    let r: Result<serde_json::Value, _> = sc.post("/v1/collections", &create("bad name!")).await;
    assert_eq!(refusal(r), (400, "bad_request".into()));
    let ask = QueryRequest { text: "anything".into(), k: 3, exact: false, ..Default::default() };
    let r: Result<serde_json::Value, _> = oc.post("/v1/collections/nowhere/query", &ask).await;
    assert_eq!(refusal(r), (404, "not_found".into()));
    let r: Result<serde_json::Value, _> = sc.post("/v1/collections/clinic/query", &ask).await;
    assert_eq!(refusal(r), (403, "forbidden".into()));
    let r: Result<serde_json::Value, _> =
        oc.post("/v1/collections/clinic/query", &QueryRequest { k: 0, ..ask.clone() }).await;
    assert_eq!(refusal(r), (400, "bad_request".into()));
    let r: Result<serde_json::Value, _> = oc.get("/v1/status").await;
    assert_eq!(refusal(r), (403, "forbidden".into()), "the owner is not an operator");
    let worker = WorkerQueryRequest {
        collection: "clinic".into(),
        text: "anything".into(),
        k: 3,
        subscriber: public_hex(&key(4)),
        api_key: None,
        audience: node.node.node_id().to_string(),
        request_id: "r1".into(),
        ephemeral_public_key: hex::encode([7u8; 32]),
        stack: None,
        mode: None,
    };
    let r: Result<serde_json::Value, _> = sc.post("/v1/worker/query", &worker).await;
    assert_eq!(refusal(r), (403, "unregistered_worker".into()));
    let elsewhere = WorkerQueryRequest { audience: "another-node".into(), ..worker.clone() };
    let r: Result<serde_json::Value, _> = sc.post("/v1/worker/query", &elsewhere).await;
    assert_eq!(refusal(r), (401, "wrong_audience".into()), "the same code and status as the channel's own check");

    // Freshness and replay, signed by hand.
    let verified = oc.node().await.unwrap();
    let now = prag_node::unix_now();
    let stale = sealed_for(
        verified,
        &owner,
        "GET",
        "/v1/collections",
        b"",
        now - 300,
        "0ld0000000000000000000000000000a",
        |_| {},
    );
    let a = oc.send_sealed(&stale).await.unwrap();
    assert_eq!((a.status, a.code()), (401, "stale".to_string()));
    let fresh =
        sealed_for(verified, &owner, "GET", "/v1/collections", b"", now, "f4e5000000000000000000000000000b", |_| {});
    assert_eq!(oc.send_sealed(&fresh).await.unwrap().status, 200);
    let again = oc.send_sealed(&fresh).await.unwrap();
    assert_eq!((again.status, again.code()), (401, "replayed".to_string()));

    // Each refusal counted once, by its code.
    let refusals = node.node.metrics().refusals();
    for (code, n) in [
        ("not_found", 2),
        ("bad_channel", 2),
        ("unsigned", 1),
        ("bad_request", 3),
        ("too_large", 1),
        ("no_ledger", 1),
        ("conflict", 1),
        ("quota", 1),
        ("forbidden", 2),
        ("unregistered_worker", 1),
        ("wrong_audience", 1),
        ("stale", 1),
        ("replayed", 1),
    ] {
        assert_eq!(refusals.get(code).copied().unwrap_or(0), n, "{code}: {refusals:?}");
    }
    assert!(!refusals.contains_key("internal"));
    let metrics = http.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("prag_refusals_total{reason=\"quota\"} 1"), "{metrics}");
}
