//! `prag attest self | verify`: this machine's own report (configfs-tsm), and checking a report
//! offline the way a node does.

use anyhow::Context;
use prag_node::attest::{AttestationReport, Policy, check_binding, tsm};

use crate::args::AttestCommand;

pub fn run(cmd: AttestCommand) -> anyhow::Result<()> {
    let rt = crate::connect::runtime()?;
    match cmd {
        AttestCommand::SelfReport { key, storage_data, pccs_url, out } => {
            let public = match (key, storage_data) {
                (Some(key), _) => *prag_node::account::load(&key)?.verifying_key(),
                (None, Some(dir)) => {
                    let (master, _) = prag_node::crypto::MasterKey::load_or_create(&dir.join("master.key"))
                        .context("the storage node's master key")?;
                    let id = prag_node::identity::StorageIdentity::derive(&master)?;
                    *id.signing_key().verifying_key()
                }
                (None, None) => anyhow::bail!("give --key or --storage-data"),
            };
            let binding = prag_node::attest::binding_for(&public);
            let mut report = tsm::self_report(std::path::Path::new(tsm::TSM_ROOT), &binding)?;
            if let Some(url) = pccs_url.as_deref() {
                rt.block_on(report.add_collateral(url))?;
            }
            let text = serde_json::to_string(&report)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        AttestCommand::Verify { report, signing_key, policy, dev, at, pccs_url } => {
            let text = std::fs::read_to_string(&report).with_context(|| format!("cannot read {}", report.display()))?;
            let parsed = AttestationReport::parse(&text)?;
            let now = at.unwrap_or_else(prag_node::unix_now);
            let fetched = match (pccs_url.as_deref(), parsed.tdx_quote_needing_collateral()) {
                (Some(url), Some(quote)) => Some(rt.block_on(prag_node::attest::fetch_collateral(url, &quote?))?),
                _ => None,
            };
            let verified = parsed.verify_with(now, fetched.as_ref())?;
            let mut policy = match policy {
                Some(p) => Policy::from_toml(
                    &std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?,
                )
                .map_err(|e| anyhow::anyhow!("policy {}: {e}", p.display()))?,
                None => Policy::default(),
            };
            policy.allow_dev = dev;
            // A report checked on its own is judged as if registered now.
            policy.check(&verified, now, now)?;
            if let Some(k) = signing_key {
                check_binding(&verified, &prag_proto::account::parse_public_key(&k)?)?;
            }
            println!("{}", serde_json::to_string_pretty(&verified)?);
            Ok(())
        }
    }
}
