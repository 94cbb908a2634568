//! How many chunks hold each term, per shard: what a question's IDF is computed from. Kept in
//! memory beside the index, changed with every document put in place or removed, rebuilt at
//! start with the index. Per shard, so a node asked for some of its shards counts only those —
//! and a distributed search adds up exactly what one node holding every shard would count.

use std::collections::{HashMap, HashSet};

use super::SparseVector;

/// A document's terms: each term id with the number of its chunks that hold it, ascending.
pub type DocumentTerms = Vec<(u32, u32)>;

/// The terms of a document whose chunks have these vectors.
pub fn document_terms<'a>(chunks: impl IntoIterator<Item = &'a SparseVector>) -> DocumentTerms {
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for c in chunks {
        for &t in &c.indices {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut out: DocumentTerms = counts.into_iter().collect();
    out.sort_unstable();
    out
}

#[derive(Debug, Default, Clone)]
struct ShardCounts {
    chunks: u64,
    holding: HashMap<u32, u64>,
}

/// Per shard: chunks, and chunks holding each term.
#[derive(Debug, Default, Clone)]
pub struct TermCounts {
    shards: HashMap<u32, ShardCounts>,
}

impl TermCounts {
    /// A document of `chunks` chunks with `terms` came into `shard`.
    pub fn add(&mut self, shard: u32, chunks: u64, terms: &DocumentTerms) {
        let s = self.shards.entry(shard).or_default();
        s.chunks += chunks;
        for &(t, n) in terms {
            *s.holding.entry(t).or_default() += u64::from(n);
        }
    }

    /// The inverse of [`add`](Self::add).
    pub fn remove(&mut self, shard: u32, chunks: u64, terms: &DocumentTerms) {
        let Some(s) = self.shards.get_mut(&shard) else { return };
        s.chunks = s.chunks.saturating_sub(chunks);
        for &(t, n) in terms {
            if let Some(c) = s.holding.get_mut(&t) {
                *c = c.saturating_sub(u64::from(n));
                if *c == 0 {
                    s.holding.remove(&t);
                }
            }
        }
        if s.chunks == 0 && s.holding.is_empty() {
            self.shards.remove(&shard);
        }
    }

    /// Over the shards in `only` (all with `None`): per term of `terms`, how many chunks hold it,
    /// and how many chunks there are.
    pub fn frequencies(&self, terms: &[u32], only: Option<&HashSet<u32>>) -> (Vec<u64>, u64) {
        let mut freq = vec![0u64; terms.len()];
        let mut n = 0;
        for (shard, s) in &self.shards {
            if only.is_some_and(|o| !o.contains(shard)) {
                continue;
            }
            n += s.chunks;
            for (f, t) in freq.iter_mut().zip(terms) {
                *f += s.holding.get(t).copied().unwrap_or(0);
            }
        }
        (freq, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ids: &[u32]) -> SparseVector {
        SparseVector { indices: ids.to_vec(), values: vec![1.0; ids.len()] }
    }

    #[test]
    fn counts_add_up_per_shard_and_removal_undoes_them() {
        let doc_a = document_terms([&v(&[1, 2]), &v(&[2, 3])]);
        assert_eq!(doc_a, [(1, 1), (2, 2), (3, 1)]);
        let doc_b = document_terms([&v(&[2])]);
        let mut c = TermCounts::default();
        c.add(0, 2, &doc_a);
        c.add(1, 1, &doc_b);
        assert_eq!(c.frequencies(&[2, 3, 9], None), (vec![3, 1, 0], 3));
        assert_eq!(c.frequencies(&[2, 3], Some(&HashSet::from([1]))), (vec![1, 0], 1));
        c.remove(0, 2, &doc_a);
        assert_eq!(c.frequencies(&[1, 2, 3], None), (vec![0, 1, 0], 1));
        c.remove(1, 1, &doc_b);
        assert!(c.shards.is_empty());
    }
}
