//! Printing what commands found: text for people, JSON (`--json`) for scripts.

use prag_proto::api::{ChunkError, Hit};
use serde::Serialize;

/// Prints `value` as one line of JSON.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Ranked hits with their text, and a warning per unreadable chunk (`prag query`, `prag worker
/// query`).
pub fn hits(hits: &[Hit], unreadable: &[ChunkError]) {
    if hits.is_empty() {
        println!("no matches");
    }
    for (rank, h) in hits.iter().enumerate() {
        println!("{}. {:.3}  {}  (chunk {}, doc {})", rank + 1, h.score, h.path, h.chunk, h.doc_id);
        for line in h.text.lines().filter(|l| !l.trim().is_empty()) {
            println!("     {}", line.trim());
        }
    }
    for u in unreadable {
        eprintln!("warning: chunk {} of document {} is unreadable: {}", u.chunk, u.doc_id, u.error);
    }
}
