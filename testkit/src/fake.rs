//! A stand-in embedder for tests about something other than embeddings: no model files, no
//! forward pass, the same runtime (queue, fair batching, worker threads) as the real one.
//!
//! - The tokenizer is byte-level BPE with no merges, built in code: every byte is a token, so
//!   chunking, truncation and token counts behave as with a real tokenizer, just finer.
//! - The "model" hashes each text's byte trigrams into 384 dimensions and normalises: texts that
//!   share words are near each other, and the same text always gives the same vector.

use std::sync::Arc;

use prag_embedder::{Backend, BackendSpec, BatchLimits, Embedder, PaddedBatch, TextTokenizer};
use sha2::{Digest, Sha256};

/// The dimension of the real model, so stored vectors have the same shape.
pub const DIMENSION: usize = 384;
/// The real model's window.
pub const MAX_SEQ_LENGTH: usize = 256;

/// Hashed byte trigrams, normalised.
pub struct FakeBackend;

impl Backend for FakeBackend {
    fn embed(&self, batch: &PaddedBatch) -> prag_embedder::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(batch.batch);
        for row in 0..batch.batch {
            let ids: Vec<u32> = (0..batch.seq)
                .filter(|&i| batch.mask[row * batch.seq + i] > 0.5)
                .map(|i| batch.ids[row * batch.seq + i])
                .collect();
            out.push(embed_ids(&ids));
        }
        Ok(out)
    }

    fn device(&self) -> String {
        "fake".into()
    }

    fn dtype(&self) -> String {
        "f32".into()
    }

    fn dimension(&self) -> usize {
        DIMENSION
    }
}

fn embed_ids(ids: &[u32]) -> Vec<f32> {
    let mut v = vec![0f32; DIMENSION];
    let lower: Vec<u32> = ids.iter().map(|&b| if (65..=90).contains(&b) { b + 32 } else { b }).collect();
    for w in lower.windows(3) {
        let h = Sha256::digest([w[0] as u8, w[1] as u8, w[2] as u8]);
        let slot = u16::from_le_bytes([h[0], h[1]]) as usize % DIMENSION;
        v[slot] += if h[2] & 1 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// A byte-level tokenizer: token id = byte value (through the byte-level alphabet).
pub fn byte_tokenizer() -> TextTokenizer {
    // The byte-level alphabet maps byte b to one printable character; its order is by byte.
    let mut alphabet: Vec<(u8, char)> = (0..=255u8).map(|b| (b, byte_char(b))).collect();
    alphabet.sort();
    let vocab: serde_json::Map<String, serde_json::Value> =
        alphabet.iter().map(|(b, c)| (c.to_string(), serde_json::json!(*b as u32))).collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": []}
    });
    let tok = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes()).expect("byte-level tokenizer");
    TextTokenizer::from_tokenizer(tok, MAX_SEQ_LENGTH).expect("tokenizer")
}

/// GPT-2's byte-to-character map: printable bytes stand for themselves, the rest are shifted
/// past 255.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable(b) {
        return b as char;
    }
    let shifted = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shifted).unwrap_or('?')
}

/// The stand-in embedder, with `workers` model threads.
pub fn fake_embedder(workers: usize) -> Embedder {
    let spec = BackendSpec {
        model: "fake-trigram-hash".into(),
        pooling: "none".into(),
        workers,
        limits: BatchLimits::default(),
        queue_capacity: 1024,
    };
    Embedder::from_backend(byte_tokenizer(), Arc::new(FakeBackend), spec).expect("fake embedder")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stand_in_tokenizes_bytes_and_embeds_deterministically() {
        let t = byte_tokenizer();
        assert_eq!(t.count_tokens("héllo wörld").unwrap(), "héllo wörld".len());
        let spans = t.token_spans("abcdefghij", 4, 1).unwrap();
        assert_eq!(spans.len(), 3);
        let rt = crate::rt();
        let e = fake_embedder(1);
        let v = rt
            .block_on(e.embed(vec![
                "MRI scanner earrings".into(),
                "mri scanner earrings".into(),
                "baptism registers".into(),
            ]))
            .unwrap();
        let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((cos(&v[0], &v[1]) - 1.0).abs() < 1e-5, "case does not matter");
        assert!(cos(&v[0], &v[2]) < 0.5, "unrelated texts are far apart");
        assert_eq!(v[0].len(), DIMENSION);
    }
}
