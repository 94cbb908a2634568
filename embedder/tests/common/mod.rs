//! Shared helpers for the embedder's integration tests.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

use std::path::PathBuf;

/// The model directory the tests use: `$PRAG_MODEL`, else the default cache (filled by
/// `scripts/test`, which runs `prag model fetch` first).
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("PRAG_MODEL").map(PathBuf::from).unwrap_or_else(prag_embedder::fetch::default_model_dir);
    assert!(
        dir.join("model.safetensors").is_file(),
        "no model at {}: run `scripts/test` (or `prag model fetch`) first",
        dir.display()
    );
    dir
}

/// `shared/fixtures` beside the repository (or `$PRAG_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("PRAG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
}
