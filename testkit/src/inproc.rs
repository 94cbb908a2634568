//! Nodes in this process: the real node (store, index, ledger, libp2p on loopback) serving its
//! real API on a free port, built from a [`NodeConfig`] — fast to start with the stand-in
//! embedder, so tests of rules and errors need no process and no model.

use std::path::Path;
use std::sync::Arc;

use k256::ecdsa::SigningKey;
use prag_embedder::Embedder;
use prag_node::config::{AttestationMode, IndexConfig, NetConfig};
use prag_node::{Node, NodeClient, NodeConfig};

/// A client that accepts a test node's development attestation.
pub fn dev_client(url: &str, key: &SigningKey) -> NodeClient {
    NodeClient::new(url, key.clone(), prag_node::channel::NodeTrust::development()).expect("client")
}

/// A test node's configuration: data in `dir`, its index beside it, development attestation,
/// `key(99)` an operator, the API on a free loopback port, alone.
pub fn config(dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(dir.join("data"));
    c.index = IndexConfig::Embedded { dir: Some(dir.join("index")) };
    c.access.attestation = AttestationMode::Dev;
    c.access.operators = vec![crate::public_hex(&crate::key(99))];
    c.server.api = std::net::SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    c.chain_id = "prag-test".into();
    c
}

/// `config` in a network: listening on a free loopback TCP port, dialling `peers`, with quick
/// timers (sync every 100 ms, catch-up every second).
pub fn networked(mut c: NodeConfig, peers: &[String]) -> (NodeConfig, String) {
    let listen = format!("/ip4/127.0.0.1/tcp/{}", crate::free_port());
    let mut n = NetConfig::new(
        vec![listen.parse().expect("multiaddr")],
        peers.iter().map(|p| p.parse().expect("multiaddr")).collect(),
    );
    n.catch_up_interval = std::time::Duration::from_secs(1);
    n.redial_interval = std::time::Duration::from_millis(200);
    c.net = Some(n);
    c.cluster.sync_interval = std::time::Duration::from_millis(100);
    c.status.refresh_interval = std::time::Duration::from_millis(100);
    (c, listen)
}

/// A node in this process, serving its API; stopped when dropped.
pub struct TestNode {
    pub node: Arc<Node>,
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl TestNode {
    /// Opens the node and serves its API on `config.server.api`, on the current runtime.
    pub async fn start(config: NodeConfig, embedder: Embedder, admin: Option<&SigningKey>) -> TestNode {
        let url = format!("http://{}", config.server.api);
        let node = Node::open(config, embedder, admin).await.expect("node opens");
        let served = Arc::clone(&node);
        let server = tokio::spawn(async move {
            let _ = prag_node::api::server::run(served, std::future::pending()).await;
        });
        // Ready when it answers.
        let host = url.trim_start_matches("http://").to_string();
        for _ in 0..500 {
            if answers(&host).await {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        TestNode { node, url, server }
    }

    /// A client of this node signing with `key`.
    pub fn client(&self, key: &SigningKey) -> NodeClient {
        dev_client(&self.url, key)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.server.abort();
        self.node.shutdown();
    }
}

/// Whether `GET /v1/status` at `host` answers 200 (plain TCP: no HTTP client needed).
async fn answers(host: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(host).await else { return false };
    let req = format!("GET /v1/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf).await, Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

/// What registering the node whose data directory is `data` as a storage node takes: its peer id,
/// its storage key, and a development report binding that key (the keys are made if new).
pub fn storage_identity(data: &Path) -> (String, String, String) {
    std::fs::create_dir_all(data).expect("data dir");
    let (master, _) = prag_node::crypto::MasterKey::load_or_create(&data.join("master.key")).expect("master key");
    let peer = prag_node::load_or_create_keypair(data).expect("peer key").public().to_peer_id().to_string();
    let id = prag_node::identity::StorageIdentity::derive(&master).expect("identity");
    let report = prag_node::attest::AttestationReport::development(&id.signing_key_hex());
    (peer, id.signing_key_hex(), report)
}

/// A transaction signed by `key` with nonce number `n`.
pub fn tx(key: &SigningKey, n: u64, msg: serde_json::Value) -> prag_proto::ledger::SignedTx {
    prag_proto::ledger::SignedTx::sign(key, &format!("testnonce{n:012}"), prag_node::unix_now(), msg).expect("sign")
}

/// Registers the node in `data` as a `prag-storage` worker (a development report), through the
/// orderer's ledger, signed by the admin `key(1)`.
pub async fn register_storage(orderer: &Node, data: &Path, n: u64) {
    let msg = crate::storage_registration(&storage_identity(data));
    orderer.ledger().submit(tx(&crate::key(1), n, msg)).await.expect("storage node registered");
}

/// Waits until `done` holds, polling every 50 ms for at most `secs` seconds; panics with `what`.
pub async fn eventually(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
