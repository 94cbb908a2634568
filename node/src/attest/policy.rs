//! Which verified reports a node accepts: a TOML policy on the TCB status, the measurements and
//! the report's age, and whether development reports are allowed.
//!
//! ```toml
//! min_tcb_status = "UpToDate"        # the worst acceptable TDX status (see `TcbStatus`)
//! allowed_mrtd = ["…96 hex…"]        # TDX; empty list = any
//! allowed_rtmr0 = []                 # likewise rtmr1, rtmr2, rtmr3
//! allowed_snp_measurements = []      # SEV-SNP launch measurements; empty = any
//! max_report_age_secs = 86400        # older registrations must be renewed
//! allow_dev = false                  # development reports (never on a production node)
//! ```

use serde::{Deserialize, Serialize};

use super::Verified;

/// Intel's TCB statuses, from best to worst. `Revoked` is never acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
}

impl TcbStatus {
    pub fn parse(s: &str) -> Option<TcbStatus> {
        Some(match s {
            "UpToDate" => TcbStatus::UpToDate,
            "SWHardeningNeeded" => TcbStatus::SWHardeningNeeded,
            "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSWHardeningNeeded,
            "OutOfDate" => TcbStatus::OutOfDate,
            "OutOfDateConfigurationNeeded" => TcbStatus::OutOfDateConfigurationNeeded,
            "Revoked" => TcbStatus::Revoked,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_min_status")]
    pub min_tcb_status: TcbStatus,
    #[serde(default)]
    pub allowed_mrtd: Vec<String>,
    #[serde(default)]
    pub allowed_rtmr0: Vec<String>,
    #[serde(default)]
    pub allowed_rtmr1: Vec<String>,
    #[serde(default)]
    pub allowed_rtmr2: Vec<String>,
    #[serde(default)]
    pub allowed_rtmr3: Vec<String>,
    #[serde(default)]
    pub allowed_snp_measurements: Vec<String>,
    #[serde(default = "default_max_age")]
    pub max_report_age_secs: u64,
    #[serde(default)]
    pub allow_dev: bool,
}

fn default_min_status() -> TcbStatus {
    TcbStatus::UpToDate
}

fn default_max_age() -> u64 {
    86_400
}

impl Default for Policy {
    /// UpToDate only, any measurement, reports up to a day old, no development reports.
    fn default() -> Self {
        Policy {
            min_tcb_status: default_min_status(),
            allowed_mrtd: Vec::new(),
            allowed_rtmr0: Vec::new(),
            allowed_rtmr1: Vec::new(),
            allowed_rtmr2: Vec::new(),
            allowed_rtmr3: Vec::new(),
            allowed_snp_measurements: Vec::new(),
            max_report_age_secs: default_max_age(),
            allow_dev: false,
        }
    }
}

/// Which policy field a report failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attestation policy refuses the report: {field}: {reason}")]
pub struct PolicyError {
    pub field: String,
    pub reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> Result<(), PolicyError> {
    Err(PolicyError { field: field.into(), reason: reason.into() })
}

impl Policy {
    /// Parses a policy file's text; unknown fields and malformed values are errors that name them.
    pub fn from_toml(text: &str) -> Result<Policy, super::AttestError> {
        let p: Policy = toml::from_str(text).map_err(|e| super::AttestError::Policy(e.to_string()))?;
        for (field, list) in [
            ("allowed_mrtd", &p.allowed_mrtd),
            ("allowed_rtmr0", &p.allowed_rtmr0),
            ("allowed_rtmr1", &p.allowed_rtmr1),
            ("allowed_rtmr2", &p.allowed_rtmr2),
            ("allowed_rtmr3", &p.allowed_rtmr3),
            ("allowed_snp_measurements", &p.allowed_snp_measurements),
        ] {
            if let Some(bad) = list.iter().find(|v| v.len() != 96 || !v.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(super::AttestError::Policy(format!("{field}: {bad:?} is not 48 bytes of hex")));
            }
        }
        Ok(p)
    }

    /// Checks a verified report registered at `issued_at` against the policy at `now`.
    pub fn check(&self, v: &Verified, issued_at: u64, now: u64) -> Result<(), PolicyError> {
        if now.saturating_sub(issued_at) > self.max_report_age_secs {
            return refuse("max_report_age_secs", format!("the report is {} s old", now.saturating_sub(issued_at)));
        }
        let listed = |field: &str, allowed: &[String], key: &str| -> Result<(), PolicyError> {
            let value = v.measurements.get(key).cloned().unwrap_or_default();
            if allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
                Ok(())
            } else {
                refuse(field, format!("{key} {value} is not allowed"))
            }
        };
        match v.kind.as_str() {
            "dev" => {
                if !self.allow_dev {
                    return refuse("allow_dev", "development reports are refused by this node");
                }
                Ok(())
            }
            "tdx" => {
                let status = TcbStatus::parse(&v.tcb_status).ok_or_else(|| PolicyError {
                    field: "min_tcb_status".into(),
                    reason: format!("unknown TCB status {}", v.tcb_status),
                })?;
                if status == TcbStatus::Revoked || status > self.min_tcb_status {
                    return refuse(
                        "min_tcb_status",
                        format!("TCB status {} is worse than {:?}", v.tcb_status, self.min_tcb_status),
                    );
                }
                listed("allowed_mrtd", &self.allowed_mrtd, "mrtd")?;
                listed("allowed_rtmr0", &self.allowed_rtmr0, "rtmr0")?;
                listed("allowed_rtmr1", &self.allowed_rtmr1, "rtmr1")?;
                listed("allowed_rtmr2", &self.allowed_rtmr2, "rtmr2")?;
                listed("allowed_rtmr3", &self.allowed_rtmr3, "rtmr3")
            }
            "sev-snp" => listed("allowed_snp_measurements", &self.allowed_snp_measurements, "measurement"),
            other => refuse("kind", format!("unknown report kind {other}")),
        }
    }
}
