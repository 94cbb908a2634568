//! How a node runs: every knob in one place, with its default, and [`NodeConfig::validate`], which
//! refuses a value out of range at start rather than clamping it. The `prag node` command builds a
//! `NodeConfig` from its flags and environment (one field per flag); benchmarks and tests start
//! from [`NodeConfig::new`] and change what they need.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use libp2p::Multiaddr;

pub use crate::attest::AttestationMode;
use crate::error::{Error, Result};
pub use crate::extract::SandboxConfig;

/// Everything about one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub index: IndexConfig,
    pub ingest: IngestConfig,
    /// Chain id of the contracts' ledger this node creates (with an admin key, on its first start).
    pub chain_id: String,
    /// The rest of the genesis this node writes when it creates the ledger.
    pub genesis: GenesisConfig,
    pub access: AccessConfig,
    /// The peer network; `None` runs the node alone.
    pub net: Option<NetConfig>,
    /// Shards, replicas and transfers (in a network).
    pub cluster: ClusterConfig,
    pub limits: LimitsConfig,
    pub status: StatusConfig,
    /// Where the HTTP API listens, and the bounds of its server loop.
    pub server: ServerConfig,
    /// The `prag` binary to run `prag internal-janitor` with, which removes the embedded index's
    /// plain files if this process dies without doing so (SIGKILL, abort). None: no janitor.
    pub janitor_exe: Option<PathBuf>,
    /// This node's market duties (settlement, claims, attestation).
    pub market: MarketConfig,
}

/// This node's market duties.
#[derive(Clone)]
pub struct MarketConfig {
    /// How often it looks for stacks to settle, tickets to claim and logs to attest.
    pub interval: Duration,
    /// Tests only (the `prag-faulty` binary): what this node does wrong to paid answers.
    pub fault: Option<std::sync::Arc<dyn crate::fault::AnswerFault>>,
}

impl std::fmt::Debug for MarketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarketConfig")
            .field("interval", &self.interval)
            .field("fault", &self.fault.as_ref().map(|x| x.name().to_string()))
            .finish()
    }
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig { interval: Duration::from_secs(2), fault: None }
    }
}

/// What a new ledger's genesis holds besides its admin and chain id (read only when this node
/// creates the ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisConfig {
    /// Opening balances: (secret1… address, amount).
    pub accounts: Vec<(String, u128)>,
    /// Let the admin mint (development networks).
    pub allow_mint: bool,
    /// Seconds per compute-market epoch.
    pub market_epoch_secs: u64,
}

impl Default for GenesisConfig {
    fn default() -> Self {
        GenesisConfig { accounts: Vec::new(), allow_mint: false, market_epoch_secs: 86_400 }
    }
}

/// Which vector engine holds the index.
#[derive(Clone, PartialEq, Eq)]
pub enum IndexConfig {
    /// qdrant-edge in process, its live files under `dir` (default: a directory in /dev/shm).
    Embedded { dir: Option<PathBuf> },
    /// A Qdrant server at `url` (its gRPC port); vectors are rotated by a per-collection secret.
    Remote { url: String, api_key: Option<String> },
}

impl std::fmt::Debug for IndexConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexConfig::Embedded { dir } => f.debug_struct("Embedded").field("dir", dir).finish(),
            // The API key is a secret: never printed.
            IndexConfig::Remote { url, api_key } => {
                f.debug_struct("Remote").field("url", url).field("api_key", &api_key.as_ref().map(|_| "…")).finish()
            }
        }
    }
}

/// Turning files into chunks.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Longest chunk in tokens (at most the model's window less its two special tokens).
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks (fewer than `chunk_tokens`).
    pub chunk_overlap: usize,
    /// Chunks follow the document's structure (headings, sections, blocks) and start with its
    /// title and section path; off, they are plain windows of `chunk_tokens` (the old way).
    pub structured_chunks: bool,
    /// Largest accepted file, and most text one upload may yield, in bytes.
    pub max_file_bytes: usize,
    /// How long the index optimizer waits after an ingest for more to arrive before it runs.
    pub optimize_debounce: Duration,
}

/// Who may retrieve, and who may watch.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `hardware` (default) or `dev` (development attestation reports accepted; loud).
    pub attestation: AttestationMode,
    /// The attestation policy file (TOML); reloaded when it changes. None: the built-in default.
    pub policy: Option<PathBuf>,
    /// How often the policy file is looked at for changes (and missing collateral fetched).
    pub policy_poll: Duration,
    /// How recent a worker's last liveliness answer must be, in seconds.
    pub max_liveliness_age_secs: u64,
    /// Canonical hex public keys allowed to read the operator endpoints besides the contracts'
    /// admin.
    pub operators: Vec<String>,
    /// PCCS (or Intel PCS) URL for TDX collateral that reports do not carry.
    pub pccs_url: Option<String>,
    /// This node's own attestation report (binding its storage key), served to clients of the
    /// owner's channel. None: from the TEE (configfs-tsm), or a development report in `dev` mode.
    pub self_report: Option<PathBuf>,
}

/// Where to listen for peers, whom to dial, and the peer network's timers.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    pub mdns: bool,
    /// How often bootstrap peers that went away are dialled again.
    pub redial_interval: Duration,
    /// How often every connected peer is asked for ledger entries this node lacks.
    pub catch_up_interval: Duration,
    /// How long a ledger request to a peer may take.
    pub ledger_request_timeout: Duration,
    /// How long a storage request (sync, a transfer piece, a remote search) may take.
    pub cluster_request_timeout: Duration,
    /// How long a connection with nothing on it stays open.
    pub idle_connection_timeout: Duration,
}

impl NetConfig {
    /// The defaults, listening on `listen` and dialling `peers`.
    pub fn new(listen: Vec<Multiaddr>, peers: Vec<Multiaddr>) -> Self {
        NetConfig {
            listen,
            peers,
            mdns: false,
            redial_interval: Duration::from_secs(2),
            catch_up_interval: Duration::from_secs(10),
            ledger_request_timeout: Duration::from_secs(30),
            cluster_request_timeout: Duration::from_secs(60),
            idle_connection_timeout: Duration::from_secs(120),
        }
    }
}

/// How shards are laid out and moved.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Shards per new collection (1..=1024).
    pub shards: u32,
    /// Copies of each shard (1..=16).
    pub replicas: u32,
    /// How long a vanished node keeps its place before its shards are copied elsewhere.
    pub rereplicate_after: Duration,
    /// How long a remote search may take before the same shards are asked of another replica.
    pub hedge_after: Duration,
    /// How often the node syncs catalogs and holdings with its peers (at least 50 ms).
    pub sync_interval: Duration,
    /// Incoming shard bytes per second, all transfers together (0: unlimited).
    pub transfer_rate: u64,
    /// Bytes per transfer request (1 KiB..=64 MiB).
    pub piece_bytes: u32,
    /// Transfers running at once (1..=64).
    pub max_transfers: usize,
}

/// Bounds on what callers may hold of the node.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Collections one key may own on this node.
    pub max_collections_per_key: usize,
    /// Collections on this node in all (keys cost nothing to make).
    pub max_collections: usize,
    /// Bytes of request bodies one key may have in flight.
    pub inflight_bytes_per_key: u64,
    /// Bytes of request bodies all callers together may have in flight.
    pub inflight_bytes: u64,
    /// Bytes of bodies of unsigned routes (ledger) in flight, all together.
    pub public_inflight_bytes: u64,
    /// Recent request nonces remembered (replay protection); when full, requests are refused.
    pub nonce_capacity: usize,
    /// Document extraction's sandbox.
    pub extract: SandboxConfig,
}

/// The status the node reports is a snapshot, rebuilt in the background.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// How often the snapshot is rebuilt (it is also rebuilt shortly after every change).
    pub refresh_interval: Duration,
    /// How often the bytes under the data directory are counted (a walk of every file).
    pub disk_usage_interval: Duration,
}

/// The HTTP server loop's bounds.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the API listens.
    pub api: SocketAddr,
    /// Open connections; at the limit the longest-open idle one is closed for a newcomer.
    pub max_connections: usize,
    /// How long a client has to send a request's head (also how long an idle connection stays).
    pub header_timeout: Duration,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api: SocketAddr::from(([127, 0, 0, 1], 7700)),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
        }
    }
}

impl NodeConfig {
    /// The defaults for a node keeping its data in `data_dir`, alone, in hardware attestation mode.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let max_file_bytes = 64 << 20;
        NodeConfig {
            data_dir: data_dir.into(),
            index: IndexConfig::Embedded { dir: None },
            ingest: IngestConfig {
                chunk_tokens: 200,
                chunk_overlap: 32,
                structured_chunks: true,
                max_file_bytes,
                optimize_debounce: Duration::from_millis(500),
            },
            chain_id: "prag-1".into(),
            genesis: GenesisConfig::default(),
            access: AccessConfig {
                attestation: AttestationMode::Hardware,
                policy: None,
                policy_poll: Duration::from_secs(2),
                max_liveliness_age_secs: 900,
                operators: Vec::new(),
                pccs_url: None,
                self_report: None,
            },
            net: None,
            cluster: ClusterConfig {
                shards: 4,
                replicas: 2,
                rereplicate_after: Duration::from_secs(60),
                hedge_after: Duration::from_millis(250),
                sync_interval: Duration::from_secs(1),
                transfer_rate: 256 << 20,
                piece_bytes: 4 << 20,
                max_transfers: 4,
            },
            limits: LimitsConfig {
                max_collections_per_key: 16,
                max_collections: 4096,
                inflight_bytes_per_key: 256 << 20,
                inflight_bytes: 1 << 30,
                public_inflight_bytes: 64 << 20,
                nonce_capacity: crate::auth::DEFAULT_CAPACITY,
                extract: SandboxConfig::for_current_exe(max_file_bytes),
            },
            status: StatusConfig {
                refresh_interval: Duration::from_secs(1),
                disk_usage_interval: Duration::from_secs(30),
            },
            server: ServerConfig::default(),
            janitor_exe: None,
            market: MarketConfig::default(),
        }
    }

    /// Checks every value against its range; the error names the setting (as its flag) and the
    /// range. Values that depend on the model (the chunk length) are checked by
    /// [`NodeConfig::validate_for_model`].
    pub fn validate(&self) -> Result<()> {
        let i = &self.ingest;
        in_range("--chunk-tokens", i.chunk_tokens as u64, 8, u64::MAX)?;
        if i.chunk_overlap >= i.chunk_tokens {
            return Err(Error::config(format!(
                "--chunk-overlap {} must be smaller than --chunk-tokens {}",
                i.chunk_overlap, i.chunk_tokens
            )));
        }
        in_range("--max-file-mb", i.max_file_bytes as u64, 1 << 20, 4 << 30)?;
        if self.chain_id.is_empty() || self.chain_id.len() > 64 {
            return Err(Error::config("--chain-id must be 1 to 64 characters"));
        }
        let g = &self.genesis;
        in_range("--market-epoch-secs", g.market_epoch_secs, 1, prag_proto::ledger::MAX_MARKET_EPOCH_SECS)?;
        in_range(
            "--genesis-account (count)",
            g.accounts.len() as u64,
            0,
            prag_proto::contracts::bank::MAX_GENESIS_ACCOUNTS as u64,
        )?;
        if let Some((a, _)) = g.accounts.iter().find(|(a, _)| prag_proto::contracts::check_address("", a).is_err()) {
            return Err(Error::config(format!("--genesis-account {a:?}: not a secret1… address")));
        }
        if let IndexConfig::Remote { url, .. } = &self.index
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::config(format!(
                "--index qdrant=URL needs the server's gRPC address, e.g. qdrant=http://127.0.0.1:6334; got {url:?}"
            )));
        }
        let a = &self.access;
        at_least("--policy-poll-ms", a.policy_poll, Duration::from_millis(100))?;
        in_range("--max-liveliness-age", a.max_liveliness_age_secs, 1, 30 * 86_400)?;
        if let Some(n) = &self.net {
            at_least("--redial-ms", n.redial_interval, Duration::from_millis(100))?;
            at_least("--catch-up-ms", n.catch_up_interval, Duration::from_millis(100))?;
            at_least("--ledger-request-timeout-ms", n.ledger_request_timeout, Duration::from_millis(100))?;
            at_least("--cluster-request-timeout-ms", n.cluster_request_timeout, Duration::from_millis(100))?;
            at_least("--idle-connection-timeout", n.idle_connection_timeout, Duration::from_secs(1))?;
        }
        let c = &self.cluster;
        in_range("--shards", c.shards.into(), 1, 1024)?;
        in_range("--replicas", c.replicas.into(), 1, 16)?;
        in_range("--transfer-piece", c.piece_bytes.into(), 1024, 64 << 20)?;
        in_range("--max-transfers", c.max_transfers as u64, 1, 64)?;
        at_least("--sync-interval-ms", c.sync_interval, Duration::from_millis(50))?;
        at_least("--hedge-after-ms", c.hedge_after, Duration::from_millis(1))?;
        let l = &self.limits;
        in_range("--max-collections", l.max_collections as u64, 1, 1 << 20)?;
        in_range("--max-collections-per-key", l.max_collections_per_key as u64, 1, 1 << 20)?;
        in_range("--max-inflight-mb-per-key", l.inflight_bytes_per_key, 1 << 20, u64::MAX)?;
        in_range("--max-inflight-mb", l.inflight_bytes, 1 << 20, u64::MAX)?;
        in_range("unsigned bodies in flight", l.public_inflight_bytes, 1 << 20, u64::MAX)?;
        in_range("nonce memory", l.nonce_capacity as u64, 1, u64::MAX)?;
        let x = &l.extract;
        in_range("--extract-memory-mb", x.memory_mb, 64, 1 << 20)?;
        in_range("--extract-timeout", x.cpu_secs, 1, 3600)?;
        in_range("--extract-concurrency", x.concurrency as u64, 1, 1024)?;
        in_range("extraction stack", x.stack_mb as u64, 1, 1024)?;
        let s = &self.status;
        at_least("--status-refresh-ms", s.refresh_interval, Duration::from_millis(10))?;
        at_least("--disk-usage-interval", s.disk_usage_interval, Duration::from_secs(1))?;
        let v = &self.server;
        in_range("--max-connections", v.max_connections as u64, 1, 1 << 20)?;
        at_least("--header-timeout", v.header_timeout, Duration::from_secs(1))?;
        in_range("largest request head", v.max_header_bytes as u64, 8192, 1 << 20)?;
        Ok(())
    }

    /// Checks what depends on the model: a chunk must fit its window.
    pub fn validate_for_model(&self, max_seq_length: usize) -> Result<()> {
        let most = max_seq_length.saturating_sub(2);
        if self.ingest.chunk_tokens > most {
            return Err(Error::config(format!(
                "--chunk-tokens {} is longer than the model's window allows ({most} tokens)",
                self.ingest.chunk_tokens
            )));
        }
        Ok(())
    }
}

fn in_range(name: &str, value: u64, low: u64, high: u64) -> Result<()> {
    if (low..=high).contains(&value) {
        return Ok(());
    }
    Err(Error::config(if high == u64::MAX {
        format!("{name} is {value}; it must be at least {low}")
    } else {
        format!("{name} is {value}; it must be between {low} and {high}")
    }))
}

fn at_least(name: &str, value: Duration, low: Duration) -> Result<()> {
    if value >= low { Ok(()) } else { Err(Error::config(format!("{name} is {value:?}; it must be at least {low:?}"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_each_range_is_enforced_not_clamped() {
        let ok = NodeConfig::new("/tmp/x");
        ok.validate().unwrap();
        ok.validate_for_model(256).unwrap();
        let refused = |change: &dyn Fn(&mut NodeConfig), flag: &str| {
            let mut c = NodeConfig::new("/tmp/x");
            change(&mut c);
            let e = c.validate().expect_err(flag);
            assert_eq!(e.kind(), crate::error::ErrorKind::Config);
            assert!(e.to_string().contains(flag), "{e}");
        };
        refused(&|c| c.cluster.sync_interval = Duration::from_millis(10), "--sync-interval-ms");
        refused(&|c| c.cluster.max_transfers = 0, "--max-transfers");
        refused(&|c| c.cluster.shards = 0, "--shards");
        refused(&|c| c.limits.max_collections = 0, "--max-collections");
        refused(&|c| c.limits.extract.memory_mb = 10, "--extract-memory-mb");
        refused(&|c| c.limits.extract.cpu_secs = 0, "--extract-timeout");
        refused(&|c| c.server.header_timeout = Duration::ZERO, "--header-timeout");
        refused(&|c| c.ingest.chunk_overlap = 300, "--chunk-overlap");
        refused(&|c| c.access.policy_poll = Duration::ZERO, "--policy-poll-ms");
        refused(
            &|c| c.index = IndexConfig::Remote { url: "localhost:6334".into(), api_key: None },
            "--index qdrant=URL",
        );
        let mut long = NodeConfig::new("/tmp/x");
        long.ingest.chunk_tokens = 300;
        assert!(long.validate_for_model(256).is_err());
    }

    #[test]
    fn the_remote_index_key_is_never_printed() {
        let c = IndexConfig::Remote { url: "http://q:6334".into(), api_key: Some("secret-key-123".into()) };
        assert!(!format!("{c:?}").contains("secret-key-123"));
    }
}
