//! Fusing the dense and the keyword ranking into one, as pure code: a convex combination of
//! their min-max normalised scores, `α·dense + (1 − α)·keyword`, a candidate missing from a
//! ranking scoring 0 there. The measured choice: on the tuning set (`benches/eval/make-sets
//! tuning`) α = 0.5 over the top 30 of each gave MRR@10 0.822, reciprocal-rank fusion with the
//! usual k = 60 gave 0.801, and the best RRF tried (k = 20, the dense ranking weighted 1.5) 0.822:
//! as good, with two parameters instead of one.
//! Normalised over the merged rankings, which a distributed search has whole, so a network
//! fuses exactly as one node would. Ties go to the lower key, so the order is the same everywhere.

use std::collections::HashMap;
use std::hash::Hash;

use prag_proto::api::SearchMode;

/// The dense ranking's weight, α (0.5 was best of 0.3–0.8 on the tuning set).
pub(crate) const DENSE_WEIGHT: f32 = 0.5;

/// How deep each ranking is taken before fusing, for an answer of `k`.
pub(crate) fn depth(k: usize) -> usize {
    (k * 3).clamp(30, crate::collections::MAX_DEPTH)
}

/// Sorts a ranked list the one way every node does: score descending, then key ascending.
pub(crate) fn rank<K: Ord>(list: &mut [(K, f32)]) {
    list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// The answer of `mode` from the two rankings (each ranked, best first): the top `k` of one of
/// them, or of their fusion. The one rule a node alone and a network's merged answers both apply.
pub(crate) fn choose<K: Ord + Hash + Clone>(
    mode: SearchMode,
    dense: &[(K, f32)],
    sparse: &[(K, f32)],
    k: usize,
) -> Vec<(K, f32)> {
    match mode {
        SearchMode::Dense => dense.iter().take(k).cloned().collect(),
        SearchMode::Sparse => sparse.iter().take(k).cloned().collect(),
        SearchMode::Hybrid => convex(dense, sparse, k),
    }
}

/// Each score of `list` mapped to [0, 1] by the list's own minimum and maximum (all 1 when they
/// are equal).
fn normalised<K: Hash + Eq + Clone>(list: &[(K, f32)]) -> HashMap<K, f32> {
    let (lo, hi) = list.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| (lo.min(*s), hi.max(*s)));
    list.iter().map(|(k, s)| (k.clone(), if hi > lo { (s - lo) / (hi - lo) } else { 1.0 })).collect()
}

/// The top `k` of the fusion of `dense` and `sparse` (each already ranked, best first), with
/// their fused scores.
pub(crate) fn convex<K: Ord + Hash + Clone>(dense: &[(K, f32)], sparse: &[(K, f32)], k: usize) -> Vec<(K, f32)> {
    let (d, s) = (normalised(dense), normalised(sparse));
    let mut fused: HashMap<K, f32> = HashMap::new();
    for (key, v) in d {
        *fused.entry(key).or_default() += DENSE_WEIGHT * v;
    }
    for (key, v) in s {
        *fused.entry(key).or_default() += (1.0 - DENSE_WEIGHT) * v;
    }
    let mut out: Vec<(K, f32)> = fused.into_iter().collect();
    rank(&mut out);
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_normalised_per_ranking_and_combined() {
        // Dense a 1.0, b 0.5, c 0; keyword d 1.0, b 0.8, a 0.
        let dense = [("a", 0.9), ("b", 0.7), ("c", 0.5)];
        let sparse = [("d", 12.0), ("b", 10.0), ("a", 2.0)];
        let fused = convex(&dense, &sparse, 4);
        let keys: Vec<&str> = fused.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["b", "a", "d", "c"]);
        assert!((fused[0].1 - (0.5 * 0.5 + 0.5 * 0.8)).abs() < 1e-6);
        assert!((fused[1].1 - 0.5).abs() < 1e-6 && (fused[2].1 - 0.5).abs() < 1e-6, "a and d tie at 0.5: key order");
    }

    #[test]
    fn one_empty_ranking_leaves_the_other_order_and_equal_scores_count_fully() {
        let only = convex(&[("q", 0.5), ("p", 0.4)], &[], 5);
        assert_eq!(only.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["q", "p"]);
        let single = convex(&[("z", 0.3)], &[("y", 7.0)], 2);
        assert_eq!(single.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["y", "z"], "both 0.5: key order");
    }

    #[test]
    fn rank_orders_by_score_then_key() {
        let mut l = vec![(3, 0.5), (1, 0.5), (2, 0.9)];
        rank(&mut l);
        assert_eq!(l, [(2, 0.9), (1, 0.5), (3, 0.5)]);
    }
}
