//! BM25 over keyed term ids. A chunk's vector holds, per term, its saturated term frequency
//! `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg))`; a question's vector holds, per term, its IDF over
//! the chunks searched — so their dot product is the chunk's BM25 score. The IDF is applied at
//! query time (not stored), so it always reflects what the searched shards hold, and a search
//! spread over several nodes uses the same IDF as one node holding everything.

use std::collections::BTreeMap;

use super::SparseVector;
use super::terms::terms;
use crate::crypto::{DataKey, KeyContext, MasterKey, Purpose};

/// Term-frequency saturation.
pub const K1: f32 = 1.2;
/// Length normalisation.
pub const B: f32 = 0.75;
/// The chunk length (in terms) normalisation is relative to: about what `--chunk-tokens 256`
/// leaves after stop words. Fixed, not measured per collection, so a chunk's vector never changes
/// once written.
pub const AVG_TERMS: f32 = 120.0;

/// The key that turns terms into ids: derived from the collection key, so every replica of the
/// collection computes the same ids and nobody without the key can map an id back to a word, by
/// dictionary or otherwise.
pub struct TermKey(ring::hmac::Key);

impl TermKey {
    pub(crate) fn new(key: DataKey) -> Self {
        TermKey(key.hmac_key())
    }

    /// The term key of collection `cid`, whose key is `key`.
    pub fn of_collection(key: &MasterKey, cid: &str) -> Self {
        TermKey::new(key.derive(&KeyContext::new(Purpose::Mac, cid, "term-id", 0, 1)))
    }

    /// The id of `term`: the first four bytes of its HMAC-SHA256 under the key.
    pub fn id(&self, term: &str) -> u32 {
        let mac = ring::hmac::sign(&self.0, term.as_bytes());
        let b = mac.as_ref();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// A chunk's vector: each distinct term with its saturated frequency.
    pub fn document_vector(&self, text: &str) -> SparseVector {
        let all = terms(text);
        let len = all.len() as f32;
        let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
        for t in &all {
            *counts.entry(self.id(t)).or_default() += 1;
        }
        // Two terms may share an id (2^-32 per pair): their counts add, as one term's would.
        let norm = K1 * (1.0 - B + B * len / AVG_TERMS);
        let mut v = SparseVector::default();
        for (id, n) in counts.into_iter().take(super::MAX_TERMS) {
            let tf = n as f32;
            v.indices.push(id);
            v.values.push(tf * (K1 + 1.0) / (tf + norm));
        }
        v
    }

    /// A question's distinct term ids, ascending.
    pub fn query_terms(&self, text: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = terms(text).iter().map(|t| self.id(t)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(super::MAX_TERMS);
        ids
    }
}

/// BM25's IDF of a term held by `df` of `n` chunks (always positive).
pub fn idf(df: u64, n: u64) -> f32 {
    let (df, n) = (df as f64, n.max(df) as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// The question's vector: each of its terms that some chunk holds, weighted by its IDF.
/// `frequencies[i]` is how many of the `n` searched chunks hold `terms[i]`.
pub fn query_vector(terms: &[u32], frequencies: &[u64], n: u64) -> SparseVector {
    let mut v = SparseVector::default();
    for (&t, &df) in terms.iter().zip(frequencies) {
        if df > 0 {
            v.indices.push(t);
            v.values.push(idf(df, n));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> TermKey {
        TermKey::of_collection(&MasterKey::from_bytes([seed; 32]), "c")
    }

    #[test]
    fn ids_depend_on_the_key() {
        let (a, b) = (key(1), key(2));
        assert_eq!(a.id("ssh"), a.id("ssh"));
        assert_ne!(a.id("ssh"), b.id("ssh"));
        assert_ne!(a.id("ssh"), a.id("scp"));
    }

    #[test]
    fn repeated_terms_saturate_and_longer_chunks_weigh_less() {
        let k = key(1);
        let once = k.document_vector("rsync");
        let thrice = k.document_vector("rsync rsync rsync");
        assert_eq!(once.len(), 1);
        assert!(thrice.values[0] > once.values[0]);
        assert!(thrice.values[0] < 3.0 * once.values[0], "saturation");
        assert!(thrice.values[0] < K1 + 1.0);
        let filler = "word ".repeat(300);
        let long = k.document_vector(&format!("rsync {filler}"));
        let pos = long.indices.iter().position(|&i| i == once.indices[0]).unwrap();
        assert!(long.values[pos] < once.values[0]);
    }

    #[test]
    fn rare_terms_weigh_more_and_absent_ones_not_at_all() {
        assert!(idf(1, 1000) > idf(100, 1000));
        assert!(idf(1000, 1000) > 0.0);
        let q = query_vector(&[5, 7, 9], &[1, 0, 500], 1000);
        assert_eq!(q.indices, [5, 9]);
        assert!(q.values[0] > q.values[1]);
    }

    #[test]
    fn the_question_vector_dotted_with_a_chunk_is_its_bm25_score() {
        let k = key(3);
        let doc = k.document_vector("tar creates archives; tar extracts archives");
        let terms = k.query_terms("extract a tar archive");
        assert_eq!(terms.len(), 3);
        let q = query_vector(&terms, &[10, 10, 10], 100);
        let expect: f32 = doc
            .indices
            .iter()
            .zip(&doc.values)
            .filter(|(i, _)| q.indices.contains(i))
            .map(|(_, w)| w * idf(10, 100))
            .sum();
        assert!((doc.dot(&q) - expect).abs() < 1e-6);
        assert!(doc.dot(&q) > 0.0);
    }
}
