//! `--index qdrant=URL`: the same collections in a real Qdrant server. Runs only when `QDRANT_URL`
//! (the server's gRPC address, e.g. http://127.0.0.1:6334) is set; says it was skipped otherwise.
//!
//! Shown: answers equal the embedded index's (exact search, same chunks, same scores); what the
//! server holds is ids and rotated vectors only (no payload, no vector near the plain embedding);
//! a restart re-serves without re-embedding and prunes points the store no longer has.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use prag_embedder::{DeviceSpec, Embedder, EmbedderConfig};
use prag_proto::api::{CreateCollectionRequest, NodeStatus, QueryRequest, QueryResponse, UploadResponse};
use qdrant_client::Qdrant;
use qdrant_client::qdrant::vector_output::Vector as OutVector;
use qdrant_client::qdrant::{PointStruct, ScrollPointsBuilder, UpsertPointsBuilder};

const CANARY: &str = "Canary record 9K: patient Ignatius Montalbán-Okafor, born 1974, was prescribed 25 mg \
                      of clozapine and reports vertigo after the April biopsy.";

/// The demo questions, and one the canary answers.
const CANARY_QUESTION: &str = "Which drug was Ignatius prescribed?";

fn qdrant_url() -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            // Written to stderr directly, not through eprintln!, so the test harness does not
            // capture it: the skip shows in every test log.
            use std::io::Write;
            let _ = std::io::stderr().write_all(
                b"SKIPPED: remote-index tests need a Qdrant server; set QDRANT_URL=http://HOST:6334 to run them\n",
            );
            None
        }
    }
}

fn ask(client: &prag_node::client::NodeClient, rt: &tokio::runtime::Runtime, q: &str) -> QueryResponse {
    rt.block_on(client.post(
        "/v1/collections/clinic/query",
        &QueryRequest { text: q.into(), k: 5, exact: true, ..Default::default() },
    ))
    .expect("query")
}

fn fill(client: &prag_node::client::NodeClient, rt: &tokio::runtime::Runtime) {
    let _: Option<prag_proto::api::CollectionInfo> = rt
        .block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "clinic".into() }))
        .expect("create");
    for (path, text) in CLINIC_DOCS.iter().chain([&("canary.txt", CANARY)]) {
        let r: UploadResponse = rt.block_on(client.upload("clinic", path, text.as_bytes())).expect("upload");
        assert_eq!(r.documents.len(), 1);
    }
}

async fn prag_collections(q: &Qdrant) -> std::collections::BTreeSet<String> {
    let list = q.list_collections().await.expect("list collections");
    list.collections.into_iter().map(|c| c.name).filter(|n| n.starts_with("prag-")).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn remote_index_answers_like_embedded_and_holds_only_rotated_vectors() {
    let Some(url) = qdrant_url() else { return };
    let rt = rt();
    let q = Qdrant::from_url(&url).skip_compatibility_check().build().expect("qdrant client");
    let before = rt.block_on(prag_collections(&q));

    let tmp = tempfile::tempdir().expect("tmp");
    let owner = key(1);
    let embedded = NodeProcess::start(&tmp.path().join("embedded"), &[]);
    let index_arg = format!("qdrant={url}");
    let mut remote = NodeProcess::start(&tmp.path().join("remote"), &["--index", &index_arg]);
    let (ce, cr) = (embedded.client(&owner), remote.client(&owner));
    fill(&ce, &rt);
    fill(&cr, &rt);

    // Same chunks, same order, same scores as the embedded engine (exact search on both).
    let compare = |cr: &prag_node::client::NodeClient| {
        for question in CLINIC_QUESTIONS.iter().chain([&CANARY_QUESTION]) {
            let (a, b) = (ask(&ce, &rt, question), ask(cr, &rt, question));
            let key = |r: &QueryResponse| r.hits.iter().map(|h| (h.path.clone(), h.chunk)).collect::<Vec<_>>();
            assert_eq!(key(&a), key(&b), "{question}");
            for (x, y) in a.hits.iter().zip(&b.hits) {
                assert!((x.score - y.score).abs() < 1e-4, "{question}: {} vs {}", x.score, y.score);
            }
        }
        assert_eq!(
            ask(cr, &rt, "Which drug was Ignatius prescribed?").hits[0].text.as_str(),
            format!("canary\n{CANARY}")
        );
    };
    compare(&cr);

    // What the server holds for the new collection: ids and rotated vectors, nothing else.
    let after = rt.block_on(prag_collections(&q));
    let created: Vec<&String> = after.difference(&before).collect();
    assert_eq!(created.len(), 1, "one new collection on the server: {created:?}");
    let name = created[0].clone();
    assert!(!name.contains("clinic"), "the collection's name must not reach the server");
    let mut cfg = EmbedderConfig::new(model_dir());
    cfg.device = DeviceSpec::Cpu;
    let embedder = Embedder::load(cfg).expect("embedder");
    let canary_vector = embedder.embed_blocking(vec![CANARY.to_string()]).expect("embed").remove(0);
    let points = rt
        .block_on(q.scroll(ScrollPointsBuilder::new(&name).limit(10_000).with_payload(true).with_vectors(true)))
        .expect("scroll")
        .result;
    let status: NodeStatus = remote.status();
    assert_eq!(points.len() as u64, status.chunks, "every chunk is a point on the server");
    let mut best = -1f32;
    for p in &points {
        assert!(p.payload.is_empty(), "points carry no payload");
        let vector = match p.vectors.as_ref().and_then(|v| v.get_vector()) {
            Some(OutVector::Dense(d)) => d.data,
            other => panic!("unexpected vector shape {other:?}"),
        };
        assert_eq!(vector.len(), canary_vector.len());
        best = best.max(cosine(&vector, &canary_vector));
    }
    assert!(best < 0.5, "a stored vector is close to the plain canary embedding (cos {best})");
    // Control: the canary's own query does find it, so the server does hold its rotated vector.
    assert_eq!(ask(&cr, &rt, CANARY).hits[0].path, "canary.txt");

    // A point the store does not know (as after a crash between commit and index update) is pruned
    // at restart; answers are unchanged and nothing is re-embedded.
    let stray = PointStruct::new(42u64, vec![0.05f32; canary_vector.len()], qdrant_client::Payload::new());
    rt.block_on(q.upsert_points(UpsertPointsBuilder::new(&name, vec![stray]).wait(true))).expect("stray");
    remote.restart();
    let cr = remote.client(&owner);
    let status: NodeStatus = remote.status();
    assert_eq!(status.embedder.texts, 0, "restart must not re-embed anything");
    assert!(status.index_backend.contains("Qdrant server"), "{}", status.index_backend);
    compare(&cr);
    let count = rt
        .block_on(q.scroll(ScrollPointsBuilder::new(&name).limit(10_000).with_payload(false).with_vectors(false)))
        .expect("scroll")
        .result;
    assert_eq!(count.len() as u64, status.chunks, "the stray point was pruned");
    assert!(!remote.log_text().contains("Ignatius"), "plaintext leaked into the log");
    rt.block_on(q.delete_collection(&name)).expect("clean up");
}

#[test]
fn unreachable_qdrant_is_a_clear_start_error() {
    // Runs without a server: a node pointed at a closed port must refuse to start and say why.
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prag"))
        .args(["node", "--data"])
        .arg(tmp.path().join("d"))
        .args(["--api", &format!("127.0.0.1:{}", free_port()), "--device", "cpu", "--model"])
        .arg(model_dir())
        .args(["--index", &format!("qdrant=http://127.0.0.1:{port}")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Qdrant server at http://127.0.0.1:") && err.contains("does not answer"), "{err}");
}
