//! The storage network on loopback, nodes in this process over real libp2p TCP sockets:
//!
//! - `replication`: a node joins and pulls a 256 MiB collection from another — ciphertext pieces
//!   over the wire, written, then every chunk's text and vector opened to verify the file before
//!   it is committed and indexed. Timed from the joining node's start to its last document.
//! - `retrieval`: the same question to a node holding everything alone, and to a node of a
//!   3-node network (4 shards, 2 copies) that holds only some shards and asks a peer for the
//!   rest. The difference of the two is what distribution adds.
//! - `remote-search`: that node's search of an already embedded question (every shard, a peer
//!   asked for those it lacks), with the ledger idle and while the orderer commits 50 transactions
//!   a second (every node appends and syncs each one): p50 and p99 over 400 searches each.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k256::ecdsa::{SigningKey, VerifyingKey};
use prag_benches::{Seed, percentile};
use prag_embedder::Embedder;
use prag_node::config::{AttestationMode, ClusterConfig, IndexConfig, NetConfig};
use prag_node::{Node, NodeConfig};
use prag_proto::api::QueryRequest;
use prag_proto::ledger::SignedTx;
use prag_testkit::{free_port, key};
use serde_json::json;

const DOCS: usize = 128;
const CHUNKS: usize = 32;
const CHUNK_BYTES: usize = 64 << 10;

fn config(data: &Path, listen: &str, peers: &[String], cluster: ClusterConfig) -> NodeConfig {
    config_on(data, &[listen], peers, cluster)
}

fn config_on(data: &Path, listen: &[&str], peers: &[String], cluster: ClusterConfig) -> NodeConfig {
    let mut c = NodeConfig::new(data);
    c.index = IndexConfig::Embedded {
        dir: Some(Path::new("/dev/shm").join(format!(
            "prag-bench-net-{}-{}",
            std::process::id(),
            data.file_name().unwrap().to_string_lossy()
        ))),
    };
    c.chain_id = "prag-bench".into();
    c.access.attestation = AttestationMode::Dev;
    c.net = Some(NetConfig::new(
        listen.iter().map(|l| l.parse().unwrap()).collect(),
        peers.iter().map(|p| p.parse().unwrap()).collect(),
    ));
    c.cluster = cluster;
    c
}

/// The default storage-network settings, changed by `change`.
fn cluster(change: impl FnOnce(&mut ClusterConfig)) -> ClusterConfig {
    let mut c = NodeConfig::new("/").cluster;
    change(&mut c);
    c
}

/// Registers the node in `data` as a `prag-storage` worker (dev report) in `orderer`'s ledger.
fn register(rt: &tokio::runtime::Runtime, orderer: &Node, data: &Path, n: u64) {
    rt.block_on(prag_testkit::inproc::register_storage(orderer, data, n));
}

/// Writes `DOCS` documents of `CHUNKS` chunks of `CHUNK_BYTES` into a new collection of the node
/// in `data` (before it starts); returns the bytes written.
fn seed_collection(data: &Path, owner: &VerifyingKey) -> u64 {
    let text: String = prag_benches::paragraphs(2000, 4).join(" ").chars().take(CHUNK_BYTES).collect();
    Seed { name: "bulk", documents: DOCS, chunks_per_document: CHUNKS, text: &text, prefix: "bulk" }.write(data, owner)
}

fn replication(c: &mut Criterion, rt: &tokio::runtime::Runtime, embedder: &Embedder, tmp: &Path) {
    let owner = VerifyingKey::from(&key(5));
    let a_dir = tmp.join("repl-a");
    let bytes = seed_collection(&a_dir, &owner);
    let port = free_port();
    let a_tcp = format!("/ip4/127.0.0.1/tcp/{port}");
    let a_quic = format!("/ip4/127.0.0.1/udp/{port}/quic-v1");
    let fast = cluster(|c| {
        c.sync_interval = Duration::from_millis(50);
        c.transfer_rate = 0;
    });
    let a = rt
        .block_on(Node::open(config_on(&a_dir, &[&a_tcp, &a_quic], &[], fast.clone()), embedder.clone(), Some(&key(1))))
        .expect("node a");
    register(rt, &a, &a_dir, 0);
    eprintln!("replication: {DOCS} documents, {} MiB of ciphertext", bytes >> 20);

    let mut g = c.benchmark_group("replication");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    let mut n = 0u64;
    for (transport, a_addr, listen) in
        [("tcp", &a_tcp, "/ip4/127.0.0.1/tcp/0"), ("quic", &a_quic, "/ip4/127.0.0.1/udp/0/quic-v1")]
    {
        g.bench_function(format!("join-and-pull-256MiB-{transport}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let dir: PathBuf = tmp.join(format!("repl-b{n}"));
                    register(rt, &a, &dir, n);
                    let started = Instant::now();
                    let node = rt
                        .block_on(Node::open(
                            config(&dir, listen, std::slice::from_ref(a_addr), fast.clone()),
                            embedder.clone(),
                            None,
                        ))
                        .expect("node b");
                    loop {
                        let s = node.status().detailed().cluster.unwrap();
                        if s.documents_replicated as usize >= DOCS {
                            break;
                        }
                        assert!(started.elapsed() < Duration::from_secs(300), "replication stalled: {s:?}");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    total += started.elapsed();
                    drop(node);
                    let _ = std::fs::remove_dir_all(&dir);
                }
                total
            })
        });
    }
    g.finish();
}

async fn fill(node: &Arc<Node>, owner: &VerifyingKey) {
    node.collections().create("clinic", owner).await.expect("collection");
    for (path, text) in prag_node::sample::CORPUS {
        node.ingest().upload(owner, "clinic", path, text.as_bytes().to_vec()).await.expect("upload");
    }
}

fn retrieval(c: &mut Criterion, rt: &tokio::runtime::Runtime, embedder: &Embedder, tmp: &Path) {
    let owner = VerifyingKey::from(&key(5));
    let mut single_cfg = config(&tmp.join("single"), "/ip4/127.0.0.1/tcp/0", &[], cluster(|_| {}));
    single_cfg.net = None;
    let single = rt.block_on(Node::open(single_cfg, embedder.clone(), None)).expect("single");
    rt.block_on(fill(&single, &owner));

    let net = cluster(|c| c.shards = 8);
    let addrs: Vec<String> = (0..3).map(|_| format!("/ip4/127.0.0.1/tcp/{}", free_port())).collect();
    let dirs: Vec<PathBuf> = ["net-a", "net-b", "net-c"].iter().map(|d| tmp.join(d)).collect();
    let a = rt
        .block_on(Node::open(config(&dirs[0], &addrs[0], &[], net.clone()), embedder.clone(), Some(&key(1))))
        .unwrap();
    for (i, d) in dirs.iter().enumerate() {
        register(rt, &a, d, 1000 + i as u64);
    }
    let b =
        rt.block_on(Node::open(config(&dirs[1], &addrs[1], &addrs[..1], net.clone()), embedder.clone(), None)).unwrap();
    let cn =
        rt.block_on(Node::open(config(&dirs[2], &addrs[2], &addrs[..1], net.clone()), embedder.clone(), None)).unwrap();
    rt.block_on(fill(&a, &owner));
    // Settled: every shard with documents held by exactly its owners, as every node sees it.
    let started = Instant::now();
    let nodes = [&a, &b, &cn];
    let held: Vec<usize> = loop {
        let views: Vec<_> = nodes.iter().map(|n| n.status().detailed().cluster.unwrap()).collect();
        let settled = views.iter().all(|s| {
            !s.shards.is_empty()
                && s.shards.iter().all(|sh| {
                    let (mut h, mut o) = (sh.holders.clone(), sh.owners.clone());
                    h.sort();
                    o.sort();
                    o.len() == 2 && (sh.documents == 0 || h == o)
                })
        });
        if settled {
            break views
                .iter()
                .map(|s| s.shards.iter().filter(|sh| sh.documents > 0 && sh.documents_here == sh.documents).count())
                .collect();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "network did not settle: {views:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let with_docs = cn.status().detailed().cluster.unwrap().shards.iter().filter(|sh| sh.documents > 0).count();
    // Ask through the node that holds the fewest shards: it must reach a peer for the others.
    let (entry_idx, entry_held) = held.iter().copied().enumerate().min_by_key(|(_, h)| *h).unwrap();
    let entry = nodes[entry_idx];
    eprintln!(
        "retrieval: shards with documents: {with_docs}; held per node {held:?}; asking node {entry_idx} ({entry_held} held)"
    );
    assert!(entry_held < with_docs, "every node holds every shard; nothing to measure");
    let question =
        // Dense: what this benchmark has always measured (distribution's cost, not the fusion's).
        || QueryRequest {
            text: "How long do you keep a child's medical records?".into(),
            k: 5,
            exact: true,
            mode: prag_proto::api::SearchMode::Dense,
        };
    let want = rt.block_on(single.retrieval().query(&owner, "clinic", question())).unwrap();
    let got = rt.block_on(entry.retrieval().query(&owner, "clinic", question())).unwrap();
    assert_eq!(
        want.hits.iter().map(|h| (&h.path, h.chunk)).collect::<Vec<_>>(),
        got.hits.iter().map(|h| (&h.path, h.chunk)).collect::<Vec<_>>()
    );

    let mut g = c.benchmark_group("retrieval");
    g.sample_size(200);
    g.bench_function("single-node", |bch| {
        bch.iter(|| rt.block_on(single.retrieval().query(&owner, "clinic", question())).unwrap())
    });
    g.bench_function("3-nodes-via-partial-holder", |bch| {
        bch.iter(|| rt.block_on(entry.retrieval().query(&owner, "clinic", question())).unwrap())
    });
    g.finish();
    let s = entry.status().detailed().cluster.unwrap();
    eprintln!(
        "retrieval: the entry node asked peers {} times, remote search p50 ≤ {} ms, p99 ≤ {} ms (histogram bucket bounds)",
        s.remote_searches, s.remote_search_p50_ms, s.remote_search_p99_ms
    );
    let vector = rt.block_on(embedder.embed(vec![question().text])).unwrap().remove(0);
    remote_search_under_ledger_load(c, rt, &a, entry, &vector);
    drop((a, b, cn));
}

/// Commits `per_second` transactions a second on `orderer` until `stop` is set; returns how many.
fn ledger_load(
    rt: tokio::runtime::Handle,
    orderer: Arc<Node>,
    per_second: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let period = Duration::from_secs(1) / per_second;
        let mut next = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let subscriber = SigningKey::random(&mut rand::thread_rng());
            let tx = SignedTx::sign(
                &key(1),
                &format!("loadnonce{n:012}x{}", std::process::id()),
                prag_node::unix_now(),
                json!({"register_subscriber": {"public_key": prag_proto::account::public_key_hex(subscriber.verifying_key())}}),
            )
            .unwrap();
            rt.block_on(orderer.ledger().submit(tx)).expect("load transaction");
            n += 1;
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        n
    })
}

fn remote_search_under_ledger_load(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    orderer: &Arc<Node>,
    entry: &Arc<Node>,
    vector: &[f32],
) {
    let search = || {
        let found = rt.block_on(entry.retrieval().search_vector("clinic", vector.to_vec(), 5, true)).unwrap();
        assert!(found.missing_shards.is_empty() && !found.hits.is_empty());
    };
    let timed = |n: usize| -> Vec<Duration> {
        let mut out: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                search();
                t.elapsed()
            })
            .collect();
        out.sort();
        out
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for _ in 0..50 {
        search();
    }
    let quiet = timed(400);
    let mut g = c.benchmark_group("remote-search");
    g.sample_size(100);
    g.bench_function("ledger-idle", |bch| bch.iter(search));
    let stop = Arc::new(AtomicBool::new(false));
    let load = ledger_load(rt.handle().clone(), Arc::clone(orderer), 50, Arc::clone(&stop));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let loaded = timed(400);
    g.bench_function("ledger-50-tx-per-s", |bch| bch.iter(search));
    stop.store(true, Ordering::Relaxed);
    let committed = load.join().unwrap();
    g.finish();
    eprintln!(
        "remote-search: ledger idle p50 {:.3} ms p99 {:.3} ms; under load p50 {:.3} ms p99 {:.3} ms \
         ({committed} transactions committed in {:.1} s = {:.1}/s)",
        ms(percentile(&quiet, 0.5)),
        ms(percentile(&quiet, 0.99)),
        ms(percentile(&loaded, 0.5)),
        ms(percentile(&loaded, 0.99)),
        started.elapsed().as_secs_f64(),
        committed as f64 / started.elapsed().as_secs_f64()
    );
}

fn bench(c: &mut Criterion) {
    let (rt, embedder) = prag_benches::node_setup();
    let tmp = tempfile::tempdir().expect("tmp");
    retrieval(c, &rt, &embedder, tmp.path());
    replication(c, &rt, &embedder, tmp.path());
}

criterion_group!(benches, bench);
criterion_main!(benches);
