//! Text → token ids, with the model's own truncation length and no fixed padding.
//!
//! The shipped `tokenizer.json` of MiniLM pads and truncates at 128; both are overridden here:
//! truncation at the model's `max_seq_length` (256), and padding done per batch by [`crate::batching`]
//! to the longest text in it.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{EmbedError, Result};
use crate::model_dir::{BertConfig, ModelDir, TOKENIZER};

/// One tokenised text.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub ids: Vec<u32>,
}

/// A token span of a text: where a chunk of at most `max_tokens` tokens starts and ends, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSpan {
    pub start: usize,
    pub end: usize,
    pub tokens: usize,
}

/// The model's tokenizer, configured for embedding.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// A tokenizer without truncation, for counting and chunking long texts.
    untruncated: Tokenizer,
    max_seq_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("max_seq_length", &self.max_seq_length).finish()
    }
}

impl TextTokenizer {
    pub fn load(model: &ModelDir) -> Result<Self> {
        let path = model.path(TOKENIZER);
        let inner = Tokenizer::from_file(&path)
            .map_err(|e| EmbedError::InvalidFile { path: path.clone(), reason: e.to_string() })?;
        check_matches_model(&path, &inner, &model.config)?;
        Self::from_tokenizer(inner, model.max_seq_length)
            .map_err(|e| EmbedError::InvalidFile { path: path.clone(), reason: e.to_string() })
    }

    /// Any `tokenizers` tokenizer, truncating at `max_seq_length` and padding nothing (a test's
    /// stand-in model uses one built in code).
    pub fn from_tokenizer(mut inner: Tokenizer, max_seq_length: usize) -> Result<Self> {
        let invalid = |e: tokenizers::Error| EmbedError::Tokenize(e.to_string());
        inner.with_padding(None);
        let mut untruncated = inner.clone();
        untruncated.with_truncation(None).map_err(invalid)?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(invalid)?;
        Ok(TextTokenizer { inner, untruncated, max_seq_length })
    }

    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Tokenises one text for the model: special tokens added, truncated to `max_seq_length`.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self.inner.encode(text, true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(Encoded { ids: enc.get_ids().to_vec() })
    }

    /// Number of tokens of `text` without special tokens and without truncation.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let enc = self.untruncated.encode(text, false).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(enc.get_ids().len())
    }

    /// Splits `text` into byte spans of at most `max_tokens` tokens each (special tokens not
    /// counted), consecutive spans overlapping by `overlap` tokens. Spans end on token boundaries.
    pub fn token_spans(&self, text: &str, max_tokens: usize, overlap: usize) -> Result<Vec<TokenSpan>> {
        let max_tokens = max_tokens.max(1);
        let overlap = overlap.min(max_tokens.saturating_sub(1));
        let enc = self.untruncated.encode(text, false).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        let offsets = enc.get_offsets();
        let n = offsets.len();
        let mut spans = Vec::new();
        let mut first = 0;
        while first < n {
            let last = (first + max_tokens).min(n); // exclusive
            let start = offsets[first].0;
            let end = offsets[last - 1].1;
            spans.push(TokenSpan { start, end, tokens: last - first });
            if last == n {
                break;
            }
            first = last - overlap;
        }
        Ok(spans)
    }
}

/// Refuses a tokenizer whose ids do not fit the model's embedding table.
fn check_matches_model(path: &Path, tok: &Tokenizer, config: &BertConfig) -> Result<()> {
    let vocab = tok.get_vocab_size(true);
    if vocab == 0 {
        return Err(EmbedError::TokenizerMismatch { path: path.to_path_buf(), reason: "empty vocabulary".into() });
    }
    if vocab > config.vocab_size {
        return Err(EmbedError::TokenizerMismatch {
            path: path.to_path_buf(),
            reason: format!(
                "its vocabulary has {vocab} tokens but the model's embedding table has {} rows",
                config.vocab_size
            ),
        });
    }
    for special in ["[CLS]", "[SEP]"] {
        if tok.token_to_id(special).is_none() {
            return Err(EmbedError::TokenizerMismatch {
                path: path.to_path_buf(),
                reason: format!("it has no {special} token, which BERT models need"),
            });
        }
    }
    Ok(())
}
