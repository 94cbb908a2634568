//! Keyword (sparse) retrieval that reveals no words: each chunk gets a BM25 term-frequency vector
//! whose term ids are keyed hashes of its terms under a key derived from the collection key; the
//! question's terms are hashed the same way and weighted by IDF over what the searched shards
//! hold. Neither the index in memory, a remote Qdrant server, nor anyone with the data directory
//! sees a term — only ids that look random without the key.
//!
//! - [`terms`]: text → normalised terms (pure).
//! - [`bm25`]: the keyed term ids, a chunk's weights, a question's terms and IDF.
//! - [`counts`]: how many chunks hold each term, per shard (what IDF is computed from).

pub mod bm25;
pub mod counts;
pub mod terms;

pub use bm25::{TermKey, idf, query_vector};
pub use counts::TermCounts;

/// A sparse vector: term ids ascending, each with its weight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// Why sealed sparse bytes do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sparse vector: {0}")]
pub struct SparseDecodeError(&'static str);

/// Most terms one chunk's vector may hold (a chunk is a few hundred tokens; this bounds what a
/// damaged or hostile file can make the node allocate).
pub const MAX_TERMS: usize = 8192;

impl SparseVector {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `u32 n ‖ n × (u32 id ‖ f32 weight)`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * self.len());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for (i, v) in self.indices.iter().zip(&self.values) {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The inverse of [`encode`](Self::encode); refuses anything but ascending ids, finite
    /// non-negative weights and an exact length.
    pub fn decode(bytes: &[u8]) -> Result<Self, SparseDecodeError> {
        let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
        let n = word(0).map(u32::from_le_bytes).ok_or(SparseDecodeError("truncated"))? as usize;
        if n > MAX_TERMS {
            return Err(SparseDecodeError("too many terms"));
        }
        if bytes.len() != 4 + 8 * n {
            return Err(SparseDecodeError("wrong length"));
        }
        let mut v = SparseVector { indices: Vec::with_capacity(n), values: Vec::with_capacity(n) };
        for k in 0..n {
            let (Some(i), Some(w)) = (word(4 + 8 * k), word(8 + 8 * k)) else {
                return Err(SparseDecodeError("truncated"));
            };
            let (i, w) = (u32::from_le_bytes(i), f32::from_le_bytes(w));
            if v.indices.last().is_some_and(|&last| last >= i) {
                return Err(SparseDecodeError("term ids not ascending"));
            }
            if !w.is_finite() || w < 0.0 {
                return Err(SparseDecodeError("weight not a finite non-negative number"));
            }
            v.indices.push(i);
            v.values.push(w);
        }
        Ok(v)
    }

    /// The dot product with `other` (both ascending): the BM25 score of a chunk for a question
    /// whose weights are IDFs.
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut a, mut b, mut sum) = (0, 0, 0.0f32);
        while a < self.len() && b < other.len() {
            match self.indices[a].cmp(&other.indices[b]) {
                std::cmp::Ordering::Less => a += 1,
                std::cmp::Ordering::Greater => b += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[a] * other.values[b];
                    a += 1;
                    b += 1;
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_damage_is_refused() {
        let v = SparseVector { indices: vec![3, 9, 400], values: vec![0.5, 1.25, 2.0] };
        let bytes = v.encode();
        assert_eq!(SparseVector::decode(&bytes), Ok(v.clone()));
        assert!(SparseVector::decode(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut unsorted = v.clone();
        unsorted.indices.swap(0, 1);
        assert!(SparseVector::decode(&unsorted.encode()).is_err(), "ids out of order");
        let mut nan = v.clone();
        nan.values[1] = f32::NAN;
        assert!(SparseVector::decode(&nan.encode()).is_err(), "a NaN weight");
        let mut huge = (u32::MAX).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(SparseVector::decode(&huge).is_err(), "a count far beyond the bytes");
        assert_eq!(SparseVector::decode(&SparseVector::default().encode()), Ok(SparseVector::default()));
    }

    #[test]
    fn dot_counts_shared_terms_only() {
        let a = SparseVector { indices: vec![1, 5, 9], values: vec![1.0, 2.0, 3.0] };
        let b = SparseVector { indices: vec![5, 9, 11], values: vec![10.0, 100.0, 1000.0] };
        assert_eq!(a.dot(&b), 2.0 * 10.0 + 3.0 * 100.0);
        assert_eq!(a.dot(&SparseVector::default()), 0.0);
    }
}
