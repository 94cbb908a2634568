//! `prag storage`: this node's storage identity, for registering it in WorkerManager.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::cluster::{STORAGE_WORKER_TYPE, StorageIdentity};
use crate::crypto::MasterKey;

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print the node's peer id, storage key and HPKE key (creating the node's keys if the data
    /// directory is new), and the `prag admin register-worker` line that admits it.
    Identity {
        /// The node's data directory.
        #[arg(long, env = "PRAG_DATA", default_value = "./prag-data")]
        data: PathBuf,
        /// Also write a development attestation report bound to the storage key to FILE (for
        /// nodes in `--attestation dev`; it proves nothing about hardware).
        #[arg(long, value_name = "FILE")]
        dev_report: Option<PathBuf>,
    },
}

pub fn run(cmd: StorageCommand) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::Identity { data, dev_report } => {
            std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
            let (master, _) = MasterKey::load_or_create(&data.join("master.key")).context("master key")?;
            let p2p = crate::p2p::load_or_create_identity(&data).map_err(anyhow::Error::msg)?;
            let peer_id = p2p.public().to_peer_id().to_string();
            let identity = StorageIdentity::derive(&master).map_err(anyhow::Error::msg)?;
            let out = serde_json::json!({
                "peer_id": peer_id,
                "worker_type": STORAGE_WORKER_TYPE,
                "signing_key": identity.signing_key_hex(),
                "hpke_public": identity.hpke_public_hex(),
                "register": format!(
                    "prag admin register-worker --ip {peer_id} --type {STORAGE_WORKER_TYPE} --signing-key {} --wallet WALLET --report REPORT_FILE",
                    identity.signing_key_hex()
                ),
            });
            if let Some(path) = dev_report {
                let report = crate::attest::AttestationReport::development(&identity.signing_key_hex());
                std::fs::write(&path, report).with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}
