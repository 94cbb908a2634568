//! `prag eval`: retrieval quality of a collection against a JSON-lines file of questions with
//! their relevant documents — hit@1, hit@k, MRR@k and nDCG@k per search mode, with `--json`.
//! Metrics are per document: a question's ranking is its hits' documents in order, each counted
//! once (several chunks of one document are one answer).

use std::collections::HashSet;
use std::io::BufRead;
use std::time::Instant;

use anyhow::Context as _;
use prag_node::client::segment;
use prag_proto::api::{QueryRequest, QueryResponse, SearchMode};
use serde::{Deserialize, Serialize};

use crate::args::EvalArgs;
use crate::connect::{client, runtime};

/// One line of the questions file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Judged {
    query: String,
    /// Paths (as uploaded, `file#id` for JSON lines) or document ids.
    relevant: Vec<String>,
}

/// The metrics of one mode over every question.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Scores {
    pub queries: usize,
    pub hit_at_1: f64,
    pub hit_at_k: f64,
    pub mrr_at_k: f64,
    pub ndcg_at_k: f64,
    /// Median and 99th percentile of the node's own time per query, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    collection: String,
    k: usize,
    modes: Vec<(SearchMode, Scores)>,
}

/// Adds one question's ranking (documents, best first, each once) to running sums.
#[derive(Debug, Default)]
pub struct Tally {
    n: usize,
    hit1: f64,
    hitk: f64,
    rr: f64,
    ndcg: f64,
    times: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, ranking: &[String], relevant: &HashSet<String>, k: usize, took_ms: f64) {
        self.n += 1;
        self.times.push(took_ms);
        let top: Vec<&String> = ranking.iter().take(k).collect();
        if let Some(first) = top.iter().position(|d| relevant.contains(*d)) {
            self.hitk += 1.0;
            self.rr += 1.0 / (first + 1) as f64;
            if first == 0 {
                self.hit1 += 1.0;
            }
        }
        let dcg: f64 = top
            .iter()
            .enumerate()
            .filter(|(_, d)| relevant.contains(**d))
            .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
            .sum();
        let ideal: f64 = (0..relevant.len().min(k)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
        if ideal > 0.0 {
            self.ndcg += dcg / ideal;
        }
    }

    pub fn scores(mut self) -> Scores {
        let n = self.n.max(1) as f64;
        self.times.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if self.times.is_empty() {
                return 0.0;
            }
            let i = ((self.times.len() - 1) as f64 * p).round() as usize;
            self.times[i]
        };
        Scores {
            queries: self.n,
            hit_at_1: self.hit1 / n,
            hit_at_k: self.hitk / n,
            mrr_at_k: self.rr / n,
            ndcg_at_k: self.ndcg / n,
            p50_ms: pct(0.5),
            p99_ms: pct(0.99),
        }
    }
}

/// The documents of `resp`'s hits in order, each once, named by path (or id when a question's
/// relevant list uses ids).
fn ranking(resp: &QueryResponse, by_id: bool) -> Vec<String> {
    let mut seen = HashSet::new();
    resp.hits
        .iter()
        .map(|h| if by_id { h.doc_id.clone() } else { h.path.clone() })
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

fn read_questions(path: &std::path::Path) -> anyhow::Result<Vec<Judged>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let q: Judged = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: want {{\"query\", \"relevant\": [...]}}", path.display(), i + 1))?;
        anyhow::ensure!(!q.relevant.is_empty(), "{} line {}: no relevant document", path.display(), i + 1);
        out.push(q);
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no questions", path.display());
    Ok(out)
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let questions = read_questions(&args.questions)?;
    anyhow::ensure!((1..=20).contains(&args.k), "-k must be between 1 and 20");
    let rt = runtime()?;
    let client = client(&args.client)?;
    let path = format!("/v1/collections/{}/query", segment(&args.collection));
    // Enough chunks that `k` distinct documents are there even when several chunks of one
    // document rank high.
    let chunks = (args.k * 5).min(prag_proto::api::MAX_K);
    let mut modes = Vec::new();
    for &mode in &args.modes {
        let started = Instant::now();
        let mut tally = Tally::default();
        for (i, q) in questions.iter().enumerate() {
            let req = QueryRequest { text: q.query.clone(), k: chunks, exact: args.exact, mode };
            let resp: QueryResponse = rt
                .block_on(client.post(&path, &req))
                .with_context(|| format!("question {} ({})", i + 1, mode.as_str()))?;
            let by_id = q.relevant.iter().all(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()));
            let relevant: HashSet<String> = q.relevant.iter().cloned().collect();
            tally.add(&ranking(&resp, by_id), &relevant, args.k, resp.took_ms);
        }
        if !args.output.json {
            eprintln!("{}: {} questions in {:.1} s", mode.as_str(), questions.len(), started.elapsed().as_secs_f64());
        }
        modes.push((mode, tally.scores()));
    }
    if args.output.json {
        return crate::output::json(&Report { collection: args.collection, k: args.k, modes });
    }
    let k = args.k;
    println!(
        "{:<8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "mode",
        "queries",
        "hit@1",
        format!("hit@{k}"),
        format!("MRR@{k}"),
        format!("nDCG@{k}"),
        "p50 ms",
        "p99 ms"
    );
    for (mode, s) in &modes {
        println!(
            "{:<8} {:>7} {:>7.3} {:>7.3} {:>8.3} {:>8.3} {:>8.1} {:>8.1}",
            mode.as_str(),
            s.queries,
            s.hit_at_1,
            s.hit_at_k,
            s.mrr_at_k,
            s.ndcg_at_k,
            s.p50_ms,
            s.p99_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_follow_their_definitions() {
        let rel = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        let mut t = Tally::default();
        t.add(&docs(&["a", "b"]), &rel(&["a"]), 10, 1.0); // first: rr 1, ndcg 1
        t.add(&docs(&["x", "y", "b"]), &rel(&["b"]), 10, 3.0); // third: rr 1/3, ndcg 1/log2(4) = 0.5
        t.add(&docs(&["x"]), &rel(&["z"]), 10, 2.0); // missed
        t.add(&docs(&["q", "r", "s"]), &rel(&["s"]), 2, 2.0); // beyond k: missed
        let s = t.scores();
        assert_eq!(s.queries, 4);
        assert!((s.hit_at_1 - 0.25).abs() < 1e-12);
        assert!((s.hit_at_k - 0.5).abs() < 1e-12);
        assert!((s.mrr_at_k - (1.0 + 1.0 / 3.0) / 4.0).abs() < 1e-12);
        assert!((s.ndcg_at_k - 1.5 / 4.0).abs() < 1e-12);
        assert_eq!((s.p50_ms, s.p99_ms), (2.0, 3.0));
    }

    #[test]
    fn two_relevant_documents_both_found_score_full_ndcg() {
        let mut t = Tally::default();
        let rel: HashSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        t.add(&docs(&["b", "a", "c"]), &rel, 10, 1.0);
        assert!((t.scores().ndcg_at_k - 1.0).abs() < 1e-12);
    }
}
