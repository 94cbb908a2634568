//! What verifiable retrieval adds: per paid answer, the commitment and the receipt (request and
//! response hashes, the secp256k1 signature, the sealed log record appended); per attester
//! request, the deterministic exact scan (our fixed-order kernel, SIMD and portable) next to
//! Qdrant's own exact search over the same points; per settlement, the stack root and the
//! inclusion paths of a 1,000-request log. Synthetic unit vectors, 384 dims.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use prag_node::collections::kernel;
use prag_node::crypto::MasterKey;
use prag_node::index::edge::EdgeBackend;
use prag_node::index::{IndexBackend, IndexPoint};
use prag_node::market::{LogRecord, StackLogs};
use prag_proto::api::Hit;
use prag_proto::verifiable::{LoggedRequest, Receipt, merkle_path, response_hash, stack_root};
use rand::{Rng, SeedableRng};

const DIM: usize = 384;

fn unit(rng: &mut impl Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.r#gen::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn answer(rng: &mut impl Rng) -> (LoggedRequest, Vec<Hit>) {
    // Five chunks of about 200 tokens (ten sentences), as the node makes them.
    let texts = prag_benches::paragraphs(5, 10);
    let hits = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| Hit {
            doc_id: format!("{i:032x}"),
            path: format!("docs/{i}.md"),
            chunk: i as u32,
            score: 0.5,
            text,
        })
        .collect();
    let request = LoggedRequest {
        stack: 7,
        index: 0,
        collection: "clinic".into(),
        k: 5,
        question: "How long do you keep a child's medical records?".into(),
        vector: unit(rng),
        snapshot_root: hex::encode([3u8; 32]),
    };
    (request, hits)
}

fn paid_answer(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (request, hits) = answer(&mut rng);
    let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let logs = StackLogs::open(dir.path().join("stacks"), Arc::new(MasterKey::from_bytes([1; 32]))).unwrap();
    let mut g = c.benchmark_group("paid_answer");
    g.bench_function("commit_and_sign_receipt", |b| {
        b.iter(|| {
            let (rq, rs) = (request.hash(), response_hash(&hits, 1200));
            Receipt::sign(&key, 1, &request, &rq, &rs, 1200, 1_800_000_000)
        })
    });
    // A new stack every 1,000 answers, so that the log in memory stays the size of a real one.
    let mut stack = 0u64;
    let mut log = logs.get(stack).unwrap();
    g.bench_function("receipt_and_sealed_log_append", |b| {
        b.iter_batched(
            || {
                if log.blocking_lock().records.len() >= 1000 {
                    logs.forget(stack);
                    stack += 1;
                    log = logs.get(stack).unwrap();
                }
                let mut r = request.clone();
                r.stack = stack;
                (r, std::sync::Arc::clone(&log))
            },
            |(mut r, log)| {
                let mut l = log.blocking_lock();
                r.index = l.records.len() as u64;
                let (rq, rs) = (r.hash(), response_hash(&hits, 1200));
                let receipt = Receipt::sign(&key, 1, &r, &rq, &rs, 1200, 1_800_000_000);
                logs.append(&mut l, LogRecord { request: r, hits: hits.clone(), units: 1200, time: 1 }).unwrap();
                receipt
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn reexecution(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for n in [10_000usize, 100_000] {
        let points: Vec<Vec<f32>> = (0..n).map(|_| unit(&mut rng)).collect();
        let q = unit(&mut rng);
        let dir = std::path::Path::new("/dev/shm").join(format!("prag-bench-verif-{}-{n}", std::process::id()));
        let backend = EdgeBackend::new(&dir).unwrap();
        let index = backend.open("bench", DIM, &[0u8; 32]).unwrap();
        for (b, chunk) in points.chunks(5000).enumerate() {
            let points = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| IndexPoint { id: (b * 5000 + i) as u64, vector: v.clone(), sparse: Default::default() })
                .collect();
            index.upsert(points).unwrap();
        }
        let mut g = c.benchmark_group(format!("rescore_{n}"));
        g.sample_size(20);
        let top = |scores: Vec<f32>| {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.select_nth_unstable_by(10, |&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            order.truncate(10);
            order
        };
        g.bench_function("deterministic_simd", |b| b.iter(|| top(points.iter().map(|p| kernel::dot(p, &q)).collect())));
        g.bench_function("deterministic_portable", |b| {
            b.iter(|| top(points.iter().map(|p| kernel::dot_portable(p, &q)).collect()))
        });
        g.bench_function("qdrant_edge_exact", |b| b.iter(|| index.search(&q, 10, true).unwrap()));
        g.finish();
    }
}

fn settlement(c: &mut Criterion) {
    let leaves: Vec<[u8; 32]> =
        (0..1000u32).map(|i| prag_proto::contracts::market::commitment::blake2b256(&[&i.to_le_bytes()])).collect();
    let mut g = c.benchmark_group("settlement_1000");
    g.bench_function("stack_root", |b| b.iter(|| stack_root(&leaves, 1_000_000)));
    g.bench_function("one_inclusion_path", |b| b.iter(|| merkle_path(&leaves, 617)));
    g.finish();
}

criterion_group!(benches, paid_answer, reexecution, settlement);
criterion_main!(benches);
