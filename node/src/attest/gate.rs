//! The attestation gate: is a registered worker's report genuine, allowed by this node's policy,
//! and bound to the key that signs its requests?
//!
//! Reports are checked when a worker registers (through this node), on every request (cheap: the
//! signature and certificate checks are cached per report for [`VERIFY_CACHE_SECS`]), and for
//! every registered worker again whenever the policy file changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use prag_proto::api::AttestationStatus;
use prag_proto::contracts::worker::Worker;
use sha2::{Digest, Sha256};

use super::{AttestError, AttestationReport, Policy, TdxCollateral, Verified, check_binding};
use crate::error::{Error, ErrorKind, Result};

/// How long a report's signature/certificate verdict is reused before it is checked again.
pub const VERIFY_CACHE_SECS: u64 = 3600;

/// Which reports a node accepts at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationMode {
    /// Hardware reports only (TDX, SEV-SNP). The default.
    Hardware,
    /// Development reports too: for machines without a TEE. Never for real data.
    Dev,
}

impl std::str::FromStr for AttestationMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hardware" => Ok(AttestationMode::Hardware),
            "dev" => Ok(AttestationMode::Dev),
            other => Err(Error::config(format!("unknown attestation mode {other:?}: expected `hardware` or `dev`"))),
        }
    }
}

impl AttestationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AttestationMode::Hardware => "hardware",
            AttestationMode::Dev => "dev",
        }
    }
}

pub struct AttestationGate {
    mode: AttestationMode,
    policy_path: Option<PathBuf>,
    policy: RwLock<Policy>,
    policy_mtime: Mutex<Option<SystemTime>>,
    /// SHA-256 of a report's text → (when verified, verdict).
    verified: Mutex<HashMap<[u8; 32], CachedVerdict>>,
    max_liveliness_age: u64,
    /// Where TDX collateral comes from for reports that carry none.
    pccs_url: Option<String>,
    /// SHA-256 of a TDX quote → collateral fetched for it, or when fetching last failed.
    collateral: Mutex<HashMap<[u8; 32], Result<TdxCollateral, u64>>>,
}

/// When a report was verified, and the verdict.
type CachedVerdict = (u64, std::result::Result<Verified, String>);

/// A report that does not pass, and why.
fn refused(reason: String) -> Error {
    Error::new(ErrorKind::Attestation, format!("the worker's attestation does not pass: {reason}"))
}

/// How long after a failed PCCS fetch the node tries again.
const COLLATERAL_RETRY_SECS: u64 = 300;

fn load_policy(path: &std::path::Path) -> Result<(Policy, Option<SystemTime>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read policy {}: {e}", path.display())))?;
    let policy = Policy::from_toml(&text).map_err(|e| Error::config(format!("policy {}: {e}", path.display())))?;
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((policy, mtime))
}

impl AttestationGate {
    pub fn new(
        mode: AttestationMode,
        policy_path: Option<PathBuf>,
        max_liveliness_age: u64,
        pccs_url: Option<String>,
    ) -> Result<Self> {
        let (policy, mtime) = match &policy_path {
            Some(p) => load_policy(p)?,
            None => (Policy::default(), None),
        };
        let gate = AttestationGate {
            mode,
            policy_path,
            policy: RwLock::new(Policy::default()),
            policy_mtime: Mutex::new(mtime),
            verified: Mutex::new(HashMap::new()),
            max_liveliness_age,
            pccs_url,
            collateral: Mutex::new(HashMap::new()),
        };
        gate.install(policy);
        Ok(gate)
    }

    pub fn mode(&self) -> AttestationMode {
        self.mode
    }

    /// Whether missing TDX collateral can be fetched at all.
    pub fn has_pccs(&self) -> bool {
        self.pccs_url.is_some()
    }

    pub fn max_liveliness_age(&self) -> u64 {
        self.max_liveliness_age
    }

    /// The mode decides about development reports, whatever the file says.
    fn install(&self, mut policy: Policy) {
        let allow_dev = self.mode == AttestationMode::Dev;
        if policy.allow_dev && !allow_dev {
            tracing::warn!(
                "the policy file sets allow_dev = true, but this node is not in --attestation dev mode: development reports stay refused"
            );
        }
        policy.allow_dev = allow_dev;
        *self.policy.write() = policy;
    }

    /// Reloads the policy file if it changed since it was read. `None`: nothing changed (or no
    /// file); `Some(Err)`: the new file is invalid and the old policy stays.
    pub fn reload_if_changed(&self) -> Option<Result<()>> {
        let path = self.policy_path.as_ref()?;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if mtime == *self.policy_mtime.lock() {
            return None;
        }
        *self.policy_mtime.lock() = mtime;
        Some(load_policy(path).map(|(p, _)| self.install(p)))
    }

    /// Signature and certificate checks of a report's text, cached.
    fn verify(&self, report: &str, now: u64) -> Result<Verified> {
        let digest: [u8; 32] = Sha256::digest(report.as_bytes()).into();
        if let Some((at, verdict)) = self.verified.lock().get(&digest)
            && now.saturating_sub(*at) < VERIFY_CACHE_SECS
        {
            return verdict.clone().map_err(refused);
        }
        let verdict = AttestationReport::parse(report)
            .and_then(|r| {
                let fetched = r.tdx_quote_needing_collateral().and_then(|q| {
                    let digest: [u8; 32] = Sha256::digest(q.ok()?).into();
                    self.collateral.lock().get(&digest).and_then(|c| c.as_ref().ok().cloned())
                });
                r.verify_with(now, fetched.as_ref())
            })
            .map_err(|e| e.to_string());
        let mut cache = self.verified.lock();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(digest, (now, verdict.clone()));
        verdict.map_err(refused)
    }

    /// Fetches collateral from the PCCS for a TDX report that carries none (once per quote; a
    /// failure is retried after [`COLLATERAL_RETRY_SECS`]). Returns whether new collateral came.
    pub async fn ensure_collateral(&self, report: &str, now: u64) -> bool {
        let Some(url) = self.pccs_url.as_deref() else { return false };
        let Ok(parsed) = AttestationReport::parse(report) else { return false };
        let Some(Ok(quote)) = parsed.tdx_quote_needing_collateral() else { return false };
        let digest: [u8; 32] = Sha256::digest(&quote).into();
        match self.collateral.lock().get(&digest) {
            Some(Ok(_)) => return false,
            Some(Err(failed_at)) if now.saturating_sub(*failed_at) < COLLATERAL_RETRY_SECS => return false,
            _ => {}
        }
        let fetched = super::fetch_collateral(url, &quote).await;
        let ok = fetched.is_ok();
        match &fetched {
            Ok(_) => tracing::info!(pccs = url, "fetched TDX collateral for a worker's quote"),
            Err(e) => tracing::warn!(pccs = url, error = %e, "cannot fetch TDX collateral"),
        }
        self.collateral.lock().insert(digest, fetched.map_err(|_| now));
        // The verdict cached without collateral is stale now.
        self.verified.lock().remove(&<[u8; 32]>::from(Sha256::digest(report.as_bytes())));
        ok
    }

    /// Verify, then policy, then binding (when the worker names a signing key).
    fn judge(&self, report: &str, signing_key: Option<&str>, issued_at: u64, now: u64) -> Result<Verified> {
        let verified = self.verify(report, now)?;
        self.policy.read().check(&verified, issued_at, now).map_err(|e| refused(e.to_string()))?;
        if let Some(k) = signing_key {
            let key = prag_proto::account::parse_public_key(k)
                .map_err(|e| refused(format!("the worker's signing key is invalid: {e}")))?;
            check_binding(&verified, &key).map_err(|e| match e {
                AttestError::NotBound => {
                    Error::new(ErrorKind::UnboundKey, "the worker's attestation report does not bind its signing key")
                }
                other => refused(other.to_string()),
            })?;
        }
        Ok(verified)
    }

    /// A registered worker's standing under the current policy.
    pub fn check_worker(&self, w: &Worker, now: u64) -> Result<Verified> {
        self.judge(&w.attestation_report, w.signing_key.as_deref(), w.registered_at.unwrap_or(0), now)
    }

    /// A report offered at registration (issued now).
    pub fn check_registration(&self, report: &str, signing_key: Option<&str>, now: u64) -> Result<Verified> {
        self.judge(report, signing_key, now, now)
    }

    pub fn status<'a>(&self, workers: impl Iterator<Item = &'a Worker>, now: u64) -> AttestationStatus {
        let (mut accepted, mut refused) = (0, 0);
        for w in workers {
            if self.check_worker(w, now).is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        let policy = self.policy.read();
        AttestationStatus {
            mode: self.mode.as_str().to_string(),
            policy_source: self
                .policy_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in default".to_string()),
            min_tcb_status: format!("{:?}", policy.min_tcb_status),
            max_report_age_secs: policy.max_report_age_secs,
            workers_accepted: accepted,
            workers_refused: refused,
            max_liveliness_age_secs: self.max_liveliness_age,
        }
    }
}
