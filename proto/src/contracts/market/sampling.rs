//! Drawing nodes, from randomness the ledger supplies (no I/O, no randomness of its own).
//!
//! The seed of each draw is `SHA-256("prag-market-rng-v1" ‖ entry randomness ‖ transaction
//! signature)`; the entry randomness is revealed from a chain the orderer committed to one entry
//! earlier (see `ledger`), so the sender cannot know it when signing and the orderer cannot pick
//! it after seeing the transaction. Indices are drawn without modulo bias (rejection sampling).

use sha2::{Digest, Sha256};

/// A deterministic stream of u64s: SHA-256 of the seed and a counter.
#[derive(Debug, Clone)]
pub struct Rng {
    seed: [u8; 32],
    counter: u64,
}

impl Rng {
    pub fn new(seed: [u8; 32]) -> Self {
        Rng { seed, counter: 0 }
    }

    /// A sub-stream for one purpose (say "stack" and its id), so two draws never share values.
    pub fn for_purpose(seed: &[u8; 32], purpose: &str, id: u64) -> Self {
        let d = Sha256::new().chain_update(seed).chain_update(purpose.as_bytes()).chain_update(id.to_le_bytes());
        Rng::new(d.finalize().into())
    }

    pub fn next_u64(&mut self) -> u64 {
        let d = Sha256::new().chain_update(self.seed).chain_update(self.counter.to_le_bytes()).finalize();
        self.counter += 1;
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_le_bytes(b)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        // Values at or above the largest multiple of n are redrawn.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// `k` distinct items of `items`, in draw order (a partial Fisher–Yates shuffle); None when
    /// there are fewer than `k`.
    pub fn choose_distinct<T: Clone>(&mut self, items: &[T], k: usize) -> Option<Vec<T>> {
        if items.len() < k {
            return None;
        }
        let mut pool = items.to_vec();
        for i in 0..k {
            let j = i + self.below((pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(k);
        Some(pool)
    }
}

/// The seed of a transaction's draws.
pub fn seed(entry_random: &[u8; 32], tx_signature: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"prag-market-rng-v1")
        .chain_update(entry_random)
        .chain_update(tx_signature)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_distinct_and_roughly_uniform() {
        let mut a = Rng::new([7; 32]);
        let mut b = Rng::new([7; 32]);
        assert_eq!(a.next_u64(), b.next_u64());
        let items: Vec<u64> = (1..=10).collect();
        for round in 0..200u64 {
            let mut r = Rng::for_purpose(&[1; 32], "t", round);
            let got = r.choose_distinct(&items, 4).expect("4 of 10");
            let set: std::collections::BTreeSet<_> = got.iter().collect();
            assert_eq!(set.len(), 4, "without replacement");
        }
        assert!(Rng::new([0; 32]).choose_distinct(&items, 11).is_none());
        let mut counts = [0u32; 3];
        let mut r = Rng::new([3; 32]);
        for _ in 0..3000 {
            counts[r.below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (850..1150).contains(c)), "{counts:?}");
    }
}
