//! The composition root: [`Node::open`] builds every component from the configuration, in the
//! order they depend on each other, starts their background tasks in one set, and hands out
//! references. The node itself does nothing else: behaviour lives in the components.
//!
//! ```text
//!   net (swarm loop) ─► ledger (writer thread, sync task)      status (snapshot task)
//!         │                   │                                     │ reads all of them
//!         └─► cluster (StorageNet: admission, catalog, sync, replicator) ◄─┐
//!               collections (registry, store, index) ◄─ ingest, retrieval ◄─ access
//! ```

use std::sync::Arc;
use std::time::Instant;

use k256::ecdsa::SigningKey;
use prag_embedder::Embedder;
use prag_proto::api::NodeAttestation;

use crate::access::audit::AuditLog;
use crate::access::{Access, AccessParts, RegistrationGate, policy_watch};
use crate::attest::{AttestationGate, AttestationMode};
use crate::auth::{NonceCache, unix_now};
use crate::channel::ChannelKeys;
use crate::cluster::network::{Parts, Replicated};
use crate::cluster::{Standalone, StorageNet};
use crate::collections::{Collections, Quota};
use crate::config::{IndexConfig, NodeConfig};
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::error::{Error, Result};
use crate::identity::StorageIdentity;
use crate::index::IndexBackend;
use crate::index::edge::EdgeBackend;
use crate::index::remote::RemoteBackend;
use crate::ingest::Ingest;
use crate::ledger::LedgerService;
use crate::limits::InflightBudget;
use crate::metrics::Metrics;
use crate::net::Net;
use crate::retrieval::Retrieval;
use crate::status::{Sources, Status};
use crate::tasks::Tasks;

/// A running node.
pub struct Node {
    config: NodeConfig,
    node_id: String,
    embedder: Embedder,
    metrics: Arc<Metrics>,
    nonces: NonceCache,
    collections: Arc<Collections>,
    ingest: Ingest,
    retrieval: Arc<Retrieval>,
    access: Arc<Access>,
    market: Arc<crate::market::Market>,
    ledger: LedgerService,
    net: Net,
    status: Arc<Status>,
    channel: ChannelKeys,
    attestation: Option<NodeAttestation>,
    /// Bytes of authenticated request bodies in flight, per key and in all.
    inflight: Arc<InflightBudget>,
    /// Bytes of unsigned request bodies in flight.
    public_inflight: Arc<InflightBudget>,
    tasks: Tasks,
    /// Keeps the janitor process alive (its stdin is this end of a pipe).
    _janitor: Option<tokio::process::Child>,
}

impl Node {
    /// Opens (or creates) the node in `config.data_dir`, rebuilds its index from the encrypted
    /// store and starts it. `admin_key`: on a node without a ledger yet, makes that key the
    /// contracts' admin (genesis) and this node the orderer.
    pub async fn open(config: NodeConfig, embedder: Embedder, admin_key: Option<&SigningKey>) -> Result<Arc<Node>> {
        config.validate()?;
        config.validate_for_model(embedder.info().max_seq_length)?;
        // Requests signed before this moment are refused: the memory of nonces starts empty.
        let started_unix = unix_now();
        let started = Instant::now();
        let data = config.data_dir.clone();
        prepare_data_dir(&data)?;
        let (master, created) = MasterKey::load_or_create(&data.join("master.key"))?;
        if created {
            tracing::info!(data = %data.display(), "created a new node: master key written (0600)");
        }
        let master = Arc::new(master);
        let tasks = Tasks::new();
        let metrics = Arc::new(Metrics::default());
        let (index, janitor) = open_index_backend(&config).await?;

        let a = &config.access;
        let gate = Arc::new(AttestationGate::new(
            a.attestation,
            a.policy.clone(),
            a.max_liveliness_age_secs,
            a.pccs_url.clone(),
        )?);
        if gate.mode() == AttestationMode::Dev {
            tracing::warn!(
                "ATTESTATION DEVELOPMENT MODE: this node accepts development reports, which prove nothing about the \
                 worker's hardware, and presents one itself. Never use it with real data."
            );
        }
        let audit = Arc::new(AuditLog::open(&master, &data));
        let node_id =
            hex::encode(&master.derive(&KeyContext::new(Purpose::Mac, "", "node-id", 0, 1)).mac(b"node-id")[..16]);
        // The storage key vouches for this node twice: its channel card here, its peer card in
        // the network.
        let identity = Arc::new(StorageIdentity::derive(&master)?);
        let channel = ChannelKeys::derive(&master);
        let attestation = crate::channel::own_report(a, &identity)
            .await?
            .map(|report| crate::channel::sign_card(identity.signing_key(), &node_id, &channel, report));
        if attestation.is_none() {
            tracing::error!(
                "NO ATTESTATION REPORT for this node's channel key: it is not a TDX or SEV-SNP guest and got no \
                 --self-report, so data owners' clients will refuse to send it anything. Run it in a confidential \
                 VM, pass --self-report FILE (from `prag attest self --storage-data DIR`), or use --attestation dev \
                 for development."
            );
        }

        let (net, inbound) = match &config.net {
            Some(n) => {
                let key = crate::net::load_or_create_keypair(&data)?;
                let (net, inbound, event_loop) = crate::net::start(n, key, tasks.token())?;
                tasks.spawn(event_loop);
                (net, Some(inbound))
            }
            None => (Net::offline(), None),
        };
        let registration = Arc::new(RegistrationGate { gate: Arc::clone(&gate), audit: Arc::clone(&audit) });
        let ledger =
            LedgerService::open(&data, admin_key, &config.chain_id, &config.genesis, registration, net.clone())?;

        let changes = Arc::new(tokio::sync::Notify::new());
        let quota = Quota {
            per_key: config.limits.max_collections_per_key,
            total: config.limits.max_collections,
            shards: if net.is_online() { config.cluster.shards } else { 1 },
            replicas: config.cluster.replicas,
        };
        let dimension = embedder.info().dimension;
        let collections = Arc::new(Collections::new(
            Arc::clone(&master),
            data.join("collections"),
            index,
            dimension,
            quota,
            Arc::clone(&changes),
        )?);
        {
            let (c, m) = (Arc::clone(&collections), Arc::clone(&metrics));
            tokio::task::spawn_blocking(move || c.load_all(&m)).await??;
        }

        let network: Arc<dyn StorageNet> = match inbound {
            Some(inbound) => {
                if let Some(n) = &config.net {
                    let ledger_events = inbound.ledger;
                    tasks.spawn(crate::ledger::sync::run(
                        ledger.clone(),
                        net.clone(),
                        ledger_events,
                        n.catch_up_interval,
                        tasks.token(),
                    ));
                }
                let parts = Parts {
                    config: config.cluster.clone(),
                    identity: Arc::clone(&identity),
                    net: net.clone(),
                    inbound: inbound.cluster,
                    ledger: ledger.clone(),
                    gate: Arc::clone(&gate),
                    collections: Arc::clone(&collections),
                    dimension,
                };
                Arc::new(Replicated::start(parts, &tasks)?)
            }
            None => Arc::new(Standalone),
        };

        let sandbox = crate::extract::Sandbox::new(config.limits.extract.clone());
        let (ingest, optimizer) = Ingest::new(
            config.ingest.clone(),
            embedder.clone(),
            Arc::clone(&collections),
            Arc::clone(&network),
            sandbox,
            Arc::clone(&metrics),
            tasks.token(),
        );
        tasks.spawn(optimizer);
        for c in collections.all() {
            ingest.optimize(&c);
        }
        let market = Arc::new(crate::market::Market::new(crate::market::MarketParts {
            identity: Arc::clone(&identity),
            ledger: ledger.clone(),
            collections: Arc::clone(&collections),
            network: Arc::clone(&network),
            embedder: embedder.clone(),
            logs: crate::market::StackLogs::open(data.join("market").join("stacks"), Arc::clone(&master))?,
            fault: config.market.fault.clone(),
        }));
        network.serve_stack_logs(Arc::clone(&market) as Arc<dyn crate::cluster::StackLogSource>);
        tasks.spawn(crate::market::run_agent(Arc::clone(&market), config.market.interval, tasks.token()));
        let retrieval = Arc::new(Retrieval::new(
            embedder.clone(),
            Arc::clone(&collections),
            Arc::clone(&network),
            Arc::clone(&metrics),
        ));
        let access = Arc::new(Access::new(AccessParts {
            gate,
            audit,
            ledger: ledger.clone(),
            collections: Arc::clone(&collections),
            retrieval: Arc::clone(&retrieval),
            metrics: Arc::clone(&metrics),
            node_id: node_id.clone(),
            operators: config.access.operators.clone(),
            market: Arc::clone(&market),
        }));
        access.log_worker_verdicts("at start");
        tasks.spawn(policy_watch(Arc::clone(&access), config.access.policy_poll, tasks.token()));

        let sources = Sources {
            node_id: node_id.clone(),
            data_dir: data.clone(),
            started,
            embedder: embedder.clone(),
            collections: Arc::clone(&collections),
            network,
            net: net.clone(),
            ledger: ledger.clone(),
            access: Arc::clone(&access),
            metrics: Arc::clone(&metrics),
            attested: attestation.is_some(),
        };
        let (status, refresher) = {
            let config = config.status.clone();
            let token = tasks.token();
            tokio::task::spawn_blocking(move || Status::new(sources, config, changes, token)).await?
        };
        tasks.spawn(refresher);

        let l = &config.limits;
        Ok(Arc::new(Node {
            nonces: NonceCache::new(l.nonce_capacity, started_unix),
            inflight: InflightBudget::new(l.inflight_bytes_per_key, l.inflight_bytes),
            public_inflight: InflightBudget::new(l.public_inflight_bytes, l.public_inflight_bytes),
            config,
            node_id,
            embedder,
            metrics,
            collections,
            ingest,
            retrieval,
            access,
            market,
            ledger,
            net,
            status,
            channel,
            attestation,
            tasks,
            _janitor: janitor,
        }))
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// This node's id (a keyed hash from the master key): the audience of every request.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn nonces(&self) -> &NonceCache {
        &self.nonces
    }

    pub fn collections(&self) -> &Arc<Collections> {
        &self.collections
    }

    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    pub fn retrieval(&self) -> &Retrieval {
        &self.retrieval
    }

    pub fn market(&self) -> &crate::market::Market {
        &self.market
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn ledger(&self) -> &LedgerService {
        &self.ledger
    }

    pub fn net(&self) -> &Net {
        &self.net
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn channel_keys(&self) -> &ChannelKeys {
        &self.channel
    }

    /// What `GET /v1/attestation` serves; None when the node has no report for its channel key.
    pub fn attestation(&self) -> Option<&NodeAttestation> {
        self.attestation.as_ref()
    }

    pub fn inflight(&self) -> &Arc<InflightBudget> {
        &self.inflight
    }

    pub fn public_inflight(&self) -> &Arc<InflightBudget> {
        &self.public_inflight
    }

    /// Stops the node's background tasks (they also stop when it is dropped).
    pub fn shutdown(&self) {
        self.tasks.shutdown();
    }
}

/// Creates the data directory, private to this user.
fn prepare_data_dir(data: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(data.join("collections"))
        .map_err(|e| Error::config(format!("cannot create data directory {}: {e}", data.display())))?;
    if let Err(e) = std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(data = %data.display(), error = %e, "cannot make the data directory private (0700)");
    }
    Ok(())
}

/// The vector engine, and (for the embedded one) the janitor that removes its plain files if
/// this process dies without doing so.
async fn open_index_backend(config: &NodeConfig) -> Result<(Arc<dyn IndexBackend>, Option<tokio::process::Child>)> {
    Ok(match &config.index {
        IndexConfig::Embedded { dir } => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => crate::index::edge::default_dir(&config.data_dir)?,
            };
            let backend = EdgeBackend::new(&dir)?;
            let janitor = config.janitor_exe.as_deref().and_then(|exe| crate::index::edge::start_janitor(exe, &dir));
            (Arc::new(backend), janitor)
        }
        IndexConfig::Remote { url, api_key } => {
            (Arc::new(RemoteBackend::connect(url, api_key.as_deref()).await?), None)
        }
    })
}
