//! What the node reports about itself when it holds 10,000 documents in 4 collections: the detailed
//! status (`GET /v1/status` for operators), the Prometheus text (`GET /metrics`) and the console's
//! snapshot (`GET /v1/console`, and every second per open console). The node runs with its peer
//! network on (loopback, no peers), so the storage network's part of the status is built too.
//!
//! The documents are written through the store's own API before the node starts (4 chunks each,
//! random unit vectors): what is measured never looks at what the vectors mean.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::{SigningKey, VerifyingKey};
use prag_benches::Seed;
use prag_node::config::{AttestationMode, IndexConfig, NetConfig};
use prag_node::{Node, NodeConfig};

const COLLECTIONS: usize = 4;
const DOCS_PER_COLLECTION: usize = 2_500;
const CHUNKS: usize = 4;

/// Writes the collections into `data` before the node opens it: 4 chunks a document of about 12
/// sentences each.
fn seed(data: &Path, owner: &VerifyingKey) {
    let text: String = prag_benches::paragraphs(1, 12).join(" ");
    for c in 0..COLLECTIONS {
        let name = format!("archive-{c}");
        let seed = Seed {
            name: &name,
            documents: DOCS_PER_COLLECTION,
            chunks_per_document: CHUNKS,
            text: &text,
            prefix: "records",
        };
        seed.write(data, owner);
    }
}

fn config(data: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(data);
    c.index = IndexConfig::Embedded { dir: Some(data.with_extension("index")) };
    c.chain_id = "prag-bench".into();
    c.access.attestation = AttestationMode::Dev;
    c.net = Some(NetConfig::new(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()], vec![]));
    c
}

fn bench(c: &mut Criterion) {
    let (rt, embedder) = prag_benches::node_setup();
    // Memory-backed, so seeding 10,000 documents does not wait for 10,000 disk syncs.
    let tmp = tempfile::Builder::new().prefix("prag-bench-status").tempdir_in("/dev/shm").expect("tmp");
    let data = tmp.path().join("node");
    let owner = VerifyingKey::from(&SigningKey::from_slice(&[5; 32]).unwrap());
    let t = Instant::now();
    seed(&data, &owner);
    eprintln!("seeded {} documents in {:.1} s", COLLECTIONS * DOCS_PER_COLLECTION, t.elapsed().as_secs_f64());
    let node = rt.block_on(Node::open(config(&data), embedder, Some(&SigningKey::from_slice(&[1; 32]).unwrap())));
    let node = node.expect("node");
    // Let the background optimizer finish, so it does not compete with what is measured.
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let indexed: u64 = node.status().detailed().collections.iter().map(|c| c.indexed_points).sum();
        if indexed == last {
            break;
        }
        last = indexed;
    }
    let s = node.status().detailed();
    assert_eq!(s.documents as usize, COLLECTIONS * DOCS_PER_COLLECTION);
    eprintln!("node open: {} documents, {} chunks, {} shards in status", s.documents, s.chunks, {
        s.cluster.as_ref().map_or(0, |c| c.shards.len())
    });

    let mut g = c.benchmark_group("status-10k-documents");
    g.sample_size(50);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("v1-status", |b| b.iter(|| node.status().detailed()));
    g.bench_function("metrics", |b| b.iter(|| node.status().prometheus()));
    g.bench_function("console-snapshot", |b| b.iter(|| node.status().console()));
    g.finish();
    drop(node);
}

criterion_group!(benches, bench);
criterion_main!(benches);
