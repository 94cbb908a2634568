//! CUDA against CPU on the reference texts (opt-in: `--features cuda`, needs a GPU).
//! f32 must agree to cosine ≥ 0.9999, f16 and bf16 to ≥ 0.999, and nothing may be NaN.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![cfg(feature = "cuda")]

mod common;

use prag_embedder::{BatchLimits, DTypeSpec, DeviceSpec, Embedder, EmbedderConfig, cosine};

fn texts() -> Vec<String> {
    let path = common::fixtures_dir().join("embeddings/all-MiniLM-L6-v2.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json");
    v["items"].as_array().expect("items").iter().map(|i| i["text"].as_str().unwrap_or_default().to_string()).collect()
}

fn embedder(device: DeviceSpec, dtype: DTypeSpec) -> Embedder {
    let mut c = EmbedderConfig::new(common::model_dir());
    c.device = device;
    c.dtype = dtype;
    c.limits = BatchLimits { token_budget: 1 << 20, max_batch: 1024 };
    Embedder::load(c).expect("load")
}

#[test]
fn cuda_agrees_with_cpu() {
    let texts = texts();
    let cpu = embedder(DeviceSpec::Cpu, DTypeSpec::F32).embed_blocking(texts.clone()).expect("cpu");
    for (dtype, bound) in [(DTypeSpec::F32, 0.9999f32), (DTypeSpec::F16, 0.999), (DTypeSpec::BF16, 0.999)] {
        let gpu = embedder(DeviceSpec::Cuda(0), dtype).embed_blocking(texts.clone()).expect("cuda");
        let mut worst = 1f32;
        for (a, b) in cpu.iter().zip(&gpu) {
            assert!(b.iter().all(|x| x.is_finite()), "{dtype}: non-finite output");
            worst = worst.min(cosine(a, b));
        }
        eprintln!("cuda {dtype}: worst cosine vs cpu f32 = {worst:.6}");
        assert!(worst >= bound, "cuda {dtype}: worst cosine {worst} < {bound}");
    }
}
