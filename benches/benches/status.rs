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
use prag_embedder::{DeviceSpec, Embedder, EmbedderConfig};
use prag_node::config::{AttestationMode, IndexConfig, NetConfig};
use prag_node::crypto::MasterKey;
use prag_node::store::{CollectionMeta, CollectionStore, DocumentHeader, NewChunk};
use prag_node::{Node, NodeConfig};
use prag_testkit::model_dir;
use rand::Rng;

const COLLECTIONS: usize = 4;
const DOCS_PER_COLLECTION: usize = 2_500;
const CHUNKS: usize = 4;

/// Writes the collections into `data` before the node opens it.
fn seed(data: &Path, owner: &VerifyingKey) {
    std::fs::create_dir_all(data.join("collections")).unwrap();
    let (master, _) = MasterKey::load_or_create(&data.join("master.key")).unwrap();
    let text: String = prag_benches::paragraphs(1, 12).join(" ");
    let mut rng = rand::thread_rng();
    for c in 0..COLLECTIONS {
        let meta = CollectionMeta {
            name: format!("archive-{c}"),
            owner: prag_proto::account::public_key_hex(owner),
            created_at: 0,
            shards: 4,
            replicas: 2,
            grants_version: 0,
            tombstones: Default::default(),
        };
        let store = CollectionStore::create(&master, &data.join("collections"), &meta).unwrap();
        for d in 0..DOCS_PER_COLLECTION {
            let vectors: Vec<Vec<f32>> = (0..CHUNKS)
                .map(|_| {
                    let v: Vec<f32> = (0..384).map(|_| rng.r#gen::<f32>() - 0.5).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(|x| x / n).collect()
                })
                .collect();
            let chunks: Vec<NewChunk<'_>> = vectors.iter().map(|v| NewChunk { text: &text, vector: v }).collect();
            let path = format!("records/{d}.md");
            let header = DocumentHeader {
                path: path.clone(),
                fingerprint: store.fingerprint(&path),
                chunks: CHUNKS as u32,
                created_at: 0,
                key_version: 1,
                version: 1,
            };
            store.write_document(&store.document_id(&path), &header, &chunks).unwrap();
        }
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
    // SAFETY: set before any embedder thread starts; criterion runs benches on this thread.
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let mut cfg = EmbedderConfig::new(model_dir());
    cfg.device = DeviceSpec::Cpu;
    let embedder = Embedder::load(cfg).expect("embedder");
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
