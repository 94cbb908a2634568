//! The embedder against reference embeddings computed in float64 by sentence-transformers
//! (`shared/fixtures/embeddings/all-MiniLM-L6-v2.json`): empty and one-letter texts, non-Latin
//! scripts, emoji and texts over 256 tokens included.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use prag_embedder::{BatchLimits, DTypeSpec, DeviceSpec, Embedder, EmbedderConfig, cosine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    max_tokens: usize,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    embedding: Vec<f32>,
}

fn load_fixture() -> Fixture {
    let path = common::fixtures_dir().join("embeddings/all-MiniLM-L6-v2.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("bad fixture {}: {e}", path.display()))
}

fn cpu_embedder(limits: BatchLimits) -> Embedder {
    let mut config = EmbedderConfig::new(common::model_dir());
    config.device = DeviceSpec::Cpu;
    config.limits = limits;
    Embedder::load(config).unwrap_or_else(|e| panic!("model load failed: {e}"))
}

#[test]
fn matches_reference_embeddings_batched_and_one_by_one() {
    let fixture = load_fixture();
    assert_eq!(fixture.max_tokens, 256);
    assert!(fixture.items.len() >= 60, "fixture has {} items", fixture.items.len());
    let embedder = cpu_embedder(BatchLimits { token_budget: 1 << 20, max_batch: 1024 });
    assert_eq!(embedder.info().max_seq_length, 256);
    let texts: Vec<String> = fixture.items.iter().map(|i| i.text.clone()).collect();

    let batched = embedder.embed_blocking(texts.clone()).expect("batched embedding");
    assert_eq!(batched.len(), texts.len());
    let mut worst = f32::MAX;
    for (item, got) in fixture.items.iter().zip(&batched) {
        assert_eq!(got.len(), 384);
        let c = cosine(got, &item.embedding);
        worst = worst.min(c);
        assert!(c >= 0.9999, "cosine {c} < 0.9999 for {:?}", truncate(&item.text));
    }
    eprintln!("worst cosine vs reference (batched): {worst:.7}");

    for (i, text) in texts.iter().enumerate() {
        let single = embedder.embed_blocking(vec![text.clone()]).expect("single embedding");
        let max_diff = single[0].iter().zip(&batched[i]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(max_diff <= 1e-5, "batching changed item {i} by {max_diff}: {:?}", truncate(text));
    }
}

/// `--dtype int8`: close to the reference on every item, the same in a batch and alone (integer
/// sums are exact and activations are quantized per row, so batching changes nothing at all).
#[test]
fn int8_stays_close_to_the_reference_and_ignores_batching() {
    let fixture = load_fixture();
    let mut config = EmbedderConfig::new(common::model_dir());
    config.device = DeviceSpec::Cpu;
    config.dtype = DTypeSpec::Int8;
    config.limits = BatchLimits { token_budget: 1 << 20, max_batch: 1024 };
    let embedder = Embedder::load(config).unwrap_or_else(|e| panic!("model load failed: {e}"));
    assert_eq!(embedder.info().dtype, "int8");
    let texts: Vec<String> = fixture.items.iter().map(|i| i.text.clone()).collect();
    let batched = embedder.embed_blocking(texts.clone()).expect("batched embedding");
    let cosines: Vec<f32> =
        fixture.items.iter().zip(&batched).map(|(item, got)| cosine(got, &item.embedding)).collect();
    let worst = cosines.iter().copied().fold(f32::MAX, f32::min);
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    eprintln!("int8 cosine vs reference: min {worst:.4}, mean {mean:.4} over {} items", cosines.len());
    assert!(worst >= 0.99 && mean >= 0.998, "int8 cosine min {worst}, mean {mean}");
    for (i, text) in texts.iter().enumerate() {
        let single = embedder.embed_blocking(vec![text.clone()]).expect("single embedding");
        assert_eq!(single[0], batched[i], "batching changed item {i}: {:?}", truncate(text));
    }
}

#[test]
fn known_values_and_similarity() {
    let embedder = cpu_embedder(BatchLimits::default());
    let v = embedder
        .embed_blocking(vec![
            "The quick brown fox jumps over the lazy dog.".into(),
            "A man is eating food.".into(),
            "A man is eating a piece of bread.".into(),
        ])
        .expect("embed");
    let expected = [0.04393f32, 0.05893, 0.04818, 0.07755, 0.02674];
    for (got, want) in v[0].iter().zip(expected) {
        assert!((got - want).abs() < 2e-4, "{:?} vs {expected:?}", &v[0][..5]);
    }
    let c = cosine(&v[1], &v[2]);
    assert!((c - 0.7553).abs() < 1e-3, "cosine {c}");
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

#[test]
fn small_token_budget_gives_same_vectors() {
    let fixture = load_fixture();
    let texts: Vec<String> = fixture.items.iter().take(24).map(|i| i.text.clone()).collect();
    let big = cpu_embedder(BatchLimits { token_budget: 1 << 20, max_batch: 1024 });
    let small = cpu_embedder(BatchLimits { token_budget: 300, max_batch: 3 });
    let a = big.embed_blocking(texts.clone()).expect("embed");
    let b = small.embed_blocking(texts).expect("embed");
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(x, y) > 0.99999);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_async_callers_get_their_own_answers() {
    let embedder = cpu_embedder(BatchLimits::default());
    let texts = ["alpha particle", "beta decay", "gamma ray burst", "delta wing aircraft"];
    let mut handles = Vec::new();
    for t in texts {
        let e = embedder.clone();
        handles.push(tokio::spawn(async move { e.embed(vec![t.to_string()]).await }));
    }
    let expected = embedder.embed(texts.iter().map(|t| t.to_string()).collect()).await.expect("embed");
    for (h, want) in handles.into_iter().zip(expected) {
        let got = h.await.expect("join").expect("embed");
        assert!(cosine(&got[0], &want) > 0.99999);
    }
    assert!(embedder.embed(Vec::new()).await.expect("empty").is_empty());
    assert!(embedder.stats().texts >= 8);
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
