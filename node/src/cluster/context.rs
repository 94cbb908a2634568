//! What the storage network's parts share: its configuration, this node's identity, the peer
//! network, the admission verdicts, the peers' catalogs, the collections and the replicator.
//! Placement and the per-collection view are computed here, from those, in one place.

use std::collections::HashMap;
use std::sync::Arc;

use libp2p::PeerId;

use super::admission::Admission;
use super::catalog::{CollectionView, PeerCatalog};
use super::metrics::ClusterMetrics;
use super::replicator::Replicator;
use crate::collections::{Collection, Collections};
use crate::config::ClusterConfig;
use crate::identity::StorageIdentity;
use crate::net::{Net, PeerState};
use crate::placement;

pub(crate) struct Context {
    pub config: ClusterConfig,
    pub me: PeerId,
    pub identity: Arc<StorageIdentity>,
    pub net: Net,
    pub admission: Admission,
    pub catalog: PeerCatalog,
    pub collections: Arc<Collections>,
    pub metrics: Arc<ClusterMetrics>,
    pub replicator: Replicator,
    /// Dimension of the vectors (a peer's query must have it).
    pub dimension: usize,
    /// The stack logs attesters ask for (set once the market component exists).
    pub stack_logs: std::sync::OnceLock<Arc<dyn super::StackLogSource>>,
}

impl Context {
    /// The owners of each shard of `c`: the `replicas` highest-ranked candidates, where the
    /// candidates are this node (when admitted) and the admitted peers that are connected or gone
    /// for less than the re-replication delay.
    pub(crate) fn owners(&self, c: &Collection) -> Vec<Vec<String>> {
        let mut candidates: Vec<String> = Vec::new();
        if self.admission.own().is_ok() {
            candidates.push(self.me.to_string());
        }
        let states: HashMap<PeerId, PeerState> = self.net.peer_states().into_iter().map(|s| (s.peer_id, s)).collect();
        for peer in self.admission.admitted() {
            let present = states.get(&peer).is_some_and(|s| {
                s.connected || s.gone_since.is_some_and(|g| g.elapsed() < self.config.rereplicate_after)
            });
            if present {
                candidates.push(peer.to_string());
            }
        }
        (0..c.shards())
            .map(|s| placement::owners(c.id(), s, c.replicas() as usize, candidates.iter().map(String::as_str)))
            .collect()
    }

    /// `c` as this node sees it: what it holds, and what every admitted peer last said it holds.
    pub(crate) fn view(&self, c: &Collection) -> CollectionView {
        let connected: std::collections::HashSet<PeerId> = self.net.connected().into_iter().collect();
        let peers = self
            .catalog
            .of(c.id(), self.admission.admitted())
            .into_iter()
            .map(|(p, docs)| (p, connected.contains(&p), docs))
            .collect();
        CollectionView::build(c.versions(), &c.live().tombstones, peers)
    }
}
