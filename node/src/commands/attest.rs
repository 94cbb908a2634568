//! `prag attest self | verify`: this machine's own report (configfs-tsm), and checking a report
//! offline the way a node does.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::attest::{AttestationReport, Policy, check_binding, tsm};

#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Produce this machine's attestation report (TDX or SEV-SNP guest, via configfs-tsm) bound to
    /// --key's public key (a worker) or to the storage key of the node in --storage-data (a
    /// storage node), in the format `prag admin register-worker --report` takes.
    #[command(name = "self")]
    SelfReport {
        /// The account key whose public key the report binds (the worker's signing key).
        #[arg(long, env = "PRAG_KEY", value_name = "FILE", required_unless_present = "storage_data")]
        key: Option<PathBuf>,
        /// Bind the storage key of the node whose data directory this is (`prag storage identity`).
        #[arg(long, value_name = "DIR", conflicts_with = "key")]
        storage_data: Option<PathBuf>,
        /// Fetch the TDX quote's collateral from this PCCS and include it.
        #[arg(long, env = "PRAG_PCCS_URL", value_name = "URL")]
        pccs_url: Option<String>,
        /// Write the report here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a report: signatures and certificates, the policy, and (with --signing-key) the
    /// binding. Exits non-zero, naming the failed check, if the report would be refused.
    Verify {
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// The worker's signing public key (hex) the report must bind.
        #[arg(long, value_name = "PUBKEY")]
        signing_key: Option<String>,
        /// Policy file (TOML); default: the built-in policy.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Accept development reports (as a node in --attestation dev mode).
        #[arg(long)]
        dev: bool,
        /// Verify as of this unix time (default: now).
        #[arg(long)]
        at: Option<u64>,
        /// Fetch missing TDX collateral from this PCCS.
        #[arg(long, env = "PRAG_PCCS_URL", value_name = "URL")]
        pccs_url: Option<String>,
    },
}

pub fn run(cmd: AttestCommand) -> anyhow::Result<()> {
    let rt = crate::cli::runtime()?;
    match cmd {
        AttestCommand::SelfReport { key, storage_data, pccs_url, out } => {
            let public = match (key, storage_data) {
                (Some(key), _) => *crate::account::load(&key)?.verifying_key(),
                (None, Some(dir)) => {
                    let (master, _) = crate::crypto::MasterKey::load_or_create(&dir.join("master.key"))
                        .context("the storage node's master key")?;
                    let id = crate::cluster::StorageIdentity::derive(&master).map_err(anyhow::Error::msg)?;
                    *id.signing_key().verifying_key()
                }
                (None, None) => anyhow::bail!("give --key or --storage-data"),
            };
            let binding = crate::attest::binding_for(&public);
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
            let now = at.unwrap_or_else(crate::auth::unix_now);
            let fetched = match (pccs_url.as_deref(), parsed.tdx_quote_needing_collateral()) {
                (Some(url), Some(quote)) => Some(rt.block_on(crate::attest::fetch_collateral(url, &quote?))?),
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
