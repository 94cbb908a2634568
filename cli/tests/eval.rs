//! `prag eval` end to end, on a held-out set built from this machine's coreutils man pages
//! (`benches/eval/make-sets --limit 40 coreutils`): a real node, the real model, the three modes,
//! each working and consistent. (Which mode wins is a measurement, in the README, not a test: on
//! this set dense alone is best, on the larger one the fusion.)
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::cli::Cli;
use common::*;

fn scores<'a>(report: &'a serde_json::Value, mode: &str) -> &'a serde_json::Value {
    report["modes"]
        .as_array()
        .and_then(|m| m.iter().find(|pair| pair[0] == mode))
        .map(|pair| &pair[1])
        .unwrap_or_else(|| panic!("no {mode} in {report}"))
}

#[test]
fn eval_reports_every_mode_and_each_one_finds_answers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/eval/make-sets");
    let made = std::process::Command::new(&script)
        .args(["--out", tmp.path().to_str().unwrap(), "--limit", "40", "coreutils"])
        .output()
        .expect("run make-sets");
    assert!(made.status.success(), "make-sets: {}", String::from_utf8_lossy(&made.stderr));
    let questions = std::fs::read_to_string(tmp.path().join("coreutils.questions.jsonl")).expect("questions");
    assert!(questions.lines().count() >= 35, "the set is too small: is man-db with coreutils' pages installed?");

    let node = NodeProcess::start(&tmp.path().join("data"), &[]);
    let cli = Cli { url: &node.url, dir: tmp.path() };
    cli.key("owner.key");
    fn as_owner<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [args, &["--key", "owner.key", "--allow-dev-node"]].concat()
    }
    cli.ok(&as_owner(&["collection", "create", "ev"]));
    cli.ok(&as_owner(&["upload", "-c", "ev", "coreutils.jsonl"]));
    let report = cli.json(&as_owner(&["eval", "-c", "ev", "coreutils.questions.jsonl"]));
    assert_eq!(report["k"], 10);
    let mrr = |mode: &str| scores(&report, mode)["mrr_at_k"].as_f64().unwrap();
    for mode in ["dense", "sparse", "hybrid"] {
        let s = scores(&report, mode);
        assert_eq!(s["queries"].as_u64(), Some(questions.lines().count() as u64));
        let (h1, h10, m, n) = (
            s["hit_at_1"].as_f64().unwrap(),
            s["hit_at_k"].as_f64().unwrap(),
            s["mrr_at_k"].as_f64().unwrap(),
            s["ndcg_at_k"].as_f64().unwrap(),
        );
        assert!(h1 <= m && m <= h10 && n <= h10 + 1e-9, "{mode}: inconsistent metrics {s}");
    }
    assert!(mrr("sparse") > 0.4, "keyword search barely works: {report}");
    assert!(mrr("dense") > 0.6, "dense search barely works: {report}");
    assert!(mrr("hybrid") > mrr("sparse"), "the fusion is worse than keywords alone: {report}");
}
