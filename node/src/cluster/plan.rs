//! The storage network's rules, as pure functions: what a node fetches and hands off in a round,
//! and how what a peer says (tombstones, grants) is taken in. The sync round and the replicator
//! only act on what these return.

use std::collections::BTreeMap;

use libp2p::PeerId;

use super::catalog::CollectionView;
use crate::placement::shard_of;

/// A document to fetch: which version, how long, from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub doc_id: String,
    pub version: u64,
    pub len: u64,
    pub sources: Vec<PeerId>,
}

/// What one round does with one collection.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RoundPlan {
    /// Documents of shards this node owns that it lacks (or holds an older version of), with a
    /// reachable holder of the newest version.
    pub fetch: Vec<Fetch>,
    /// Documents held here, of shards this node does not own, that every owner holds at this
    /// version or newer: (doc id, version held here).
    pub hand_off: Vec<(String, u64)>,
}

/// The round's plan for a collection: `me` is this node's peer id, `owners` the owners of each
/// shard (their peer ids, from placement), `view` what exists and who holds it.
pub(crate) fn plan_round(me: &str, owners: &[Vec<String>], view: &CollectionView) -> RoundPlan {
    let shards = owners.len() as u32;
    let owns = |doc: &str| owners.get(shard_of(doc, shards) as usize).is_some_and(|o| o.iter().any(|p| p == me));
    let mut plan = RoundPlan::default();
    for (doc, newest) in &view.docs {
        let behind = view.mine.get(doc).is_none_or(|m| *m < newest.version);
        if owns(doc) && behind && !newest.sources.is_empty() {
            plan.fetch.push(Fetch {
                doc_id: doc.clone(),
                version: newest.version,
                len: newest.len,
                sources: newest.sources.clone(),
            });
        }
    }
    for (doc, v) in &view.mine {
        let Some(o) = owners.get(shard_of(doc, shards) as usize) else { continue };
        if o.is_empty() || o.iter().any(|p| p == me) {
            continue;
        }
        let holding = view.peers_holding(doc, *v);
        if o.iter().all(|owner| holding.iter().any(|p| p.to_string() == *owner)) {
            plan.hand_off.push((doc.clone(), *v));
        }
    }
    plan.fetch.sort_by(|a, b| a.doc_id.cmp(&b.doc_id));
    plan.hand_off.sort();
    plan
}

/// The tombstones of `theirs` that are news to `mine`: unknown documents, or a deletion of a
/// newer version.
pub(crate) fn newer_tombstones(mine: &BTreeMap<String, u64>, theirs: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    theirs.iter().filter(|(d, v)| mine.get(*d).is_none_or(|m| m < *v)).map(|(d, v)| (d.clone(), *v)).collect()
}

/// Whether a tombstone at `tombstone` removes the version `held` here (a newer upload survives).
pub(crate) fn tombstone_removes(held: u64, tombstone: u64) -> bool {
    held <= tombstone
}

/// Whether a peer's grants replace these: the newest change wins.
pub(crate) fn takes_grants(mine: u64, theirs: u64) -> bool {
    theirs > mine
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::cluster::catalog::{Held, Newest};

    fn doc_in_shard(shard: u32, shards: u32, n: usize) -> Vec<String> {
        (0..).map(|i| format!("{i:032x}")).filter(|d| shard_of(d, shards) == shard).take(n).collect()
    }

    fn held(v: u64) -> Held {
        Held { version: v, len: 100, path: String::new(), chunks: 1 }
    }

    #[test]
    fn an_owner_fetches_what_it_lacks_or_holds_older_from_a_reachable_holder() {
        let (p, q) = (PeerId::random(), PeerId::random());
        let me = PeerId::random().to_string();
        let docs = doc_in_shard(0, 1, 3);
        let (lacking, older, current) = (&docs[0], &docs[1], &docs[2]);
        let view = CollectionView::build(
            [(older.clone(), 1), (current.clone(), 2)].into(),
            &BTreeMap::new(),
            vec![(p, true, [(lacking.clone(), held(1)), (older.clone(), held(2)), (current.clone(), held(2))].into())],
        );
        let plan = plan_round(&me, &[vec![me.clone(), q.to_string()]], &view);
        let fetched: Vec<(&str, u64)> = plan.fetch.iter().map(|f| (f.doc_id.as_str(), f.version)).collect();
        let mut want = vec![(lacking.as_str(), 1), (older.as_str(), 2)];
        want.sort();
        assert_eq!(fetched, want);
        assert!(plan.fetch.iter().all(|f| f.sources == vec![p]));
        assert!(plan.hand_off.is_empty(), "an owner keeps its documents");
    }

    #[test]
    fn nothing_is_fetched_for_shards_owned_by_others_or_held_by_nobody_reachable() {
        let (p, gone) = (PeerId::random(), PeerId::random());
        let me = PeerId::random().to_string();
        let docs = doc_in_shard(0, 1, 1);
        let view = CollectionView::build(
            HashMap::new(),
            &BTreeMap::new(),
            vec![(gone, false, [(docs[0].clone(), held(1))].into())],
        );
        assert!(plan_round(&me, &[vec![me.clone()]], &view).fetch.is_empty(), "no reachable source");
        let view = CollectionView::build(
            HashMap::new(),
            &BTreeMap::new(),
            vec![(p, true, [(docs[0].clone(), held(1))].into())],
        );
        assert!(plan_round(&me, &[vec![p.to_string()]], &view).fetch.is_empty(), "not an owner");
    }

    #[test]
    fn a_document_is_handed_off_only_once_every_owner_holds_it_at_least_as_new() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let me = PeerId::random().to_string();
        let doc = doc_in_shard(0, 1, 1).remove(0);
        let owners = [vec![a.to_string(), b.to_string()]];
        let view = |va: Option<u64>, vb: Option<u64>| {
            let mut peers = Vec::new();
            for (p, v) in [(a, va), (b, vb)] {
                let docs: HashMap<String, Held> = v.map(|v| (doc.clone(), held(v))).into_iter().collect();
                peers.push((p, true, docs));
            }
            CollectionView::build([(doc.clone(), 2)].into(), &BTreeMap::new(), peers)
        };
        assert!(plan_round(&me, &owners, &view(Some(2), None)).hand_off.is_empty(), "b lacks it");
        assert!(plan_round(&me, &owners, &view(Some(2), Some(1))).hand_off.is_empty(), "b holds an older one");
        assert_eq!(plan_round(&me, &owners, &view(Some(2), Some(3))).hand_off, vec![(doc.clone(), 2)]);
    }

    #[test]
    fn tombstones_against_newer_versions_and_grants_by_version() {
        let mine: BTreeMap<String, u64> = [("a".to_string(), 5), ("b".to_string(), 1)].into();
        let theirs: BTreeMap<String, u64> = [("a".to_string(), 4), ("b".to_string(), 2), ("c".to_string(), 1)].into();
        assert_eq!(newer_tombstones(&mine, &theirs), vec![("b".to_string(), 2), ("c".to_string(), 1)]);
        assert!(tombstone_removes(2, 2) && tombstone_removes(1, 2));
        assert!(!tombstone_removes(3, 2), "a version uploaded after the delete stays");
        assert!(takes_grants(1, 2) && !takes_grants(2, 2) && !takes_grants(3, 2));
    }

    #[test]
    fn the_view_with_newest_is_what_the_plan_reads() {
        // A guard that the plan uses the view's newest version, not a peer's stale one.
        let p = PeerId::random();
        let me = PeerId::random().to_string();
        let doc = doc_in_shard(0, 1, 1).remove(0);
        let mut view = CollectionView::default();
        view.docs.insert(doc.clone(), Newest { version: 7, len: 70, sources: vec![p] });
        let plan = plan_round(&me, &[vec![me.clone()]], &view);
        assert_eq!(plan.fetch, vec![Fetch { doc_id: doc, version: 7, len: 70, sources: vec![p] }]);
    }
}
