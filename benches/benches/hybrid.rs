//! Keyword and hybrid search against dense search, on a node holding 100,000 chunks (10,000
//! documents of 10), written through the store's own API in the real on-disk format and loaded as
//! `prag node` loads it (index rebuilt from the encrypted store, HNSW built before timing):
//!
//! - `search-100k/{dense,sparse,hybrid}`: one question's top 10, already embedded (the model's
//!   time is the same for dense and hybrid, and is not what is compared), texts opened; p50 and
//!   p99 over 400 questions are printed beside criterion's medians.
//! - `sparse-vector`: the keyed BM25 vector of one ~200-token chunk (what ingest adds per chunk),
//!   beside `embed-32-chunks`: embedding 32 such chunks on the CPU, the rest of ingest's work.
//! - bytes at rest per chunk with and without the sealed keyword vector.
//!
//! Texts are synthetic (words drawn from a 30,000-word Zipf vocabulary, as natural text's are);
//! vectors are clustered by document topic, as in `query.rs`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::VerifyingKey;
use prag_benches::{normal, percentile, unit};
use prag_node::config::{AttestationMode, IndexConfig};
use prag_node::store::{CollectionMeta, CollectionStore, DocumentHeader, NewChunk};
use prag_node::{Node, NodeConfig};
use prag_proto::api::SearchMode;
use rand::{Rng, SeedableRng};

const DOCS: usize = 10_000;
const CHUNKS: usize = 10;
const WORDS_PER_CHUNK: usize = 130;
const VOCABULARY: usize = 30_000;
const DIM: usize = 384;
const QUESTIONS: usize = 400;

/// Pronounceable distinct words ("bakotu", …) and a Zipf(1.07) sampler over them.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Self {
        const C: &[u8] = b"bdfgklmnprstvz";
        const V: &[u8] = b"aeiou";
        let words: Vec<String> = (0..VOCABULARY)
            .map(|mut i| {
                let mut w = String::new();
                loop {
                    w.push(C[i % C.len()] as char);
                    i /= C.len();
                    w.push(V[i % V.len()] as char);
                    i /= V.len();
                    if i == 0 {
                        break w;
                    }
                }
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=VOCABULARY)
            .map(|r| {
                total += 1.0 / (r as f64).powf(1.07);
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn word(&self, rng: &mut impl Rng) -> &str {
        let x = rng.r#gen::<f64>() * self.cumulative[VOCABULARY - 1];
        &self.words[self.cumulative.partition_point(|&c| c < x).min(VOCABULARY - 1)]
    }

    fn text(&self, rng: &mut impl Rng, words: usize) -> String {
        (0..words).map(|_| self.word(rng)).collect::<Vec<_>>().join(" ")
    }
}

/// Writes the collection into `data`; returns (bytes at rest, bytes the keyword vectors take).
fn seed(data: &Path, owner: &VerifyingKey, vocab: &Vocabulary, centroids: &[Vec<f32>]) -> (u64, u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    std::fs::create_dir_all(data.join("collections")).unwrap();
    let (master, _) = prag_node::crypto::MasterKey::load_or_create(&data.join("master.key")).unwrap();
    let meta = CollectionMeta {
        name: "hybrid".into(),
        owner: prag_proto::account::public_key_hex(owner),
        created_at: 0,
        shards: 1,
        replicas: 1,
        grants_version: 0,
        tombstones: Default::default(),
    };
    let store = CollectionStore::create(&master, &data.join("collections"), &meta).unwrap();
    let key = store.term_key();
    let mut sparse_bytes = 0u64;
    for d in 0..DOCS {
        let topic = &centroids[rng.gen_range(0..centroids.len())];
        let texts: Vec<String> = (0..CHUNKS).map(|_| vocab.text(&mut rng, WORDS_PER_CHUNK)).collect();
        let vectors: Vec<Vec<f32>> =
            (0..CHUNKS).map(|_| unit(topic.iter().map(|x| x + 0.06 * normal(&mut rng)).collect())).collect();
        let sparse: Vec<_> = texts.iter().map(|t| key.document_vector(t)).collect();
        // What one sealed keyword vector adds to the file: length, nonce, tag, count, entries.
        sparse_bytes += sparse.iter().map(|s| 4 + 12 + 16 + 4 + 8 * s.len() as u64).sum::<u64>();
        let chunks: Vec<NewChunk<'_>> = texts
            .iter()
            .zip(&vectors)
            .zip(&sparse)
            .map(|((t, v), s)| NewChunk { text: t, vector: v, sparse: s })
            .collect();
        let path = format!("docs/{d}.md");
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
    let docs = std::fs::read_dir(data.join("collections").join(&store.id).join("docs")).unwrap();
    (docs.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum(), sparse_bytes)
}

fn bench(c: &mut Criterion) {
    let (rt, embedder) = prag_benches::node_setup();
    let vocab = Vocabulary::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let centroids: Vec<Vec<f32>> = (0..1000).map(|_| unit((0..DIM).map(|_| normal(&mut rng)).collect())).collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("node");
    let owner = VerifyingKey::from(&prag_testkit::key(5));
    let t = Instant::now();
    let (at_rest, sparse_bytes) = seed(&data, &owner, &vocab, &centroids);
    let chunks = (DOCS * CHUNKS) as u64;
    eprintln!(
        "seeded {chunks} chunks in {:.1} s: {} bytes at rest per chunk, {} of them the keyword vector ({:.1}%)",
        t.elapsed().as_secs_f64(),
        at_rest / chunks,
        sparse_bytes / chunks,
        100.0 * sparse_bytes as f64 / at_rest as f64
    );

    let mut config = NodeConfig::new(&data);
    config.index = IndexConfig::Embedded {
        dir: Some(Path::new("/dev/shm").join(format!("prag-bench-hybrid-{}", std::process::id()))),
    };
    config.access.attestation = AttestationMode::Dev;
    let t = Instant::now();
    let node = rt.block_on(Node::open(config, embedder.clone(), None)).unwrap();
    let coll = node.collections().get("hybrid").unwrap();
    while coll.build_index().unwrap() {}
    eprintln!("opened and indexed in {:.1} s", t.elapsed().as_secs_f64());

    // Questions: a vector near a topic, and three words of middling frequency.
    let questions: Vec<(String, Vec<f32>)> = (0..QUESTIONS)
        .map(|_| {
            let topic = &centroids[rng.gen_range(0..centroids.len())];
            let words: Vec<&str> = (0..3).map(|_| vocab.words[rng.gen_range(50..5000)].as_str()).collect();
            (words.join(" "), unit(topic.iter().map(|x| x + 0.06 * normal(&mut rng)).collect()))
        })
        .collect();
    let ask = |i: usize, mode: SearchMode| {
        let (text, vector) = &questions[i % QUESTIONS];
        rt.block_on(node.retrieval().search_prepared("hybrid", text, vector.clone(), 10, false, mode)).unwrap()
    };
    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let mut lat: Vec<Duration> = (0..QUESTIONS)
            .map(|i| {
                let t = Instant::now();
                let found = ask(i, mode);
                assert!(!found.hits.is_empty() || mode == SearchMode::Sparse);
                t.elapsed()
            })
            .collect();
        lat.sort();
        eprintln!(
            "{}: p50 {:?}, p99 {:?} over {QUESTIONS} questions",
            mode.as_str(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    let mut g = c.benchmark_group("search-100k");
    for mode in [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid] {
        let mut i = 0;
        g.bench_function(mode.as_str(), |b| {
            b.iter(|| {
                i += 1;
                ask(i, mode).hits.len()
            })
        });
    }
    g.finish();
    drop(node);

    // Ingest: the keyword vector of a ~200-token chunk, against embedding such chunks.
    let chunk_texts: Vec<String> = prag_benches::paragraphs(32, 10);
    let key = prag_node::lexical::TermKey::of_collection(&prag_node::crypto::MasterKey::from_bytes([3; 32]), "bench");
    let tokens = embedder.tokenizer().count_tokens(&chunk_texts[0]).unwrap();
    eprintln!("ingest texts: {tokens} tokens each");
    let mut g = c.benchmark_group("ingest-per-chunk");
    let mut i = 0;
    g.bench_function("sparse-vector", |b| {
        b.iter(|| {
            i += 1;
            key.document_vector(&chunk_texts[i % 32]).len()
        })
    });
    g.sample_size(10);
    g.bench_function("embed-32-chunks", |b| b.iter(|| rt.block_on(embedder.embed(chunk_texts.clone())).unwrap().len()));
    g.finish();
}

criterion_group! {
    name = hybrid;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(hybrid);
