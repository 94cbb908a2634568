//! Running the `prag` command against a node, as a user would, from a directory of key files.

use std::path::Path;
use std::process::Command;

pub struct Cli<'a> {
    pub url: &'a str,
    pub dir: &'a Path,
}

impl Cli<'_> {
    /// Runs `prag ARGS` with `--node`; returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_prag"))
            .args(args)
            .env("PRAG_NODE", self.url)
            .current_dir(self.dir)
            .output()
            .expect("run prag");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "prag {args:?} failed: {err}");
        out
    }

    /// `ok` with `--json`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("prag {args:?}: not JSON ({e}): {out}"))
    }

    pub fn refused(&self, args: &[&str], why: &str) {
        let (ok, _, err) = self.run(args);
        assert!(!ok, "prag {args:?} should have been refused");
        assert!(err.contains(why), "prag {args:?}: expected {why:?} in {err}");
    }

    /// A new key file `name`: (public key hex, address).
    pub fn key(&self, name: &str) -> (String, String) {
        let v = self.json(&["keys", "new", "--out", name]);
        (
            v["public_key"].as_str().unwrap_or_default().to_string(),
            v["address"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Borrows owned arguments for [`Cli::run`] and friends.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
