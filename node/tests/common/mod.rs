//! A real `prag node` process on a free loopback port, and a signed client for it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

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
        let url = format!("http://127.0.0.1:{port}");
        let log = data.with_extension(format!("log{port}"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_prag"))
            .args(["node", "--data"])
            .arg(data)
            .args(["--api", &format!("127.0.0.1:{port}"), "--model"])
            .arg(model_dir())
            .args(["--device", "cpu"])
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

    pub fn client(&self, key: &SigningKey) -> NodeClient {
        NodeClient::new(&self.url, key.clone()).expect("client")
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

pub fn upload_body(path: &str, bytes: &[u8]) -> prag_proto::api::UploadRequest {
    use base64::Engine as _;
    prag_proto::api::UploadRequest {
        path: path.into(),
        content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
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
