//! Attacks that need a restart, a kill or the wire: a name taken over after a restart, a JSON-lines
//! upload half-committed by a SIGKILL, a request replayed across a restart, the index's plain
//! vectors left behind by a killed node, and an owner's traffic read off the loopback.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use prag_proto::api::{CreateCollectionRequest, DocumentInfo, QueryRequest, QueryResponse};

#[test]
fn of_eight_keys_creating_one_name_one_owns_it_and_keeps_it_across_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let rt = rt();
    let keys: Vec<_> = (40..48).map(key).collect();
    let clients: Vec<_> = keys.iter().map(|k| node.client(k)).collect();
    let create = CreateCollectionRequest { name: "shared".into() };
    // Every client verifies the node first, so the creates below leave together.
    for c in &clients {
        rt.block_on(c.node()).expect("node");
    }
    let results = rt.block_on(futures::future::join_all(
        clients.iter().map(|c| c.post::<_, serde_json::Value>("/v1/collections", &create)),
    ));
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        let e = format!("{:#}", r.as_ref().expect_err("refused"));
        assert!(e.contains("409 conflict"), "{e}");
    }
    let owner = winners[0];
    rt.block_on(clients[owner].upload(
        "shared",
        "note.txt",
        b"The night pharmacist is on call until six in the morning.",
    ))
    .expect("upload");
    let dirs = || -> Vec<String> {
        std::fs::read_dir(data.join("collections"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "names")
            .collect()
    };
    assert_eq!(dirs().len(), 1, "losing creators left directories: {:?}", dirs());

    node.restart();
    let ask = |i: usize| -> Result<QueryResponse, prag_node::ClientError> {
        rt.block_on(node.client(&keys[i]).post(
            "/v1/collections/shared/query",
            &QueryRequest { text: "Who is on call at night?".into(), k: 1, exact: false, ..Default::default() },
        ))
    };
    assert_eq!(ask(owner).expect("the owner still owns it").hits.len(), 1);
    for i in (0..keys.len()).filter(|i| *i != owner) {
        let e = format!("{:#}", ask(i).expect_err("a refused creator"));
        assert!(e.contains("403 forbidden"), "{e}");
    }
    assert_eq!(dirs().len(), 1);
}

/// A JSON-lines file of `rows` rows, each a short distinct record.
fn rows_file(round: usize, rows: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..rows {
        out.push_str(&serde_json::json!({
            "id": format!("r{i}"),
            "text": format!("Round {round} row {i}: patient in bed {} of ward {} was moved to the day unit after the \
                             morning round; the transfer form was signed by the charge nurse at {}:{:02}.",
                            i % 30, i % 7, 7 + i % 12, (i * 7) % 60),
        })
        .to_string());
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn a_json_lines_upload_is_all_or_nothing_across_sigkill() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let owner = key(50);
    let _: serde_json::Value = rt()
        .block_on(node.client(&owner).post("/v1/collections", &CreateCollectionRequest { name: "wards".into() }))
        .expect("create");
    const ROWS: usize = 150;
    // Kill at several moments of an upload; what survives of each file is all of it or none.
    for (round, kill_after_ms) in [300u64, 900, 1600, 2600].into_iter().enumerate() {
        let url = node.url.clone();
        let client_key = owner.clone();
        let uploader = std::thread::spawn(move || {
            let client =
                prag_node::client::NodeClient::new(&url, client_key, prag_node::channel::NodeTrust::development())
                    .expect("client");
            let _ = rt().block_on(client.upload("wards", &format!("rows-{round}.jsonl"), &rows_file(round, ROWS)));
        });
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        node.restart();
        let _ = uploader.join();
        let docs: Vec<DocumentInfo> =
            rt().block_on(node.client(&owner).get("/v1/collections/wards/documents")).expect("docs");
        for r in 0..=round {
            let n = docs.iter().filter(|d| d.path.starts_with(&format!("rows-{r}.jsonl#"))).count();
            assert!(n == 0 || n == ROWS, "round {r}: {n} of {ROWS} rows of one upload survived a SIGKILL");
            eprintln!("jsonl: killed after {kill_after_ms} ms: rows-{r}.jsonl has {n} rows");
        }
    }
    // Uninterrupted, every row is there.
    let resp =
        rt().block_on(node.client(&owner).upload("wards", "rows-final.jsonl", &rows_file(99, ROWS))).expect("upload");
    assert_eq!(resp.documents.len(), ROWS);
}

#[test]
fn a_request_captured_before_a_restart_is_refused_after_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let owner = key(51);
    let client = node.client(&owner);
    collection_with(&client, "notes", &[("a.txt", "The lift to the fourth floor is out of service on Sundays.")]);
    let body = serde_json::to_vec(&QueryRequest {
        text: "Is the lift working?".into(),
        k: 1,
        exact: false,
        ..Default::default()
    })
    .expect("json");
    let captured = sealed_request(
        &client,
        "POST",
        "/v1/collections/notes/query",
        &body,
        prag_node::unix_now(),
        "be40000000000000000000000000000a",
        |_| {},
    );
    assert_eq!(send_sealed(&client, &captured).status, 200);
    // The restarted node has forgotten the nonces it saw; the timestamp is still fresh.
    std::thread::sleep(Duration::from_millis(1100));
    node.restart();
    let client = node.client(&owner);
    let a = send_sealed(&client, &captured);
    assert_eq!((a.status, a.code()), (401, "stale".to_string()), "{}", String::from_utf8_lossy(&a.body));
}

#[test]
fn a_killed_node_leaves_no_plain_index_files_behind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let owner = key(52);
    let client = node.client(&owner);
    let _: serde_json::Value =
        rt().block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "idx".into() })).expect("create");
    rt().block_on(client.upload("idx", "a.txt", b"Vectors of this sentence live in the index's plain files."))
        .expect("up");
    let pid = node.child.id();
    let dir = std::fs::read_dir("/dev/shm")
        .expect("/dev/shm")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with("prag-index-") && n.to_string_lossy().ends_with(&format!("-{pid}"))
            })
        })
        .expect("the node's index directory");
    assert!(dir.is_dir());
    node.kill(); // SIGKILL: the node itself cleans nothing
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "{} is still there after the node was killed", dir.display());
}

/// A loopback TCP proxy that records every byte in both directions.
fn recording_proxy(target: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else { continue };
            for (mut from, mut to) in
                [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
            {
                let record = Arc::clone(&record);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn an_owners_upload_and_query_cross_the_wire_sealed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let node = NodeProcess::start(&data, &[]);
    let (proxy, seen) = recording_proxy(node.url.trim_start_matches("http://").to_string());
    let owner = key(53);
    let client =
        prag_node::client::NodeClient::new(&proxy, owner.clone(), prag_node::channel::NodeTrust::development())
            .expect("client");
    let rt = rt();
    let canary = "Canary 4K: Bartholomew Quennell-Asante, admitted 3 March, takes 750 mg of levetiracetam twice daily.";
    let _: serde_json::Value = rt
        .block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "wardrecords".into() }))
        .expect("create");
    rt.block_on(client.upload("wardrecords", "patients/quennell.txt", canary.as_bytes())).expect("upload");
    let resp: QueryResponse = rt
        .block_on(client.post(
            "/v1/collections/wardrecords/query",
            &QueryRequest {
                text: "Which anticonvulsant does Bartholomew take?".into(),
                k: 1,
                exact: false,
                ..Default::default()
            },
        ))
        .expect("query");
    assert_eq!(chunk_body(&resp.hits[0].text), canary, "the answer came back whole");
    let wire = seen.lock().expect("lock").clone();
    assert!(wire.len() > canary.len(), "the proxy saw the traffic");
    for needle in ["Quennell", "levetiracetam", "anticonvulsant", "wardrecords", "patients/quennell", "Bartholomew"] {
        assert!(!wire.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle:?} crossed the wire in clear");
    }
    // The capture does see what is sent in clear (a public ledger query carrying the word).
    let _ = rt.block_on(client.public::<_, serde_json::Value>(
        "POST",
        "/v1/ledger/query",
        Some(&serde_json::json!({"levetiracetam": {}})),
    ));
    let wire = seen.lock().expect("lock").clone();
    assert!(wire.windows(13).any(|w| w == b"levetiracetam"), "the capture works");
}
