//! What the process tests share: the testkit (keys, ports, the model, the corpus, the `prag
//! node` process fixture) and requests built by hand on the owner's channel.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code, unused_imports)]

pub mod cli;
pub mod hostile;

pub use prag_node::NodeClient;
pub use prag_testkit::process::NodeProcess;
pub use prag_testkit::requests::{collection_with, sealed_request, send_sealed};
pub use prag_testkit::{CLINIC_DOCS, CLINIC_QUESTIONS, all_files, free_port, key, model_dir, rt, storage_registration};

/// `prag storage identity --data DATA --dev-report DATA.report`: its JSON and the report.
pub fn cli_storage_identity(data: &std::path::Path) -> (serde_json::Value, String) {
    let report = data.with_extension("report");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prag"))
        .args(["storage", "identity", "--data"])
        .arg(data)
        .arg("--dev-report")
        .arg(&report)
        .output()
        .expect("prag storage identity");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("identity json");
    (v, std::fs::read_to_string(report).expect("report"))
}

/// A hit's text without its first line, the context (title and section path) every chunk starts
/// with.
#[allow(dead_code)]
pub fn chunk_body(text: &str) -> &str {
    text.split_once('\n').map_or(text, |(_, body)| body)
}
