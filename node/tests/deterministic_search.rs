//! Deterministic retrieval, the ground of sampling consensus: the same committed question scored
//! over the same snapshot gives the same hits and the same score bits under different thread
//! counts, before and after the index is built, after a restart, and on the portable kernel path
//! (no SIMD) as on the fast one; and the snapshot root changes exactly when the content does.
//! (The stand-in embedder gives the vectors: this test is about scoring, not about the model.)
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use prag_testkit::fake::fake_embedder;
use prag_testkit::inproc::{TestNode, config};
use prag_testkit::requests::collection_with;
use prag_testkit::{CLINIC_DOCS, CLINIC_QUESTIONS, key};

type Answer = Vec<(String, u32, u32)>;

/// (doc, chunk, score bits) of every question's top 8, on `threads` threads.
fn answers(node: &TestNode, vectors: &[Vec<f32>], threads: usize, portable: bool) -> Vec<Answer> {
    let c = node.node.collections().get("clinic").expect("collection");
    let s = c.snapshot().expect("snapshot");
    vectors
        .iter()
        .map(|v| {
            s.search_with(&c, v, 8, threads, portable)
                .expect("search")
                .into_iter()
                .map(|h| (h.doc_id, h.chunk, h.score.to_bits()))
                .collect()
        })
        .collect()
}

fn root(node: &TestNode) -> [u8; 32] {
    node.node.collections().get("clinic").unwrap().snapshot().unwrap().root
}

#[test]
fn the_same_log_scores_the_same_bits_whatever_the_threads_index_restart_or_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let owner = key(5);
    // Many small documents, so ties and near-ties between chunks are likely.
    let extra: Vec<(String, String)> = (0..60)
        .map(|i| (format!("notes/n{i}.md"), format!("Note {i}. {}", CLINIC_QUESTIONS[i % CLINIC_QUESTIONS.len()])))
        .collect();
    let mut docs: Vec<(&str, &str)> = CLINIC_DOCS.to_vec();
    docs.extend(extra.iter().map(|(p, t)| (p.as_str(), t.as_str())));

    let node = rt.block_on(TestNode::start(config(tmp.path()), fake_embedder(1), None));
    let client = node.client(&owner);
    std::thread::scope(|s| s.spawn(|| collection_with(&client, "clinic", &docs)).join().unwrap());
    let questions: Vec<String> = (0..20).map(|i| format!("{} {i}", CLINIC_QUESTIONS[i % 5])).collect();
    let vectors = rt.block_on(node.node.embedder().embed_for("t", questions)).unwrap();
    let c = node.node.collections().get("clinic").unwrap();
    assert!(c.snapshot().unwrap().chunks() > 60);

    let reference = answers(&node, &vectors, 1, false);
    assert!(reference.iter().all(|a| a.len() == 8));
    for threads in [2, 3, 8] {
        assert_eq!(answers(&node, &vectors, threads, false), reference, "{threads} threads");
    }
    assert_eq!(answers(&node, &vectors, 1, true), reference, "the portable kernel path");
    assert_eq!(answers(&node, &vectors, 4, true), reference, "portable, 4 threads");
    let before = root(&node);
    c.build_index().unwrap();
    assert_eq!(answers(&node, &vectors, 1, false), reference, "after the index is built");
    assert_eq!(root(&node), before, "building the index is no change of content");
    drop(c);
    drop(node);

    // After a restart: the index rebuilt from the store, the snapshot from the ciphertext.
    let node = rt.block_on(TestNode::start(config(tmp.path()), fake_embedder(1), None));
    assert_eq!(root(&node), before, "the same content has the same root after a restart");
    assert_eq!(answers(&node, &vectors, 2, false), reference, "after a restart");

    // The root changes exactly when the content does.
    let client = node.client(&owner);
    std::thread::scope(|s| {
        s.spawn(|| {
            prag_testkit::rt().block_on(client.upload("clinic", "notes/new.md", b"A new note about parking.")).unwrap()
        })
        .join()
        .unwrap()
    });
    let after = root(&node);
    assert_ne!(after, before);
    assert_eq!(root(&node), after, "unchanged content, unchanged root");
}
