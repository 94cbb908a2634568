//! End to end: a real node with a small corpus, the console in tmux, keys sent, the screen read
//! back. The node's real numbers must appear (documents; a query count that rises after queries),
//! `q` must exit cleanly and leave the terminal restored.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn prag() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_prag-console")).with_file_name("prag");
    assert!(p.is_file(), "{} is missing: build it first (scripts/test does)", p.display());
    p
}

fn run(args: &[&str], dir: &Path) -> String {
    let out = Command::new(prag()).args(args).current_dir(dir).output().expect("run prag");
    assert!(out.status.success(), "prag {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Guard {
    node: Child,
    socket: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.node.kill();
        let _ = self.node.wait();
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux").arg("-L").arg(socket).args(args).output().expect("tmux (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(socket: &str) -> String {
    tmux(socket, &["capture-pane", "-p", "-t", "prag:"])
}

/// Waits until the screen satisfies `ok`; returns it (panics with the last screen on timeout).
fn wait_for(socket: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = screen(socket);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The number in the `queries` column of the traffic table for `host`.
fn queries_shown(s: &str, host: &str) -> Option<u64> {
    s.lines().find(|l| l.contains(host) && !l.contains("live"))?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn console_shows_live_numbers_in_tmux_and_quits_cleanly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    run(&["keys", "new", "--out", "admin.key"], dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let url = format!("http://127.0.0.1:{port}");
    let host = format!("127.0.0.1:{port}");
    let model = run(&["model", "path"], dir).trim().to_string();
    let node = Command::new(prag())
        .args([
            "node",
            "--data",
            "data",
            "--api",
            &host,
            "--device",
            "cpu",
            "--model",
            &model,
            "--admin-key",
            "admin.key",
            "--attestation",
            "dev",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node");
    let socket = format!("prag-test-{}", std::process::id());
    let _guard = Guard { node, socket: socket.clone() };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Command::new(prag())
        .args(["status", "--node", &url])
        .current_dir(dir)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    let conn = ["--node", url.as_str(), "--key", "admin.key", "--allow-dev-node"];
    run(&[&["collection", "create"][..], &conn, &["clinic"]].concat(), dir);
    for (name, text) in [
        ("mri.md", "Remove earrings and other jewellery before the MRI scan; metal heats up in the magnet."),
        ("wifi.md", "The visitor Wi-Fi is called Clinic-Guest and its password is printed on the ward board."),
        ("heart.md", "After a stent you may drive again after one week if you feel well and had no complications."),
    ] {
        std::fs::write(dir.join(name), text).expect("write");
    }
    run(&[&["upload"][..], &conn, &["-c", "clinic", "mri.md", "wifi.md", "heart.md"]].concat(), dir);

    // Through sh so that the console's own exit status is recorded, whatever tmux reports.
    let console = format!(
        "sh -c '{} --node {url} --key admin.key; echo $? > console.exit'",
        Path::new(env!("CARGO_BIN_EXE_prag-console")).display()
    );
    let cwd = dir.to_str().expect("utf8");
    tmux(&socket, &["new-session", "-d", "-x", "120", "-y", "40", "-s", "prag", "-c", cwd, &console]);
    tmux(&socket, &["set-option", "-t", "prag:", "remain-on-exit", "on"]);

    let overview = wait_for(&socket, "the node to be live", |s| s.contains("live") && s.contains(&host));
    assert!(overview.contains("Nodes") && overview.contains("Alerts"), "{overview}");
    tmux(&socket, &["send-keys", "-t", "prag:", "2"]);
    let collections = wait_for(&socket, "the collection", |s| s.contains("clinic"));
    let row = collections.lines().find(|l| l.contains("clinic")).expect("row");
    assert_eq!(row.split_whitespace().find(|w| w.chars().all(|c| c.is_ascii_digit())), Some("3"), "documents: {row}");

    tmux(&socket, &["send-keys", "-t", "prag:", "3"]);
    let before = wait_for(&socket, "the traffic table", |s| queries_shown(s, &host).is_some());
    let before = queries_shown(&before, &host).expect("queries");
    for q in ["can I wear earrings in the MRI?", "what is the wifi password?"] {
        run(&[&["query"][..], &conn, &["-c", "clinic", q]].concat(), dir);
    }
    wait_for(&socket, "the query count to rise by 2", |s| queries_shown(s, &host) == Some(before + 2));

    // A key the node does not accept, and a node that is not there: both said, neither fatal.
    run(&["keys", "new", "--out", "stranger.key"], dir);
    let bad = format!(
        "{} --node {url},http://127.0.0.1:1 --key stranger.key",
        Path::new(env!("CARGO_BIN_EXE_prag-console")).display()
    );
    tmux(&socket, &["new-session", "-d", "-x", "120", "-y", "40", "-s", "bad", "-c", cwd, &bad]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = tmux(&socket, &["capture-pane", "-p", "-t", "bad:"]);
        if s.contains("403") && s.contains("unreachable") {
            break;
        }
        assert!(Instant::now() < deadline, "wrong key / unreachable node not shown:\n{s}");
        std::thread::sleep(Duration::from_millis(200));
    }

    tmux(&socket, &["send-keys", "-t", "prag:", "?"]);
    wait_for(&socket, "the help overlay", |s| s.contains("maximise the main panel"));
    tmux(&socket, &["send-keys", "-t", "prag:", "Escape"]);
    wait_for(&socket, "the help overlay to close", |s| !s.contains("maximise the main panel"));
    tmux(&socket, &["send-keys", "-t", "prag:", "q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit_file = dir.join("console.exit");
    loop {
        if let Ok(code) = std::fs::read_to_string(&exit_file)
            && !code.trim().is_empty()
        {
            assert_eq!(code.trim(), "0", "the console's exit status");
            break;
        }
        assert!(Instant::now() < deadline, "console did not exit after q:\n{}", screen(&socket));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = screen(&socket);
    assert!(!after.contains("Overview") && !after.contains("Nodes"), "terminal not restored:\n{after}");
}
