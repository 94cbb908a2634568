//! Embedding throughput (texts/s) for ~40-token paragraphs at several batch sizes, through the
//! public `Embedder` API (queue, batcher and worker threads included).
//! CPU always; CUDA too when built with `--features cuda` and a GPU answers.
//! `PRAG_BENCH_WORKERS` overrides the worker count.
//!
//! With `PRAG_EMBED_CORPUS=DIR` (set by `benches/peers/run`), also `embed-corpus/{sentences,chunks}`:
//! the peers' two corpora (`DIR/sentences.txt`, `DIR/chunks.txt`, one text per line) in batches of
//! `PRAG_EMBED_BATCH` (default 32), one iteration embedding the whole corpus, so that script can put
//! criterion's median next to the peers' on the same texts.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prag_benches::{model_dir, paragraphs};
use prag_embedder::{BatchLimits, DTypeSpec, DeviceSpec, Embedder, EmbedderConfig};

const TEXTS: usize = 256;

fn embedder(device: DeviceSpec, dtype: DTypeSpec, max_batch: usize) -> Option<Embedder> {
    let mut config = EmbedderConfig::new(model_dir());
    config.device = device;
    config.dtype = dtype;
    config.limits = BatchLimits { token_budget: 1 << 20, max_batch };
    config.workers = std::env::var("PRAG_BENCH_WORKERS").ok().and_then(|w| w.parse().ok());
    match Embedder::load(config) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("skipping {device} {dtype}: {e}");
            None
        }
    }
}

fn bench_device(c: &mut Criterion, device: DeviceSpec, dtype: DTypeSpec, batches: &[usize], n: usize) {
    let texts = paragraphs(n, 2);
    let mut group = c.benchmark_group(format!("embed/{device}/{dtype}"));
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    for &batch in batches {
        let Some(e) = embedder(device, dtype, batch) else { return };
        if batch == batches[0] {
            let tokens: usize = texts.iter().map(|t| e.tokenizer().count_tokens(t).unwrap_or(0) + 2).sum();
            eprintln!(
                "{device} {dtype}: {n} texts, {:.1} tokens/text, {} worker(s)",
                tokens as f64 / n as f64,
                e.info().workers
            );
        }
        group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, _| {
            b.iter(|| e.embed_blocking(texts.clone()).map(|v| v.len()).unwrap_or(0))
        });
    }
    group.finish();
}

/// The peers' corpora, timed on the CPU in f32 and int8 (see the module comment).
fn bench_corpus(c: &mut Criterion, dir: &std::path::Path) {
    let batch = std::env::var("PRAG_EMBED_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(32);
    let mut group = c.benchmark_group("embed-corpus");
    group.sample_size(10);
    for corpus in ["sentences", "chunks"] {
        let path = dir.join(format!("{corpus}.txt"));
        let texts: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        group.throughput(Throughput::Elements(texts.len() as u64));
        for dtype in [DTypeSpec::F32, DTypeSpec::Int8] {
            let Some(e) = embedder(DeviceSpec::Cpu, dtype, batch) else { continue };
            group.bench_with_input(BenchmarkId::new(corpus, dtype), &dtype, |b, _| {
                b.iter(|| e.embed_blocking(texts.clone()).map(|v| v.len()).unwrap_or(0))
            });
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    prag_benches::one_matmul_thread_per_worker();
    if let Some(dir) = std::env::var_os("PRAG_EMBED_CORPUS") {
        bench_corpus(c, std::path::Path::new(&dir));
        return;
    }
    bench_device(c, DeviceSpec::Cpu, DTypeSpec::F32, &[1, 8, 32, 128], TEXTS);
    if cfg!(feature = "cuda") {
        for dtype in [DTypeSpec::F32, DTypeSpec::F16, DTypeSpec::BF16] {
            bench_device(c, DeviceSpec::Cuda(0), dtype, &[32, 128, 512], 4096);
        }
    }
}

criterion_group!(embed, benches);
criterion_main!(embed);
