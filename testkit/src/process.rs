//! A real `prag node` process on a free loopback port: started, waited for, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::SigningKey;
use prag_node::NodeClient;

/// The `prag` binary: `$PRAG_BIN`, else the one cargo built beside this test binary
/// (`target/<profile>/prag`).
pub fn prag_exe() -> PathBuf {
    if let Some(p) = std::env::var_os("PRAG_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let prag = profile_dir.join("prag");
    assert!(prag.is_file(), "no prag binary at {}: build it first (cargo build --release -p prag-cli)", prag.display());
    prag
}

pub struct NodeProcess {
    pub child: Child,
    pub url: String,
    pub data: PathBuf,
    pub log: PathBuf,
    extra: Vec<String>,
    exe: PathBuf,
}

impl NodeProcess {
    pub fn start(data: &Path, extra: &[&str]) -> NodeProcess {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(&prag_exe(), data, extra)
    }

    /// [`NodeProcess::start`] with another build of `prag` (the fault-injection one).
    pub fn start_exe(exe: &Path, data: &Path, extra: &[&str]) -> NodeProcess {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::spawn(exe, data, extra)
    }

    fn spawn(exe: &Path, data: &Path, extra: Vec<String>) -> NodeProcess {
        let port = crate::free_port();
        // Tests run on machines without a TEE: nodes present development reports (and clients are
        // told to accept them), unless a test chooses the mode. key(99) reads detailed status.
        let mut defaults: Vec<String> = Vec::new();
        if !extra.iter().any(|a| a == "--attestation") {
            defaults.extend(["--attestation".to_string(), "dev".to_string()]);
        }
        defaults.extend(["--operator".to_string(), crate::public_hex(&crate::key(99))]);
        let url = format!("http://127.0.0.1:{port}");
        let log = data.with_extension(format!("log{port}"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(exe)
            .args(["node", "--data"])
            .arg(data)
            .args(["--api", &format!("127.0.0.1:{port}"), "--model"])
            .arg(crate::model_dir())
            .args(["--device", "cpu"])
            .args(&defaults)
            .args(&extra)
            .env("PRAG_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn prag node");
        let mut node = NodeProcess { child, url, data: data.to_path_buf(), log, extra, exe: exe.to_path_buf() };
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
        let next = Self::spawn(&self.exe.clone(), &self.data.clone(), self.extra.clone());
        *self = next;
    }

    /// A client that accepts this test node's development attestation.
    pub fn client(&self, key: &SigningKey) -> NodeClient {
        crate::inproc::dev_client(&self.url, key)
    }

    /// The node's detailed status (read with the operator key, key(99)).
    pub fn status(&self) -> prag_proto::api::NodeStatus {
        crate::rt().block_on(self.client(&crate::key(99)).get("/v1/status")).expect("status")
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
