//! What peers hold: one map per peer of the documents it said it holds (by collection), and the
//! view of one collection built from it and from what this node holds — the newest version of
//! every document, who holds it, and who can answer for each shard.

use std::collections::{BTreeMap, HashMap, HashSet};

use libp2p::PeerId;
use parking_lot::RwLock;

use crate::net::protocol::cluster::Holding;
use crate::placement::shard_of;

/// Who answers for a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Source {
    Local,
    Peer(PeerId),
}

/// A document as a peer reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub version: u64,
    pub len: u64,
    pub path: String,
    pub chunks: u64,
}

/// cid → doc id → what a peer holds of it.
pub(crate) type Holdings = HashMap<String, HashMap<String, Held>>;

/// Every peer's last reported holdings.
#[derive(Default)]
pub(crate) struct PeerCatalog {
    peers: RwLock<HashMap<PeerId, Holdings>>,
}

impl PeerCatalog {
    /// Replaces what `peer` holds with its latest report.
    pub(crate) fn record(&self, peer: PeerId, report: impl IntoIterator<Item = (String, Vec<Holding>)>) {
        let holdings: Holdings = report
            .into_iter()
            .map(|(cid, list)| {
                let docs = list
                    .into_iter()
                    .map(|h| (h.doc_id, Held { version: h.version, len: h.len, path: h.path, chunks: h.chunks }))
                    .collect();
                (cid, docs)
            })
            .collect();
        self.peers.write().insert(peer, holdings);
    }

    /// What `peers` hold of collection `cid`.
    pub(crate) fn of(
        &self,
        cid: &str,
        peers: impl IntoIterator<Item = PeerId>,
    ) -> Vec<(PeerId, HashMap<String, Held>)> {
        let all = self.peers.read();
        peers.into_iter().filter_map(|p| all.get(&p).and_then(|h| h.get(cid)).map(|docs| (p, docs.clone()))).collect()
    }
}

/// The newest version of a document among this node and its admitted peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Newest {
    pub version: u64,
    /// The file's length at that version.
    pub len: u64,
    /// Reachable peers holding that version.
    pub sources: Vec<PeerId>,
}

/// One collection as this node sees it.
#[derive(Debug, Default)]
pub(crate) struct CollectionView {
    /// Every live (not deleted) document, over this node and every admitted peer, reachable or
    /// not: a document only an unreachable peer holds still exists, so its shard is incomplete
    /// rather than silently smaller.
    pub docs: HashMap<String, Newest>,
    /// Reachable admitted peers: doc id → version.
    pub peers: HashMap<PeerId, HashMap<String, u64>>,
    /// Doc id → version held here.
    pub mine: HashMap<String, u64>,
}

/// One shard as seen from here: how many documents it has, and who can answer for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardHolders {
    pub documents: usize,
    /// This node first (when it holds the shard whole), then the peers in the order asked for.
    pub holders: Vec<Source>,
}

impl CollectionView {
    /// Builds the view from what this node holds (`mine`), the collection's tombstones (a
    /// document deleted at version `t` is gone at every version up to `t`), and what admitted
    /// peers hold (`peers`: peer, whether reachable now, its documents).
    pub(crate) fn build(
        mine: HashMap<String, u64>,
        tombstones: &BTreeMap<String, u64>,
        peers: Vec<(PeerId, bool, HashMap<String, Held>)>,
    ) -> Self {
        let dead = |doc: &str, v: u64| tombstones.get(doc).is_some_and(|t| *t >= v);
        let mut docs: HashMap<String, Newest> = HashMap::new();
        for (doc, v) in &mine {
            if !dead(doc, *v) {
                docs.insert(doc.clone(), Newest { version: *v, len: 0, sources: Vec::new() });
            }
        }
        let mut reachable_peers = HashMap::new();
        for (peer, reachable, held) in peers {
            for (doc, h) in &held {
                if dead(doc, h.version) {
                    continue;
                }
                let e = docs.entry(doc.clone()).or_insert(Newest { version: 0, len: 0, sources: Vec::new() });
                if h.version > e.version {
                    *e = Newest { version: h.version, len: h.len, sources: Vec::new() };
                }
                if h.version == e.version {
                    e.len = e.len.max(h.len);
                    if reachable {
                        e.sources.push(peer);
                    }
                }
            }
            if reachable {
                reachable_peers.insert(peer, held.into_iter().map(|(d, h)| (d, h.version)).collect());
            }
        }
        CollectionView { docs, peers: reachable_peers, mine }
    }

    /// Per shard (of `shards`): who holds every one of its documents at its newest version.
    /// `order` gives the order of the reachable peers considered.
    pub(crate) fn holders(&self, shards: u32, order: &[PeerId]) -> Vec<ShardHolders> {
        let mut by_shard: Vec<HashMap<&str, u64>> = vec![HashMap::new(); shards.max(1) as usize];
        for (doc, n) in &self.docs {
            by_shard[shard_of(doc, shards) as usize].insert(doc.as_str(), n.version);
        }
        by_shard
            .into_iter()
            .map(|in_shard| {
                let mut holders = Vec::new();
                if covers(&in_shard, |d| self.mine.get(d).copied()) {
                    holders.push(Source::Local);
                }
                for p in order {
                    if let Some(held) = self.peers.get(p)
                        && covers(&in_shard, |d| held.get(d).copied())
                    {
                        holders.push(Source::Peer(*p));
                    }
                }
                ShardHolders { documents: in_shard.len(), holders }
            })
            .collect()
    }

    /// Documents held here, per shard.
    pub(crate) fn held_here(&self, shards: u32) -> Vec<u64> {
        let mut here = vec![0u64; shards.max(1) as usize];
        for doc in self.mine.keys() {
            here[shard_of(doc, shards) as usize] += 1;
        }
        here
    }

    /// Peers holding every document of `doc`'s newest version (for hand-off checks).
    pub(crate) fn peers_holding(&self, doc: &str, version: u64) -> HashSet<PeerId> {
        self.peers.iter().filter(|(_, held)| held.get(doc).is_some_and(|h| *h >= version)).map(|(p, _)| *p).collect()
    }
}

/// Whether a node's documents (`held`: id → version) cover every document of a shard at its
/// newest known version (`latest`).
pub(crate) fn covers(latest: &HashMap<&str, u64>, held: impl Fn(&str) -> Option<u64>) -> bool {
    latest.iter().all(|(doc, v)| held(doc).is_some_and(|h| h >= *v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(v: u64) -> Held {
        Held { version: v, len: 10 * v, path: String::new(), chunks: 1 }
    }

    #[test]
    fn coverage_needs_every_document_at_its_newest_version() {
        let latest: HashMap<&str, u64> = [("a", 2), ("b", 1)].into();
        assert!(covers(&latest, |d| Some(if d == "a" { 2 } else { 1 })));
        assert!(!covers(&latest, |_| Some(1)), "old version of a");
        assert!(!covers(&latest, |d| if d == "a" { Some(2) } else { None }), "b missing");
        assert!(covers(&HashMap::new(), |_| None), "an empty shard is covered by anyone");
    }

    #[test]
    fn the_newest_version_wins_and_only_reachable_holders_of_it_are_sources() {
        let (p, q, gone) = (PeerId::random(), PeerId::random(), PeerId::random());
        let view = CollectionView::build(
            [("a".to_string(), 1)].into(),
            &BTreeMap::new(),
            vec![
                (p, true, [("a".to_string(), held(2))].into()),
                (q, true, [("a".to_string(), held(1))].into()),
                (gone, false, [("a".to_string(), held(2)), ("only-gone".to_string(), held(5))].into()),
            ],
        );
        assert_eq!(view.docs["a"], Newest { version: 2, len: 20, sources: vec![p] });
        // Held only by an unreachable peer: it exists, nobody reachable can serve it.
        assert_eq!(view.docs["only-gone"].sources, Vec::<PeerId>::new());
        assert!(!view.peers.contains_key(&gone));
        let h = view.holders(1, &[p, q]);
        assert!(h[0].holders.is_empty(), "nobody reachable holds only-gone: the shard has no holder");
    }

    #[test]
    fn a_tombstone_hides_every_version_up_to_it_but_not_a_newer_one() {
        let p = PeerId::random();
        let tombstones: BTreeMap<String, u64> = [("a".to_string(), 3), ("b".to_string(), 3)].into();
        let view = CollectionView::build(
            [("a".to_string(), 3)].into(),
            &tombstones,
            vec![(p, true, [("a".to_string(), held(2)), ("b".to_string(), held(4))].into())],
        );
        assert!(!view.docs.contains_key("a"), "deleted at 3: versions 2 and 3 are gone");
        assert_eq!(view.docs["b"].version, 4, "uploaded again after the delete: kept");
    }

    #[test]
    fn holders_put_this_node_first_then_peers_in_the_order_given() {
        let (p, q) = (PeerId::random(), PeerId::random());
        let docs: HashMap<String, Held> = [("a".to_string(), held(1))].into();
        let view = CollectionView::build(
            [("a".to_string(), 1)].into(),
            &BTreeMap::new(),
            vec![(p, true, docs.clone()), (q, true, docs)],
        );
        let shards = 4;
        let s = shard_of("a", shards) as usize;
        let h = view.holders(shards, &[q, p]);
        assert_eq!(h[s].holders, vec![Source::Local, Source::Peer(q), Source::Peer(p)]);
        assert_eq!(h[s].documents, 1);
        assert_eq!(view.held_here(shards)[s], 1);
    }
}
