//! The storage network: which peers may hold shards (admission), what they hold (catalog), where
//! shards live (placement, `crate::placement`), how documents move (the replicator) and how
//! collection keys travel (HPKE key wrapping), and the rules of all that as pure code (plan).
//!
//! The rest of the node sees it through [`StorageNet`]: a node alone has [`Standalone`], which
//! holds every shard itself and asks nobody; a node with peers has [`network::Replicated`].

mod admission;
mod catalog;
mod context;
mod keywrap;
mod metrics;
pub(crate) mod network;
mod peers;
mod plan;
mod replicator;
mod sync;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use libp2p::PeerId;
use prag_proto::api::{ClusterStatus, PeerView};

pub(crate) use catalog::Source;

use crate::collections::{Collection, SearchHits, ShardQuery};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::PromText;

/// Where the storage network finds the stack logs peers ask for (the market component, which is
/// built after the network).
pub(crate) trait StackLogSource: Send + Sync {
    /// The plaintext log of `stack` for the node whose storage key is `peer_key`, if it may have
    /// it.
    fn log_for(&self, stack: u64, peer_key: &str) -> Result<zeroize::Zeroizing<Vec<u8>>>;
}

/// What the node asks of the storage network.
pub(crate) trait StorageNet: Send + Sync {
    /// How long a remote search may take before its shards are also asked of another replica.
    fn hedge_after(&self) -> Duration;

    /// Per shard of `c`, who can answer for it (this node first when it holds the shard whole,
    /// then peers by round-trip time); None when this node holds everything and nobody need be
    /// asked.
    fn search_sources(&self, c: &Collection) -> Option<BTreeMap<u32, Vec<Source>>>;

    /// Asks `peer` for the rankings `query` asks of `shards` of `c`; question and answer sealed
    /// under the collection key.
    fn ask_search(
        &self,
        c: Arc<Collection>,
        peer: PeerId,
        shards: Vec<u32>,
        query: Arc<ShardQuery>,
    ) -> BoxFuture<'static, Result<SearchHits>>;

    /// Asks `peer` how many chunks of `shards` of `c` hold each of `terms` (and how many chunks
    /// those shards hold); sealed like a search.
    fn ask_term_counts(
        &self,
        c: Arc<Collection>,
        peer: PeerId,
        shards: Vec<u32>,
        terms: Arc<Vec<u32>>,
    ) -> BoxFuture<'static, Result<(Vec<u64>, u64)>>;

    /// The newest version of `doc_id` known anywhere in the network (held here or not).
    fn newest_version(&self, c: &Collection, doc_id: &str) -> Option<u64>;

    /// What admitted peers hold of `c`: (doc id, version, path, chunks).
    fn listing(&self, c: &Collection) -> Vec<(String, u64, String, u64)>;

    /// Connected peers, each with the admission verdict.
    fn peers(&self) -> Vec<PeerView>;

    /// The storage network as this node sees it (None alone).
    fn status(&self) -> Option<ClusterStatus>;

    /// Puts the counters (bytes and documents replicated, transfers, remote searches) into a
    /// status built earlier: they are read live, never stale.
    fn live_counters(&self, status: &mut ClusterStatus);

    /// Appends the storage network's metrics; `status` is the cached status.
    fn render_metrics(&self, out: &mut PromText, status: Option<&ClusterStatus>);

    /// Asks `peer` for stack `stack`'s log (opened here: it travels sealed to this node).
    fn ask_stack_log(&self, peer: PeerId, stack: u64) -> BoxFuture<'static, Result<zeroize::Zeroizing<Vec<u8>>>>;

    /// Tells the network where to find the stack logs peers ask for.
    fn serve_stack_logs(&self, source: Arc<dyn StackLogSource>);
}

/// The storage network of a node alone: it holds every shard (one per collection) and has
/// nobody to ask.
pub(crate) struct Standalone;

impl StorageNet for Standalone {
    fn hedge_after(&self) -> Duration {
        // Never used: with nobody to ask, nothing is hedged.
        Duration::from_secs(86_400)
    }

    fn search_sources(&self, _: &Collection) -> Option<BTreeMap<u32, Vec<Source>>> {
        None
    }

    fn ask_search(
        &self,
        _: Arc<Collection>,
        peer: PeerId,
        _: Vec<u32>,
        _: Arc<ShardQuery>,
    ) -> BoxFuture<'static, Result<SearchHits>> {
        Box::pin(async move {
            Err(Error::new(ErrorKind::Unavailable, format!("this node runs alone: it cannot ask {peer}")))
        })
    }

    fn ask_term_counts(
        &self,
        _: Arc<Collection>,
        peer: PeerId,
        _: Vec<u32>,
        _: Arc<Vec<u32>>,
    ) -> BoxFuture<'static, Result<(Vec<u64>, u64)>> {
        Box::pin(async move {
            Err(Error::new(ErrorKind::Unavailable, format!("this node runs alone: it cannot ask {peer}")))
        })
    }

    fn newest_version(&self, _: &Collection, _: &str) -> Option<u64> {
        None
    }

    fn listing(&self, _: &Collection) -> Vec<(String, u64, String, u64)> {
        Vec::new()
    }

    fn peers(&self) -> Vec<PeerView> {
        Vec::new()
    }

    fn status(&self) -> Option<ClusterStatus> {
        None
    }

    fn live_counters(&self, _: &mut ClusterStatus) {}

    fn render_metrics(&self, _: &mut PromText, _: Option<&ClusterStatus>) {}

    fn ask_stack_log(&self, peer: PeerId, _: u64) -> BoxFuture<'static, Result<zeroize::Zeroizing<Vec<u8>>>> {
        Box::pin(async move {
            Err(Error::new(ErrorKind::Unavailable, format!("this node runs alone: it cannot ask {peer}")))
        })
    }

    fn serve_stack_logs(&self, _: Arc<dyn StackLogSource>) {}
}
