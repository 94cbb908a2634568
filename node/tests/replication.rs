//! The storage network's rules with real nodes in this process (real store, index, ledger and
//! libp2p sockets on loopback; the stand-in embedder): documents reach their shards' owners, a
//! deletion reaches every copy but never a version uploaded after it, grants go to the newest
//! change, a node hands off what it does not own once the owners hold it, and a question gets the
//! same answer from every node.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use k256::ecdsa::VerifyingKey;
use prag_node::Node;
use prag_proto::api::QueryRequest;
use prag_testkit::fake::fake_embedder;
use prag_testkit::inproc::{TestNode, config, eventually, networked, register_storage};
use prag_testkit::{CLINIC_DOCS, CLINIC_QUESTIONS, key, public_hex};

/// `n` storage nodes on loopback, the first ordering the ledger and all registered; `shards`
/// shards of `replicas` copies per new collection.
async fn network(dir: &Path, n: usize, shards: u32, replicas: u32) -> Vec<TestNode> {
    let dirs: Vec<_> = (0..n).map(|i| dir.join(format!("n{i}"))).collect();
    let mut nodes: Vec<TestNode> = Vec::new();
    let mut first_addr = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let (mut c, addr) = networked(config(d), &first_addr);
        c.cluster.shards = shards;
        c.cluster.replicas = replicas;
        let node = TestNode::start(c, fake_embedder(1), (i == 0).then(|| key(1)).as_ref()).await;
        if i == 0 {
            first_addr.push(addr);
            for (j, d) in dirs.iter().enumerate() {
                register_storage(&node.node, &d.join("data"), 100 + j as u64).await;
            }
        }
        nodes.push(node);
    }
    let all: Vec<Arc<Node>> = nodes.iter().map(|t| t.node.clone()).collect();
    eventually(60, "every node to see every other admitted", || {
        all.iter().all(|n| {
            let s = n.status().detailed();
            s.cluster.as_ref().is_some_and(|c| c.admitted)
                && s.peers.iter().filter(|p| p.admitted).count() == all.len() - 1
        })
    })
    .await;
    nodes
}

/// The paths of the whole collection as `node` lists it to the owner (held there or on peers).
fn listed(node: &Node, collection: &str) -> Vec<String> {
    node.ingest().documents(&VerifyingKey::from(&key(2)), collection).unwrap().into_iter().map(|d| d.path).collect()
}

/// The documents `node` holds itself (not the network-wide listing).
fn held_here(node: &Node, collection: &str) -> u64 {
    node.collections().get(collection).map(|c| c.counts().0).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_reach_every_copy_newer_uploads_survive_them_and_the_newest_grant_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = network(tmp.path(), 2, 2, 2).await;
    let (a, b) = (nodes[0].node.clone(), nodes[1].node.clone());
    let owner = VerifyingKey::from(&key(2));
    a.collections().create("clinic", &owner).await.unwrap();
    for (path, text) in &CLINIC_DOCS[..3] {
        a.ingest().upload(&owner, "clinic", path, text.as_bytes().to_vec()).await.unwrap();
    }
    eventually(60, "B to hold every document (2 copies on 2 nodes)", || held_here(&b, "clinic") == 3).await;

    // Deleted on B: the tombstone reaches A, which drops its copy.
    let gone = CLINIC_DOCS[0].0;
    b.ingest().delete_document(&owner, "clinic", None, Some(gone)).await.unwrap();
    eventually(30, "A to drop the deleted document", || held_here(&a, "clinic") == 2).await;
    assert!(!listed(&a, "clinic").iter().any(|p| p == gone), "nor does it list it");
    // Uploaded again on A: a newer version than the tombstone, so it comes back everywhere.
    a.ingest().upload(&owner, "clinic", gone, b"Records are now kept for eleven years.".to_vec()).await.unwrap();
    eventually(30, "B to take the newer version", || held_here(&b, "clinic") == 3).await;
    assert!(listed(&b, "clinic").iter().any(|p| p == gone));
    let ask = QueryRequest { text: "how long are records kept".into(), k: 1, exact: true, ..Default::default() };
    let hit = b.retrieval().query(&owner, "clinic", ask).await.unwrap().hits.remove(0);
    assert!(hit.text.contains("eleven years"), "B serves the new version: {}", hit.text);

    // Grants: the newest change wins, whichever node made it.
    let subscriber = public_hex(&key(20));
    b.access().set_grant(&owner, "clinic", &subscriber, true).await.unwrap();
    eventually(30, "A to take B's grant", || {
        a.access().grants(&owner, "clinic").unwrap().subscribers.contains(&subscriber)
    })
    .await;
    a.access().set_grant(&owner, "clinic", &subscriber, false).await.unwrap();
    eventually(30, "B to take A's revocation", || b.access().grants(&owner, "clinic").unwrap().subscribers.is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_are_handed_off_to_their_owners_and_every_node_answers_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = network(tmp.path(), 3, 4, 1).await;
    let all: Vec<Arc<Node>> = nodes.iter().map(|t| t.node.clone()).collect();
    let owner = VerifyingKey::from(&key(2));
    all[0].collections().create("clinic", &owner).await.unwrap();
    for (path, text) in CLINIC_DOCS {
        all[0].ingest().upload(&owner, "clinic", path, text.as_bytes().to_vec()).await.unwrap();
    }
    // One copy of each shard: every document ends up on exactly its shard's owner, and the node
    // that took the upload keeps only what it owns. Every node must know all six documents in its
    // shard views first: a view built before the collection reached it is vacuously "held".
    let docs = CLINIC_DOCS.len() as u64;
    eventually(60, "every shard held by exactly its owner", || {
        let total: u64 = all.iter().map(|n| held_here(n, "clinic")).sum();
        total == docs
            && all.iter().all(|n| {
                let me = n.net().local_peer_id().unwrap().to_string();
                let shards = n.status().detailed().cluster.unwrap().shards;
                let clinic: Vec<_> = shards.iter().filter(|s| s.collection == "clinic").collect();
                clinic.len() == 4
                    && clinic.iter().map(|s| s.documents).sum::<u64>() == docs
                    && clinic.iter().all(|s| {
                        s.documents == 0
                            || (s.holders == s.owners
                                && s.documents_here == if s.owners.contains(&me) { s.documents } else { 0 })
                    })
            })
    })
    .await;
    // What the uploading node no longer holds, it handed off (counted once each).
    // (Polled: the counter is bumped just after the document goes.)
    let handed_off = docs - held_here(&all[0], "clinic");
    let line = format!("prag_documents_handed_off_total {handed_off}");
    eventually(10, "the uploading node to count what it handed off", || {
        all[0].status().prometheus().lines().any(|l| l == line)
    })
    .await;
    // Every node answers every question alike (exact search, merged across shards).
    for q in CLINIC_QUESTIONS {
        let ask = || QueryRequest { text: (*q).into(), k: 3, exact: true, ..Default::default() };
        let answers: Vec<Vec<(String, u32)>> = futures::future::join_all(all.iter().map(|n| {
            let n = n.clone();
            async move {
                let r = n.retrieval().query(&owner, "clinic", ask()).await.unwrap();
                assert!(!r.partial, "{q}: partial through a node");
                r.hits.into_iter().map(|h| (h.path, h.chunk)).collect()
            }
        }))
        .await;
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{q}: {answers:?}");
        assert_eq!(answers[0].len(), 3);
    }
}
