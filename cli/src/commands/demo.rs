//! `prag demo`: fetch the model if missing, embed a small corpus, and answer a few questions
//! from it by exact cosine search. Shows the embedder working end to end on this machine.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::args::DemoArgs;

/// The built-in sample corpus (fictional clinic and archive documents).
const SAMPLE_CORPUS: &[(&str, &str)] = prag_node::sample::CORPUS;

const SAMPLE_QUESTIONS: &[&str] = &[
    "How long do you keep a child's medical records?",
    "Can I wear my earrings in the scanner?",
    "When can I drive again after a stent?",
    "Which baptism registers were damaged?",
];

struct Passage {
    source: String,
    text: String,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let docs = match &args.corpus {
        Some(dir) => read_corpus(dir)?,
        None => SAMPLE_CORPUS.iter().map(|(n, t)| ((*n).to_string(), (*t).to_string())).collect(),
    };
    let embedder = crate::config::embedder(&args.model, true)?;
    let info = embedder.info().clone();
    println!(
        "model {} ({} dims, {} pooling) on {} in {}, {} worker(s)",
        info.model, info.dimension, info.pooling, info.device, info.dtype, info.workers
    );

    // Passages: paragraphs, split further where a paragraph exceeds the model's window.
    let mut passages = Vec::new();
    for (source, text) in &docs {
        for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty() && !p.starts_with('#')) {
            let spans = embedder.tokenizer().token_spans(para, info.max_seq_length - 2, 32)?;
            for s in spans {
                passages.push(Passage { source: source.clone(), text: para[s.start..s.end].to_string() });
            }
        }
    }
    if passages.is_empty() {
        bail!("the corpus holds no text");
    }

    let rt = crate::connect::runtime()?;
    let started = Instant::now();
    let vectors = rt.block_on(embedder.embed(passages.iter().map(|p| p.text.clone()).collect()))?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embedded {} passages from {} documents in {:.2} s ({:.0} passages/s)\n",
        passages.len(),
        docs.len(),
        secs,
        passages.len() as f64 / secs.max(1e-9)
    );

    let questions: Vec<String> = if args.queries.is_empty() {
        SAMPLE_QUESTIONS.iter().map(|q| (*q).to_string()).collect()
    } else {
        args.queries.clone()
    };
    let query_vectors = rt.block_on(embedder.embed(questions.clone()))?;
    for (q, qv) in questions.iter().zip(&query_vectors) {
        println!("Q: {q}");
        // Vectors are L2-normalised, so the dot product is the cosine similarity.
        let mut scored: Vec<(f32, usize)> =
            vectors.iter().enumerate().map(|(i, v)| (v.iter().zip(qv).map(|(a, b)| a * b).sum(), i)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (score, i) in scored.into_iter().take(args.top_k.max(1)) {
            let p = &passages[i];
            println!("  {score:.3}  {}  {}", p.source, one_line(&p.text, 110));
        }
        println!();
    }
    Ok(())
}

fn read_corpus(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read corpus folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt" || x == "md"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("cannot read {} as UTF-8 text", f.display()))?;
        docs.push((f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), text));
    }
    if docs.is_empty() {
        bail!("no .txt or .md files in {}", dir.display());
    }
    Ok(docs)
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max { flat } else { format!("{}…", flat.chars().take(max).collect::<String>()) }
}
