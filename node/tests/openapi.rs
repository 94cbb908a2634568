//! The OpenAPI document is generated from the router's own registrations; this checks it against
//! the router as served: every documented operation is answered by a route (never the fallback's
//! "no such endpoint", never 405) — plain ones over HTTP, `sealed` ones through the owner's
//! channel — and every route a client uses is documented, the console's included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use prag_testkit::fake::fake_embedder;
use prag_testkit::inproc::{TestNode, config};
use prag_testkit::key;
use serde_json::Value;

/// Every (method, path, sealed) the document describes.
fn operations(doc: &Value) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if let Some(op) = item.get(method) {
                let sealed = op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == "sealed"));
                out.push((method.to_uppercase(), path.clone(), sealed));
            }
        }
        if item.get("x-sealed-get").is_some() {
            out.push(("GET".into(), path.clone(), true));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_exactly_what_the_router_serves() {
    let doc = serde_json::to_value(prag_node::api::openapi()).expect("json");
    let ops = operations(&doc);
    let documented = |m: &str, p: &str, sealed: bool| ops.iter().any(|(om, op, s)| om == m && op == p && *s == sealed);
    for (m, p) in [
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/attestation"),
        ("POST", "/v1/sealed"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/console"),
        ("GET", "/v1/console/events"),
        ("GET", "/v1/ledger/status"),
        ("GET", "/v1/ledger/entries"),
        ("POST", "/v1/ledger/tx"),
        ("POST", "/v1/ledger/query"),
    ] {
        assert!(documented(m, p, false), "{m} {p} is not documented");
    }
    for (m, p) in [
        ("GET", "/v1/collections"),
        ("POST", "/v1/collections"),
        ("GET", "/v1/collections/{name}/documents"),
        ("POST", "/v1/collections/{name}/documents"),
        ("POST", "/v1/collections/{name}/documents/delete"),
        ("POST", "/v1/collections/{name}/query"),
        ("GET", "/v1/collections/{name}/grants"),
        ("POST", "/v1/collections/{name}/grants"),
        ("POST", "/v1/collections/{name}/grants/revoke"),
        ("POST", "/v1/worker/query"),
        ("GET", "/v1/worker/usage"),
        ("GET", "/v1/status"),
    ] {
        assert!(documented(m, p, true), "sealed {m} {p} is not documented");
    }
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "operation ids are unique: {ids:?}");
    let upload = doc["paths"]["/v1/collections/{name}/documents"]["post"]["description"].as_str().unwrap_or("");
    assert!(upload.contains(prag_node::extract::SUPPORTED), "the upload names the supported types: {upload}");
    for schema in ["ConsoleFeed", "NodeStatus", "ErrorBody", "SignedTx", "Receipt", "WorkerAnswer", "SealedAnswer"] {
        assert!(doc["components"]["schemas"].get(schema).is_some(), "schema {schema} is missing");
    }

    let tmp = tempfile::tempdir().unwrap();
    let node = TestNode::start(config(tmp.path()), fake_embedder(1), None).await;
    let http = reqwest::Client::new();
    let client = node.client(&key(99));
    for (method, path, sealed) in &ops {
        let concrete = path.replace("{name}", "clinic");
        let concrete = if concrete.ends_with("/documents") && method == "POST" {
            format!("{concrete}?path=a.txt")
        } else {
            concrete
        };
        let (status, body) = if *sealed {
            let a = client.request(method, &concrete, Some("application/json"), b"{}").await.expect("sealed request");
            (a.status, String::from_utf8_lossy(&a.body).into_owned())
        } else if *path == "/v1/console/events" {
            // A stream: only its first answer matters.
            let r = http.get(format!("{}{concrete}", node.url)).send().await.expect("request");
            (r.status().as_u16(), String::new())
        } else {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = http.request(m, format!("{}{concrete}", node.url)).body("{}").send().await.expect("request");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        };
        assert_ne!(status, 405, "{method} {path}: the router has no such method here");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} (sealed: {sealed}) fell through to the fallback: {body}"
        );
    }
    // And the fallback does answer what is not there, so the checks above could fail.
    let a = client.request("GET", "/v1/collections/clinic/nothing", None, b"").await.unwrap();
    assert!(String::from_utf8_lossy(&a.body).contains("no such endpoint"));
    let served: Value = http.get(format!("{}/v1/openapi.json", node.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, doc, "the served document is the generated one");
}
