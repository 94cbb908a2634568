//! What PRAG's tests and benchmarks share, and nothing else uses (a dev-dependency only):
//!
//! - [`fake`]: a deterministic stand-in embedder for tests about something other than embeddings
//!   (replication rules, hedging, the HTTP error table): no model to load, no forward pass;
//! - [`process`]: a real `prag node` process on a free loopback port;
//! - [`inproc`]: a node in this process, on a free port, for fast component tests;
//! - keys, ports, the model directory, and the demo corpus under the paths tests use.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod fake;
pub mod inproc;
pub mod process;
pub mod requests;

use std::path::{Path, PathBuf};

use k256::ecdsa::SigningKey;

/// The demo corpus as (upload path, text): leaflets, a retention policy and an archive log.
pub const CLINIC_DOCS: &[(&str, &str)] = &[
    ("policies/retention.md", include_str!("../../node/assets/demo/records-retention.md")),
    ("leaflets/mri.md", include_str!("../../node/assets/demo/mri-preparation.md")),
    ("leaflets/wifi.md", include_str!("../../node/assets/demo/guest-wifi.md")),
    ("leaflets/lab.md", include_str!("../../node/assets/demo/lab-results.md")),
    ("archive/log.md", include_str!("../../node/assets/demo/archive-digitisation.md")),
    ("leaflets/heart.md", include_str!("../../node/assets/demo/discharge-advice.md")),
];

/// Questions about the demo corpus, one answered by each of its first five documents' topics.
pub const CLINIC_QUESTIONS: &[&str] = &[
    "How long do you keep a child's medical records?",
    "Can I wear my earrings in the scanner?",
    "When can I drive again after a stent?",
    "Which baptism registers were damaged by water?",
    "What is the password for the visitor network?",
];

/// The model directory: `$PRAG_MODEL` or the cache (`scripts/test` fills it).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("PRAG_MODEL").map(PathBuf::from).unwrap_or_else(prag_embedder::fetch::default_model_dir);
    assert!(dir.join("model.safetensors").is_file(), "no model at {}: run scripts/test first", dir.display());
    dir
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A deterministic account key.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("key")
}

/// A key's canonical hex public key.
pub fn public_hex(key: &SigningKey) -> String {
    prag_proto::account::public_key_hex(key.verifying_key())
}

/// A two-thread runtime, as a small node has.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// The ledger message registering a storage node from its (peer id, storage key, report), paid to
/// `key(30)`'s wallet.
pub fn storage_registration((peer, signing_key, report): &(String, String, String)) -> serde_json::Value {
    serde_json::json!({"register_worker": {
        "ip_address": peer,
        "payment_wallet": prag_proto::account::address(key(30).verifying_key()),
        "attestation_report": report,
        "worker_type": "prag-storage",
        "signing_key": signing_key,
    }})
}
