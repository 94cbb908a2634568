//! Vector search at 100k chunks (384 dims) in the embedded Qdrant engine: latency and queries/s
//! of the default (HNSW) search and of exact search, and recall@10 of HNSW against exact.
//! Vectors are synthetic but clustered like sentence embeddings (1,000 topics plus noise), which
//! is harder for HNSW than real text and much faster to produce than embedding 100k chunks.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use prag_benches::{normal, percentile, unit};
use prag_node::index::edge::EdgeBackend;
use prag_node::index::{IndexBackend, IndexPoint};
use rand::{Rng, SeedableRng};

const POINTS: usize = 100_000;
const DIM: usize = 384;
const QUERIES: usize = 200;

fn dataset(rng: &mut impl Rng, n: usize, centroids: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centroids[rng.gen_range(0..centroids.len())];
            unit(c.iter().map(|x| x + 0.06 * normal(rng)).collect())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let centroids: Vec<Vec<f32>> = (0..1000).map(|_| unit((0..DIM).map(|_| normal(&mut rng)).collect())).collect();
    let points = dataset(&mut rng, POINTS, &centroids);
    let queries = dataset(&mut rng, QUERIES, &centroids);

    let dir = std::path::Path::new("/dev/shm").join(format!("prag-bench-index-{}", std::process::id()));
    let backend = EdgeBackend::new(&dir).expect("backend");
    let index = backend.open("bench", DIM, &[0u8; 32]).expect("index");
    let t = Instant::now();
    for (chunk_no, chunk) in points.chunks(5000).enumerate() {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| IndexPoint {
                id: (chunk_no * 5000 + i) as u64,
                vector: v.clone(),
                sparse: Default::default(),
            })
            .collect();
        index.upsert(batch).expect("upsert");
    }
    eprintln!("upserted {POINTS} points in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    while index.optimize().expect("optimize") {}
    let stats = index.stats().expect("stats");
    eprintln!("optimize: {:.1} s, {} of {} points indexed", t.elapsed().as_secs_f64(), stats.indexed, stats.points);

    // Recall@10 and latency percentiles over the query set.
    let mut recall_hits = 0usize;
    let (mut hnsw_lat, mut exact_lat) = (Vec::new(), Vec::new());
    for q in &queries {
        let t = Instant::now();
        let approx = index.search(q, 10, false).expect("search");
        hnsw_lat.push(t.elapsed());
        let t = Instant::now();
        let exact = index.search(q, 10, true).expect("exact");
        exact_lat.push(t.elapsed());
        let truth: std::collections::HashSet<u64> = exact.iter().map(|(id, _)| *id).collect();
        recall_hits += approx.iter().filter(|(id, _)| truth.contains(id)).count();
    }
    hnsw_lat.sort();
    exact_lat.sort();
    eprintln!("recall@10 (HNSW vs exact) over {QUERIES} queries: {:.4}", recall_hits as f64 / (10 * QUERIES) as f64);
    eprintln!(
        "HNSW  p50 {:?} p99 {:?}; exact p50 {:?} p99 {:?}",
        percentile(&hnsw_lat, 0.5),
        percentile(&hnsw_lat, 0.99),
        percentile(&exact_lat, 0.5),
        percentile(&exact_lat, 0.99)
    );

    let mut g = c.benchmark_group("search-100k");
    let mut i = 0;
    g.bench_function("hnsw-top10", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            index.search(&queries[i], 10, false).expect("search").len()
        })
    });
    g.bench_function("exact-top10", |b| {
        b.iter(|| {
            i = (i + 1) % QUERIES;
            index.search(&queries[i], 10, true).expect("search").len()
        })
    });
    g.finish();
}

criterion_group! {
    name = query;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(query);
