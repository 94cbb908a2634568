//! End-to-end ingest (extract, chunk, embed, seal, commit, index) against embedding alone, on the
//! same chunk texts: how much of the embedder's throughput reaches the store.
//! Uploads run 4 in flight, as `prag upload` sends them.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prag_node::config::IndexConfig;
use prag_node::{Node, NodeConfig};

const DOCS: usize = 32;

fn document(round: u64, i: usize) -> String {
    let paras = prag_benches::paragraphs(8, 2);
    format!("Round {round}, record {i}.\n\n{}", paras.join("\n\n"))
}

fn bench(c: &mut Criterion) {
    let (rt, embedder) = prag_benches::node_setup();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut config = NodeConfig::new(tmp.path().join("data"));
    config.index = IndexConfig::Embedded {
        dir: Some(std::path::Path::new("/dev/shm").join(format!("prag-bench-ingest-{}", std::process::id()))),
    };
    let node = rt.block_on(Node::open(config, embedder.clone(), None)).expect("node");
    let owner = prag_testkit::key(9);
    let who = k256::ecdsa::VerifyingKey::from(&owner);
    rt.block_on(node.collections().create("bench", &who)).expect("collection");

    // The chunk texts one round produces, for the embedder-only baseline.
    let chunks_of = |text: &str| -> Vec<String> {
        embedder
            .tokenizer()
            .token_spans(text, 200, 32)
            .expect("spans")
            .iter()
            .map(|s| text[s.start..s.end].to_string())
            .collect()
    };
    let per_round: usize = (0..DOCS).map(|i| chunks_of(&document(0, i)).len()).sum();
    eprintln!("{DOCS} documents, {per_round} chunks per round");

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(per_round as u64));
    g.sample_size(10);
    let mut round = 1u64;
    g.bench_function("embed-only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let texts: Vec<Vec<String>> = (0..DOCS).map(|i| chunks_of(&document(round, i))).collect();
                let t = Instant::now();
                rt.block_on(async {
                    use futures::StreamExt;
                    futures::stream::iter(texts.into_iter().map(|t| embedder.embed(t)))
                        .buffer_unordered(4)
                        .for_each(|r| async move {
                            r.expect("embed");
                        })
                        .await
                });
                total += t.elapsed();
            }
            total
        })
    });
    let node = Arc::clone(&node);
    g.bench_function("ingest-end-to-end", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let docs: Vec<(String, Vec<u8>)> =
                    (0..DOCS).map(|i| (format!("r{round}/doc{i}.txt"), document(round, i).into_bytes())).collect();
                let t = Instant::now();
                rt.block_on(async {
                    use futures::StreamExt;
                    futures::stream::iter(docs.into_iter().map(|(p, bytes)| {
                        let node = Arc::clone(&node);
                        async move { node.ingest().upload(&who, "bench", &p, bytes).await }
                    }))
                    .buffer_unordered(4)
                    .for_each(|r| async move {
                        r.expect("upload");
                    })
                    .await
                });
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(ingest, bench);
criterion_main!(ingest);
