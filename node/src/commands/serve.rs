//! `prag node`: run a storage node until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::cli::runtime;
use crate::model::ModelArgs;
use crate::service::{AccessConfig, AttestationMode, IndexChoice, Node, NodeConfig};

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
    pub index: IndexChoice,
    /// API key of the Qdrant server, if it requires one.
    #[arg(long, env = "PRAG_QDRANT_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<String>,
    /// Where the embedded index keeps its live files; must be memory-backed (tmpfs), since they
    /// hold vectors in the clear. Default: a directory in /dev/shm.
    #[arg(long, env = "PRAG_INDEX_DIR", value_name = "DIR")]
    pub index_dir: Option<PathBuf>,
    /// Longest chunk, in tokens.
    #[arg(long, env = "PRAG_CHUNK_TOKENS", default_value_t = 200)]
    pub chunk_tokens: usize,
    /// Tokens shared by consecutive chunks.
    #[arg(long, env = "PRAG_CHUNK_OVERLAP", default_value_t = 32)]
    pub chunk_overlap: usize,
    /// Largest accepted file, in MiB.
    #[arg(long, env = "PRAG_MAX_FILE_MB", default_value_t = 64)]
    pub max_file_mb: usize,
    /// On the network's first node, at its first start: make this account key the contracts'
    /// admin and this node the ledger's orderer. Ignored once a ledger exists.
    #[arg(long, env = "PRAG_ADMIN_KEY", value_name = "FILE")]
    pub admin_key: Option<PathBuf>,
    /// Chain id recorded in a new ledger (permits are signed for it).
    #[arg(long, env = "PRAG_CHAIN_ID", default_value = "prag-1")]
    pub chain_id: String,
    /// Which workers' attestation reports to accept: `hardware` (TDX and SEV-SNP only) or `dev`
    /// (development reports too, for machines without a TEE: proves nothing, never for real data).
    #[arg(long, env = "PRAG_ATTESTATION", default_value = "hardware")]
    pub attestation: AttestationMode,
    /// Attestation policy (TOML: min_tcb_status, allowed_mrtd, allowed_rtmr0..3,
    /// allowed_snp_measurements, max_report_age_secs). Reloaded when the file changes. Default:
    /// UpToDate TCB, any measurement, reports up to a day old.
    #[arg(long, env = "PRAG_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
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
    /// Listen for peers on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7800 or
    /// /ip4/0.0.0.0/udp/7800/quic-v1. With no --p2p-listen, --peer or --mdns the node runs alone.
    #[arg(long = "p2p-listen", env = "PRAG_P2P_LISTEN", value_delimiter = ',', value_name = "MULTIADDR")]
    pub p2p_listen: Vec<libp2p::Multiaddr>,
    /// A bootstrap peer to dial (repeatable).
    #[arg(long = "peer", env = "PRAG_PEERS", value_delimiter = ',', value_name = "MULTIADDR")]
    pub peers: Vec<libp2p::Multiaddr>,
    /// Also find peers on the local network with mDNS (off by default).
    #[arg(long, env = "PRAG_MDNS")]
    pub mdns: bool,
    /// Shards per new collection (in a network).
    #[arg(long, env = "PRAG_SHARDS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Copies of each shard the network keeps.
    #[arg(long, env = "PRAG_REPLICAS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: u32,
    /// Seconds a vanished storage node keeps its shards before they are copied to the others.
    #[arg(long, env = "PRAG_REREPLICATE_AFTER", default_value_t = 60, value_name = "SECS")]
    pub rereplicate_after: u64,
    /// Milliseconds before a slow remote search is also asked of another replica.
    #[arg(long, env = "PRAG_HEDGE_AFTER_MS", default_value_t = 250, value_name = "MS")]
    pub hedge_after_ms: u64,
    /// Milliseconds between syncs of catalogs and holdings with peers.
    #[arg(long, env = "PRAG_SYNC_INTERVAL_MS", default_value_t = 1000, value_name = "MS")]
    pub sync_interval_ms: u64,
    /// Incoming shard transfer limit in KiB/s, all transfers together (0: unlimited).
    #[arg(long, env = "PRAG_TRANSFER_RATE_KIB", default_value_t = 262_144, value_name = "KIB_PER_SEC")]
    pub transfer_rate_kib: u64,
    /// Bytes per shard transfer request.
    #[arg(long, env = "PRAG_TRANSFER_PIECE", default_value_t = 4 << 20, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1024..=(64 << 20)))]
    pub transfer_piece: u32,
    /// This node's own attestation report binding its storage key (`prag attest self
    /// --storage-data DIR`), served to owners' clients. Default: asked of the TEE at start
    /// (configfs-tsm); in --attestation dev, a development report.
    #[arg(long, env = "PRAG_SELF_REPORT", value_name = "FILE")]
    pub self_report: Option<PathBuf>,
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
    /// Memory limit (address space, MiB) of the process that reads one HTML or PDF file.
    #[arg(long, env = "PRAG_EXTRACT_MEMORY_MB", default_value_t = 1024)]
    pub extract_memory_mb: u64,
    /// CPU-time limit (seconds) of the process that reads one HTML or PDF file.
    #[arg(long, env = "PRAG_EXTRACT_TIMEOUT", default_value_t = 30, value_name = "SECS")]
    pub extract_timeout: u64,
    /// HTML and PDF files read at once (default: one per two cores).
    #[arg(long, env = "PRAG_EXTRACT_CONCURRENCY")]
    pub extract_concurrency: Option<usize>,
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let embedder = args.model.load(false)?;
    let mut index = args.index.clone();
    if let IndexChoice::Embedded { dir } = &mut index {
        *dir = args.index_dir.clone();
    }
    let config = NodeConfig {
        data_dir: args.data.clone(),
        index,
        chunk_tokens: args.chunk_tokens,
        chunk_overlap: args.chunk_overlap,
        max_file_bytes: args.max_file_mb.saturating_mul(1024 * 1024),
        chain_id: args.chain_id.clone(),
        access: AccessConfig {
            attestation: args.attestation,
            policy: args.policy.clone(),
            max_liveliness_age_secs: args.max_liveliness_age,
            operators: args
                .operators
                .iter()
                .map(|k| {
                    prag_proto::account::parse_public_key(k)
                        .map(|k| prag_proto::account::public_key_hex(&k))
                        .map_err(|e| anyhow::anyhow!("--operator {k}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
            pccs_url: args.pccs_url.clone(),
            self_report: args.self_report.clone(),
        },
        p2p: if args.p2p_listen.is_empty() && args.peers.is_empty() && !args.mdns {
            None
        } else {
            Some(crate::p2p::P2pConfig { listen: args.p2p_listen.clone(), peers: args.peers.clone(), mdns: args.mdns })
        },
        cluster: crate::cluster::ClusterConfig {
            shards: args.shards,
            replicas: args.replicas,
            rereplicate_after: std::time::Duration::from_secs(args.rereplicate_after),
            hedge_after: std::time::Duration::from_millis(args.hedge_after_ms),
            sync_interval: std::time::Duration::from_millis(args.sync_interval_ms.max(50)),
            transfer_rate: args.transfer_rate_kib.saturating_mul(1024),
            piece_bytes: args.transfer_piece,
            max_transfers: 4,
        },
        limits: {
            let max_file_bytes = args.max_file_mb.saturating_mul(1024 * 1024);
            let mut extract = crate::extract::SandboxConfig::for_current_exe(max_file_bytes);
            extract.memory_mb = args.extract_memory_mb.max(64);
            extract.cpu_secs = args.extract_timeout.max(1);
            if let Some(n) = args.extract_concurrency {
                extract.concurrency = n.max(1);
            }
            crate::service::LimitsConfig {
                max_collections_per_key: args.max_collections_per_key,
                max_collections: args.max_collections.max(1),
                inflight_bytes_per_key: args.max_inflight_mb_per_key.saturating_mul(1 << 20),
                inflight_bytes: args.max_inflight_mb.saturating_mul(1 << 20),
                extract: Some(extract),
                ..Default::default()
            }
        },
        janitor_exe: std::env::current_exe().ok(),
    };
    let admin_key = args.admin_key.as_deref().map(crate::account::load).transpose()?;
    runtime()?.block_on(async move {
        let node = Node::open_with(config, embedder, admin_key.as_ref(), args.qdrant_api_key.as_deref()).await.context("cannot open the node")?;
        let listener = tokio::net::TcpListener::bind(args.api)
            .await
            .with_context(|| format!("cannot listen on {}", args.api))?;
        // One descriptor per connection, and some for everything else.
        let nofile = crate::api::server::raise_nofile_limit();
        let max_connections = args.max_connections.max(1).min(nofile.saturating_sub(256).max(16) as usize);
        if max_connections < args.max_connections {
            tracing::warn!(max_connections, nofile, "fewer connections than --max-connections: the open-file limit is low");
        }
        let limits = crate::api::server::ServerLimits {
            max_connections,
            header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
            ..Default::default()
        };
        tracing::info!(api = %args.api, data = %args.data.display(), index = %node.status().index_backend, "node ready");
        crate::api::server::serve(listener, crate::api::router(node), limits, shutdown_signal())
            .await
            .context("HTTP server failed")?;
        tracing::info!("node stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
