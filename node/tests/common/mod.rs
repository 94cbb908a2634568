//! A real `prag node` process on a free loopback port, and a signed client for it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

pub mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use prag_node::client::NodeClient;

/// The demo corpus as (upload path, text): leaflets, a retention policy and an archive log.
pub const CLINIC_DOCS: &[(&str, &str)] = &[
    ("policies/retention.md", include_str!("../../assets/demo/records-retention.md")),
    ("leaflets/mri.md", include_str!("../../assets/demo/mri-preparation.md")),
    ("leaflets/wifi.md", include_str!("../../assets/demo/guest-wifi.md")),
    ("leaflets/lab.md", include_str!("../../assets/demo/lab-results.md")),
    ("archive/log.md", include_str!("../../assets/demo/archive-digitisation.md")),
    ("leaflets/heart.md", include_str!("../../assets/demo/discharge-advice.md")),
];

/// Questions about the demo corpus, one answered by each of its first five documents' topics.
pub const CLINIC_QUESTIONS: &[&str] = &[
    "How long do you keep a child's medical records?",
    "Can I wear my earrings in the scanner?",
    "When can I drive again after a stent?",
    "Which baptism registers were damaged by water?",
    "What is the password for the visitor network?",
];

pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("PRAG_MODEL").map(PathBuf::from).unwrap_or_else(prag_embedder::fetch::default_model_dir);
    assert!(dir.join("model.safetensors").is_file(), "no model at {}: run scripts/test first", dir.display());
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

pub struct NodeProcess {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    pub log: PathBuf,
    extra: Vec<String>,
}

impl NodeProcess {
    pub fn start(data: &Path, extra: &[&str]) -> NodeProcess {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(data, extra)
    }

    fn spawn(data: &Path, extra: Vec<String>) -> NodeProcess {
        let port = free_port();
        // Tests run on machines without a TEE: nodes present development reports (and clients are
        // told to accept them), unless a test chooses the mode. key(99) reads detailed status.
        let mut defaults: Vec<String> = Vec::new();
        if !extra.iter().any(|a| a == "--attestation") {
            defaults.extend(["--attestation".to_string(), "dev".to_string()]);
        }
        defaults.extend(["--operator".to_string(), prag_proto::account::public_key_hex(key(99).verifying_key())]);
        let url = format!("http://127.0.0.1:{port}");
        let log = data.with_extension(format!("log{port}"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_prag"))
            .args(["node", "--data"])
            .arg(data)
            .args(["--api", &format!("127.0.0.1:{port}"), "--model"])
            .arg(model_dir())
            .args(["--device", "cpu"])
            .args(&defaults)
            .args(&extra)
            .env("PRAG_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn prag node");
        let mut node = NodeProcess { child, url, data: data.to_path_buf(), log, extra };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status_url = format!("{}/v1/status", self.url);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("node exited early ({s}); log:\n{}", self.log_text());
            }
            if reqwest::blocking_get_ok(&status_url) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node did not become ready; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGKILL, then start again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        let next = Self::spawn(&self.data.clone(), self.extra.clone());
        *self = next;
    }

    /// A client that accepts this test node's development attestation.
    pub fn client(&self, key: &SigningKey) -> NodeClient {
        NodeClient::new(&self.url, key.clone(), prag_node::channel::NodeTrust::development()).expect("client")
    }

    /// The node's detailed status (read with the operator key, key(99)).
    pub fn status(&self) -> prag_proto::api::NodeStatus {
        rt().block_on(self.client(&key(99)).get("/v1/status")).expect("status")
    }

    /// Peak resident memory of the node process so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny blocking HTTP GET for readiness checks, without pulling in another client.
mod reqwest {
    use std::io::{Read, Write};

    pub fn blocking_get_ok(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("http://") else { return false };
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let Ok(mut s) = std::net::TcpStream::connect(host) else { return false };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).is_err()
        {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
    }
}

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).expect("key")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// A request on the owner's channel with full control over what is signed: `timestamp`, `nonce`,
/// and `tweak`, which may change the head (its signature headers included) after signing and
/// before sealing. The sealed request is returned so a test can send it again, byte for byte.
pub fn sealed_request(
    client: &NodeClient,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    nonce: &str,
    tweak: impl FnOnce(&mut prag_proto::api::ChannelHead),
) -> prag_node::channel::SealedRequest {
    let rt = rt();
    let node = rt.block_on(client.node()).expect("verified node");
    let auth = prag_proto::auth::sign_request(client.key(), method, path, body, timestamp, nonce, &node.node_id);
    let mut head = prag_proto::api::ChannelHead {
        method: method.into(),
        path: path.into(),
        content_type: Some("application/json".into()),
        body_len: body.len() as u64,
        auth,
    };
    tweak(&mut head);
    prag_node::channel::ClientRequest::seal(&node.channel_key, &node.node_id, &head, body).expect("seal")
}

/// Sends a sealed request; (status, error code or "", body).
pub fn send_sealed(client: &NodeClient, sealed: &prag_node::channel::SealedRequest) -> prag_node::client::Answer {
    rt().block_on(client.send_sealed(sealed)).expect("send")
}

/// Creates collection `name` with `client`'s key as owner, and uploads `docs` (path, text) into it.
pub fn collection_with(client: &NodeClient, name: &str, docs: &[(&str, &str)]) {
    let rt = rt();
    let _: serde_json::Value = rt
        .block_on(client.post("/v1/collections", &prag_proto::api::CreateCollectionRequest { name: name.into() }))
        .expect("create");
    for (path, text) in docs {
        rt.block_on(client.upload(name, path, text.as_bytes())).expect("upload");
    }
}
