//! The plan of one distributed search, as pure code: which replica is asked for which shards, what
//! happens when one answers, fails or is slow (the hedge), and which shards end up unserved. The
//! driver in `mod.rs` only runs the launches this returns and feeds back what came of them, so
//! every rule here is tested without a process or a socket.
//!
//! Rules:
//! - Each shard goes first to its first candidate (this node when it holds the shard whole, then
//!   peers by round-trip time); shards with no candidate are missing from the start.
//! - A failed launch hands each of its shards that nothing else is still working on to that
//!   shard's next untried candidate; a shard with none left is missing.
//! - The hedge fires once: every shard still unanswered is also asked of its next untried
//!   candidate, if it has one (if not, the launch in flight may still answer).
//! - The first answer for a shard wins; later ones for it are ignored.
//! - The search is over when every shard is answered or missing, or nothing is in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use prag_proto::api::Hit;

pub(crate) use crate::cluster::Source;

/// Ask `source` for `shards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub source: Source,
    pub shards: Vec<u32>,
}

/// One search's state.
#[derive(Debug)]
pub(crate) struct SearchPlan {
    /// Per shard: who may answer for it, in order of preference.
    candidates: BTreeMap<u32, Vec<Source>>,
    tried: HashMap<u32, HashSet<Source>>,
    /// Launches working on each shard right now.
    in_flight: HashMap<u32, usize>,
    unanswered: BTreeSet<u32>,
    missing: BTreeSet<u32>,
    hedged: bool,
}

impl SearchPlan {
    /// A plan over `candidates` (every shard of the collection must have an entry, possibly
    /// empty), and the launches to start with.
    pub(crate) fn new(candidates: BTreeMap<u32, Vec<Source>>) -> (Self, Vec<Launch>) {
        let unanswered: BTreeSet<u32> = candidates.keys().copied().collect();
        let mut plan = SearchPlan {
            candidates,
            tried: HashMap::new(),
            in_flight: HashMap::new(),
            unanswered: unanswered.clone(),
            missing: BTreeSet::new(),
            hedged: false,
        };
        let launches = plan.launch(unanswered.into_iter().collect(), true);
        (plan, launches)
    }

    /// `source` answered for `shards`.
    pub(crate) fn on_answer(&mut self, source: Source, shards: &[u32]) {
        let _ = source;
        self.landed(shards);
        for s in shards {
            self.unanswered.remove(s);
        }
    }

    /// `source` failed to answer for `shards`: the next launches.
    pub(crate) fn on_failure(&mut self, source: Source, shards: &[u32]) -> Vec<Launch> {
        let _ = source;
        self.landed(shards);
        let orphaned: Vec<u32> = shards
            .iter()
            .copied()
            .filter(|s| self.unanswered.contains(s) && self.in_flight.get(s).copied().unwrap_or(0) == 0)
            .collect();
        self.launch(orphaned, true)
    }

    /// The search is slow: every unanswered shard is also asked of its next candidate. Once.
    pub(crate) fn on_hedge(&mut self) -> Vec<Launch> {
        if self.hedged {
            return Vec::new();
        }
        self.hedged = true;
        let slow: Vec<u32> = self.unanswered.iter().copied().collect();
        self.launch(slow, false)
    }

    pub(crate) fn hedged(&self) -> bool {
        self.hedged
    }

    /// Whether nothing more can come: every shard answered or missing, or nothing in flight.
    pub(crate) fn is_done(&self) -> bool {
        self.unanswered.is_empty() || self.in_flight.values().all(|n| *n == 0)
    }

    /// The shards no replica served, sorted.
    pub(crate) fn missing(&self) -> Vec<u32> {
        self.missing.union(&self.unanswered).copied().collect()
    }

    fn landed(&mut self, shards: &[u32]) {
        for s in shards {
            if let Some(n) = self.in_flight.get_mut(s) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Launches for `shards`, each to its first untried candidate, grouped by candidate. With
    /// `give_up`, a shard with no candidate left is missing (and no longer awaited).
    fn launch(&mut self, shards: Vec<u32>, give_up: bool) -> Vec<Launch> {
        let mut groups: BTreeMap<Source, Vec<u32>> = BTreeMap::new();
        for s in shards {
            let tried = self.tried.entry(s).or_default();
            let next = self.candidates.get(&s).and_then(|c| c.iter().find(|src| !tried.contains(src)).copied());
            match next {
                Some(src) => {
                    tried.insert(src);
                    *self.in_flight.entry(s).or_default() += 1;
                    groups.entry(src).or_default().push(s);
                }
                None if give_up => {
                    self.unanswered.remove(&s);
                    self.missing.insert(s);
                }
                None => {}
            }
        }
        groups.into_iter().map(|(source, shards)| Launch { source, shards }).collect()
    }
}

/// The best `k` of the answers: one hit per chunk (the same chunk may come from two replicas of
/// a shard), highest score first, ties broken by document and chunk so the order is stable.
pub(crate) fn merge(hits: Vec<Hit>, k: usize) -> Vec<Hit> {
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
    use libp2p::PeerId;

    use super::*;

    fn peers() -> (Source, Source, Source) {
        (Source::Peer(PeerId::random()), Source::Peer(PeerId::random()), Source::Peer(PeerId::random()))
    }

    fn launch(source: Source, shards: &[u32]) -> Launch {
        Launch { source, shards: shards.to_vec() }
    }

    #[test]
    fn shards_go_to_their_first_candidate_grouped_and_uncovered_ones_are_missing_at_once() {
        let (a, b, _) = peers();
        let cands = BTreeMap::from([(0, vec![Source::Local, a]), (1, vec![a, b]), (2, vec![a]), (3, vec![])]);
        let (mut plan, first) = SearchPlan::new(cands);
        let mut want = vec![launch(Source::Local, &[0]), launch(a, &[1, 2])];
        want.sort_by_key(|l| l.source);
        assert_eq!(first, want);
        assert_eq!(plan.missing(), vec![0, 1, 2, 3], "unanswered so far, and 3 for good");
        plan.on_answer(Source::Local, &[0]);
        plan.on_answer(a, &[1, 2]);
        assert!(plan.is_done());
        assert_eq!(plan.missing(), vec![3]);
    }

    #[test]
    fn a_failed_replica_is_replaced_by_the_next_and_a_shard_with_none_left_is_missing() {
        let (a, b, _) = peers();
        let cands = BTreeMap::from([(0, vec![a, b]), (1, vec![a])]);
        let (mut plan, first) = SearchPlan::new(cands);
        assert_eq!(first, vec![launch(a, &[0, 1])]);
        let next = plan.on_failure(a, &[0, 1]);
        assert_eq!(next, vec![launch(b, &[0])]);
        assert!(!plan.is_done());
        plan.on_answer(b, &[0]);
        assert!(plan.is_done());
        assert_eq!(plan.missing(), vec![1]);
    }

    #[test]
    fn the_hedge_asks_the_next_replica_once_and_the_first_answer_wins() {
        let (a, b, c) = peers();
        let cands = BTreeMap::from([(0, vec![a, b, c])]);
        let (mut plan, first) = SearchPlan::new(cands);
        assert_eq!(first, vec![launch(a, &[0])]);
        assert_eq!(plan.on_hedge(), vec![launch(b, &[0])]);
        assert!(plan.on_hedge().is_empty(), "the hedge fires once");
        plan.on_answer(b, &[0]);
        assert!(plan.is_done(), "the hedged replica answered: no need to wait for the slow one");
        assert!(plan.missing().is_empty());
    }

    #[test]
    fn a_replica_failing_after_the_hedge_fired_asks_nobody_new_while_the_hedge_is_in_flight() {
        let (a, b, c) = peers();
        let cands = BTreeMap::from([(0, vec![a, b, c])]);
        let (mut plan, _) = SearchPlan::new(cands);
        assert_eq!(plan.on_hedge(), vec![launch(b, &[0])]);
        assert!(plan.on_failure(a, &[0]).is_empty(), "b is still working on shard 0");
        assert!(!plan.is_done());
        // Then b fails too: the last candidate is asked.
        assert_eq!(plan.on_failure(b, &[0]), vec![launch(c, &[0])]);
        assert_eq!(plan.on_failure(c, &[0]), vec![]);
        assert!(plan.is_done());
        assert_eq!(plan.missing(), vec![0]);
    }

    #[test]
    fn a_hedge_with_no_other_replica_waits_for_the_one_in_flight() {
        let (a, _, _) = peers();
        let (mut plan, _) = SearchPlan::new(BTreeMap::from([(0, vec![a]), (1, vec![Source::Local])]));
        plan.on_answer(Source::Local, &[1]);
        assert!(plan.on_hedge().is_empty());
        assert!(!plan.is_done(), "shard 0 is still awaited, not given up");
        plan.on_answer(a, &[0]);
        assert!(plan.is_done());
        assert!(plan.missing().is_empty());
    }

    #[test]
    fn a_late_failure_of_a_shard_already_answered_changes_nothing() {
        let (a, b, _) = peers();
        let (mut plan, _) = SearchPlan::new(BTreeMap::from([(0, vec![a, b])]));
        plan.on_hedge();
        plan.on_answer(b, &[0]);
        assert!(plan.on_failure(a, &[0]).is_empty());
        assert!(plan.is_done());
        assert!(plan.missing().is_empty());
    }

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
}
