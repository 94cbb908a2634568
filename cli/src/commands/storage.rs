//! `prag storage`: this node's storage identity, for registering it in WorkerManager.

use anyhow::Context;
use prag_node::crypto::MasterKey;
use prag_node::identity::{STORAGE_WORKER_TYPE, StorageIdentity};

use crate::args::StorageCommand;

pub fn run(cmd: StorageCommand) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::Identity { data, dev_report } => {
            std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
            let (master, _) = MasterKey::load_or_create(&data.join("master.key")).context("master key")?;
            let p2p = prag_node::load_or_create_keypair(&data)?;
            let peer_id = p2p.public().to_peer_id().to_string();
            let identity = StorageIdentity::derive(&master)?;
            let out = serde_json::json!({
                "peer_id": peer_id,
                "worker_type": STORAGE_WORKER_TYPE,
                "signing_key": identity.signing_key_hex(),
                "address": prag_proto::account::address(&k256::ecdsa::VerifyingKey::from(identity.signing_key())),
                "hpke_public": identity.hpke_public_hex(),
                "register": format!(
                    "prag admin register-worker --ip {peer_id} --type {STORAGE_WORKER_TYPE} --signing-key {} --wallet WALLET --report REPORT_FILE",
                    identity.signing_key_hex()
                ),
            });
            if let Some(path) = dev_report {
                let report = prag_node::attest::AttestationReport::development(&identity.signing_key_hex());
                std::fs::write(&path, report).with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}
