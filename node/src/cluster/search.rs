//! The pure parts of distributed retrieval: which replica to ask for which shards, and merging
//! their answers into the top `k` a single node would give.

use std::collections::{BTreeMap, HashMap, HashSet};

use libp2p::PeerId;

use prag_proto::api::Hit;

/// Who answers for a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Local,
    Peer(PeerId),
}

/// Whether a node's documents (`held`: id → version) cover every document of a shard at its
/// newest known version (`latest`).
pub fn covers(latest: &HashMap<&str, u64>, held: impl Fn(&str) -> Option<u64>) -> bool {
    latest.iter().all(|(doc, v)| held(doc).is_some_and(|h| h >= *v))
}

/// For each shard in `shards`, the first candidate not yet tried for it, grouped by candidate;
/// and the shards with no candidate left.
pub fn assign(
    shards: &[u32],
    candidates: &BTreeMap<u32, Vec<Source>>,
    tried: &HashMap<u32, HashSet<Source>>,
) -> (BTreeMap<Source, Vec<u32>>, Vec<u32>) {
    let mut groups: BTreeMap<Source, Vec<u32>> = BTreeMap::new();
    let mut none_left = Vec::new();
    for &s in shards {
        let next =
            candidates.get(&s).and_then(|c| c.iter().find(|src| !tried.get(&s).is_some_and(|t| t.contains(src))));
        match next {
            Some(src) => groups.entry(*src).or_default().push(s),
            None => none_left.push(s),
        }
    }
    (groups, none_left)
}

/// The best `k` of the answers: one hit per chunk (the same chunk may come from two replicas of
/// a shard), highest score first, ties broken by document and chunk so the order is stable.
pub fn merge(hits: Vec<Hit>, k: usize) -> Vec<Hit> {
    let mut best: HashMap<(String, u32), Hit> = HashMap::new();
    for h in hits {
        let key = (h.doc_id.clone(), h.chunk);
        match best.get(&key) {
            Some(b) if b.score >= h.score => {}
            _ => {
                best.insert(key, h);
            }
        }
    }
    let mut out: Vec<Hit> = best.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.doc_id.cmp(&b.doc_id)).then(a.chunk.cmp(&b.chunk)));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(doc: &str, chunk: u32, score: f32) -> Hit {
        Hit { doc_id: doc.into(), path: String::new(), chunk, score, text: String::new() }
    }

    #[test]
    fn merge_is_the_global_top_k() {
        // Two shards' answers, each its own top 3, plus a duplicate from a second replica.
        let a = vec![hit("d1", 0, 0.9), hit("d1", 1, 0.5), hit("d2", 0, 0.4)];
        let b = vec![hit("d3", 0, 0.8), hit("d3", 1, 0.7), hit("d4", 0, 0.1)];
        let dup = vec![hit("d3", 0, 0.8)];
        let merged = merge([a, b, dup].concat(), 3);
        let got: Vec<(&str, u32)> = merged.iter().map(|h| (h.doc_id.as_str(), h.chunk)).collect();
        assert_eq!(got, [("d1", 0), ("d3", 0), ("d3", 1)]);
    }

    #[test]
    fn assignment_skips_tried_replicas_and_reports_uncovered_shards() {
        let p1 = Source::Peer(PeerId::random());
        let p2 = Source::Peer(PeerId::random());
        let cands: BTreeMap<u32, Vec<Source>> =
            [(0, vec![Source::Local, p1]), (1, vec![p1, p2]), (2, vec![p2]), (3, vec![])].into();
        let (groups, none) = assign(&[0, 1, 2, 3], &cands, &HashMap::new());
        assert_eq!(groups[&Source::Local], vec![0]);
        assert_eq!(groups[&p1], vec![1]);
        assert_eq!(groups[&p2], vec![2]);
        assert_eq!(none, vec![3]);
        let tried: HashMap<u32, HashSet<Source>> = [(1, [p1].into()), (2, [p2].into())].into();
        let (groups, none) = assign(&[1, 2], &cands, &tried);
        assert_eq!(groups[&p2], vec![1]);
        assert_eq!(none, vec![2]);
    }

    #[test]
    fn coverage_needs_every_document_at_its_newest_version() {
        let latest: HashMap<&str, u64> = [("a", 2), ("b", 1)].into();
        assert!(covers(&latest, |d| Some(if d == "a" { 2 } else { 1 })));
        assert!(!covers(&latest, |_| Some(1)), "old version of a");
        assert!(!covers(&latest, |d| if d == "a" { Some(2) } else { None }), "b missing");
        assert!(covers(&HashMap::new(), |_| None), "an empty shard is covered by anyone");
    }
}
