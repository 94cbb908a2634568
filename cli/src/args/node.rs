//! `prag node`'s flags: one per setting of the node's configuration, each with its environment
//! variable. Ranges are checked once, by the node's configuration (`crate::config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ModelArgs;

#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// Data directory (created on first start).
    #[arg(long, env = "PRAG_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// Address the HTTP API listens on.
    #[arg(long, env = "PRAG_API", default_value = "127.0.0.1:7700")]
    pub api: SocketAddr,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Vector index: `embedded` (qdrant-edge in process) or `qdrant=URL` (a Qdrant server's gRPC
    /// address, e.g. qdrant=http://127.0.0.1:6334; vectors are sent rotated by a per-collection
    /// secret, points carry no payload).
    #[arg(long, env = "PRAG_INDEX", default_value = "embedded")]
    pub index: String,
    /// API key of the Qdrant server, if it requires one.
    #[arg(long, env = "PRAG_QDRANT_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Where the embedded index keeps its live files; must be memory-backed (tmpfs), since they
    /// hold vectors in the clear. Default: a directory in /dev/shm.
    #[arg(long, env = "PRAG_INDEX_DIR", value_name = "DIR")]
    pub index_dir: Option<PathBuf>,
    /// Longest chunk, in tokens (8 up to the model's window less 2).
    #[arg(long, env = "PRAG_CHUNK_TOKENS", default_value_t = 200)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks (fewer than --chunk-tokens).
    #[arg(long, env = "PRAG_CHUNK_OVERLAP", default_value_t = 32)]
    pub chunk_overlap: usize,
    /// How documents are cut: `structured` follows headings, sections, paragraphs, lists, code
    /// and tables, and starts each chunk with the title and section path; `tokens` cuts plain
    /// windows of --chunk-tokens.
    #[arg(long, env = "PRAG_CHUNKING", default_value = "structured", value_parser = ["structured", "tokens"])]
    pub chunking: String,
    /// Largest accepted file, in MiB.
    #[arg(long, env = "PRAG_MAX_FILE_MB", default_value_t = 64)]
    pub max_file_mb: usize,
    /// Milliseconds the index optimizer waits after an upload for more before it builds HNSW.
    #[arg(long, env = "PRAG_OPTIMIZE_DEBOUNCE_MS", default_value_t = 500, value_name = "MS")]
    pub optimize_debounce_ms: u64,
    /// On the network's first node, at its first start: make this account key the contracts'
    /// admin and this node the ledger's orderer. Ignored once a ledger exists.
    #[arg(long, env = "PRAG_ADMIN_KEY", value_name = "FILE")]
    pub admin_key: Option<PathBuf>,
    /// Chain id recorded in a new ledger (permits are signed for it).
    #[arg(long, env = "PRAG_CHAIN_ID", default_value = "prag-1")]
    pub chain_id: String,
    /// An opening balance in a new ledger, `secret1…=AMOUNT` (uprag); repeatable. Ignored once a
    /// ledger exists.
    #[arg(long = "genesis-account", env = "PRAG_GENESIS_ACCOUNTS", value_delimiter = ',', value_name = "ADDR=AMOUNT")]
    pub genesis_accounts: Vec<String>,
    /// Let the admin mint money in a new ledger (development networks only; fixed at genesis).
    #[arg(long = "dev-mint")]
    pub dev_mint: bool,
    /// Seconds per compute-market epoch in a new ledger (settlement windows, fee locks and
    /// deadlines count in epochs; Sui's are about a day).
    #[arg(long, env = "PRAG_MARKET_EPOCH_SECS", default_value_t = 86_400, value_name = "SECS")]
    pub market_epoch_secs: u64,
    /// How often the node looks for its stacks to settle, its tickets to claim and the stacks it
    /// was asked to attest, in milliseconds.
    #[arg(long, env = "PRAG_MARKET_INTERVAL_MS", default_value_t = 2000, value_name = "MS")]
    pub market_interval_ms: u64,
    /// Tests only (this flag exists in the `prag-faulty` build alone, which refuses to start
    /// without it): what the node does wrong to the answers it is paid for.
    #[cfg(feature = "fault-injection")]
    #[arg(long, value_enum)]
    pub inject_fault: Option<crate::fault::FaultKind>,
    /// Which workers' attestation reports to accept: `hardware` (TDX and SEV-SNP only) or `dev`
    /// (development reports too, for machines without a TEE: proves nothing, never for real data).
    #[arg(long, env = "PRAG_ATTESTATION", default_value = "hardware")]
    pub attestation: prag_node::attest::AttestationMode,
    /// Attestation policy (TOML: min_tcb_status, allowed_mrtd, allowed_rtmr0..3,
    /// allowed_snp_measurements, max_report_age_secs). Reloaded when the file changes. Default:
    /// UpToDate TCB, any measurement, reports up to a day old.
    #[arg(long, env = "PRAG_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Milliseconds between looks at the policy file (and fetches of missing TDX collateral).
    #[arg(long, env = "PRAG_POLICY_POLL_MS", default_value_t = 2000, value_name = "MS")]
    pub policy_poll_ms: u64,
    /// How recent (seconds) a worker's last liveliness answer must be for it to be served.
    #[arg(long, env = "PRAG_MAX_LIVELINESS_AGE", default_value_t = 900)]
    pub max_liveliness_age: u64,
    /// Public key (hex) of an operator who may read this node's audit log and console feed,
    /// besides the contracts' admin. Repeatable; env: comma-separated.
    #[arg(long = "operator", env = "PRAG_OPERATORS", value_delimiter = ',', value_name = "PUBKEY")]
    pub operators: Vec<String>,
    /// PCCS (or Intel PCS) base URL: TDX collateral for workers' reports that carry none is
    /// fetched from it. Without it such reports are refused.
    #[arg(long, env = "PRAG_PCCS_URL", value_name = "URL")]
    pub pccs_url: Option<String>,
    /// This node's own attestation report binding its storage key (`prag attest self
    /// --storage-data DIR`), served to owners' clients. Default: asked of the TEE at start
    /// (configfs-tsm); in --attestation dev, a development report.
    #[arg(long, env = "PRAG_SELF_REPORT", value_name = "FILE")]
    pub self_report: Option<PathBuf>,
    /// Listen for peers on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7800 or
    /// /ip4/0.0.0.0/udp/7800/quic-v1. With no --p2p-listen, --peer or --mdns the node runs alone.
    #[arg(long = "p2p-listen", env = "PRAG_P2P_LISTEN", value_delimiter = ',', value_name = "MULTIADDR")]
    pub p2p_listen: Vec<prag_node::config::Multiaddr>,
    /// A bootstrap peer to dial (repeatable).
    #[arg(long = "peer", env = "PRAG_PEERS", value_delimiter = ',', value_name = "MULTIADDR")]
    pub peers: Vec<prag_node::config::Multiaddr>,
    /// Also find peers on the local network with mDNS (off by default).
    #[arg(long, env = "PRAG_MDNS")]
    pub mdns: bool,
    /// Milliseconds between dials of bootstrap peers that went away (and of peers Kademlia knows).
    #[arg(long, env = "PRAG_REDIAL_MS", default_value_t = 2000, value_name = "MS")]
    pub redial_ms: u64,
    /// Milliseconds between asking every peer for ledger entries this node lacks.
    #[arg(long, env = "PRAG_CATCH_UP_MS", default_value_t = 10_000, value_name = "MS")]
    pub catch_up_ms: u64,
    /// Milliseconds a ledger request to a peer may take.
    #[arg(long, env = "PRAG_LEDGER_REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_name = "MS")]
    pub ledger_request_timeout_ms: u64,
    /// Milliseconds a storage request to a peer (sync, a transfer piece, a search) may take.
    #[arg(long, env = "PRAG_CLUSTER_REQUEST_TIMEOUT_MS", default_value_t = 60_000, value_name = "MS")]
    pub cluster_request_timeout_ms: u64,
    /// Seconds a peer connection with nothing on it stays open.
    #[arg(long, env = "PRAG_IDLE_CONNECTION_TIMEOUT", default_value_t = 120, value_name = "SECS")]
    pub idle_connection_timeout: u64,
    /// Shards per new collection (in a network), 1-1024.
    #[arg(long, env = "PRAG_SHARDS", default_value_t = 4)]
    pub shards: u32,
    /// Copies of each shard the network keeps, 1-16.
    #[arg(long, env = "PRAG_REPLICAS", default_value_t = 2)]
    pub replicas: u32,
    /// Seconds a vanished storage node keeps its shards before they are copied to the others.
    #[arg(long, env = "PRAG_REREPLICATE_AFTER", default_value_t = 60, value_name = "SECS")]
    pub rereplicate_after: u64,
    /// Milliseconds before a slow remote search is also asked of another replica.
    #[arg(long, env = "PRAG_HEDGE_AFTER_MS", default_value_t = 250, value_name = "MS")]
    pub hedge_after_ms: u64,
    /// Milliseconds between syncs of catalogs and holdings with peers (at least 50).
    #[arg(long, env = "PRAG_SYNC_INTERVAL_MS", default_value_t = 1000, value_name = "MS")]
    pub sync_interval_ms: u64,
    /// Incoming shard transfer limit in KiB/s, all transfers together (0: unlimited).
    #[arg(long, env = "PRAG_TRANSFER_RATE_KIB", default_value_t = 262_144, value_name = "KIB_PER_SEC")]
    pub transfer_rate_kib: u64,
    /// Bytes per shard transfer request (1 KiB to 64 MiB).
    #[arg(long, env = "PRAG_TRANSFER_PIECE", default_value_t = 4 << 20, value_name = "BYTES")]
    pub transfer_piece: u32,
    /// Shard transfers running at once, 1-64.
    #[arg(long, env = "PRAG_MAX_TRANSFERS", default_value_t = 4)]
    pub max_transfers: usize,
    /// Collections one key may own on this node.
    #[arg(long, env = "PRAG_MAX_COLLECTIONS_PER_KEY", default_value_t = 16)]
    pub max_collections_per_key: usize,
    /// Collections this node holds in all (keys are free to make: this bounds what they can take).
    #[arg(long, env = "PRAG_MAX_COLLECTIONS", default_value_t = 4096)]
    pub max_collections: usize,
    /// MiB of request bodies one key may have in flight at once.
    #[arg(long, env = "PRAG_MAX_INFLIGHT_MB_PER_KEY", default_value_t = 256)]
    pub max_inflight_mb_per_key: u64,
    /// MiB of request bodies all callers together may have in flight.
    #[arg(long, env = "PRAG_MAX_INFLIGHT_MB", default_value_t = 1024)]
    pub max_inflight_mb: u64,
    /// Open API connections; at the limit the longest-open idle one is closed for a newcomer.
    #[arg(long, env = "PRAG_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's head (also how long an idle connection stays).
    #[arg(long, env = "PRAG_HEADER_TIMEOUT", default_value_t = 10, value_name = "SECS")]
    pub header_timeout: u64,
    /// Memory limit (address space, MiB, at least 64) of the process that reads one HTML or PDF file.
    #[arg(long, env = "PRAG_EXTRACT_MEMORY_MB", default_value_t = 1024)]
    pub extract_memory_mb: u64,
    /// CPU-time limit (seconds) of the process that reads one HTML or PDF file.
    #[arg(long, env = "PRAG_EXTRACT_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub extract_timeout: u64,
    /// HTML and PDF files read at once (default: one per two cores).
    #[arg(long, env = "PRAG_EXTRACT_CONCURRENCY")]
    pub extract_concurrency: Option<usize>,
    /// Milliseconds between rebuilds of the status snapshot (it is also rebuilt shortly after
    /// every change).
    #[arg(long, env = "PRAG_STATUS_REFRESH_MS", default_value_t = 1000, value_name = "MS")]
    pub status_refresh_ms: u64,
    /// Seconds between counts of the bytes under the data directory (a walk of every file).
    #[arg(long, env = "PRAG_DISK_USAGE_INTERVAL", default_value_t = 30, value_name = "SECS")]
    pub disk_usage_interval: u64,
}
