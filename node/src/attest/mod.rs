//! Verifying workers' attestation reports: Intel TDX quotes (`dcap-qvl`, offline against
//! collateral shipped with the report) and AMD SEV-SNP reports (`sev`: ARK → ASK → VCEK, then the
//! report's signature), and checking that a report binds the worker's request-signing key.
//!
//! **Binding.** A report binds key *K* when its 64-byte `report_data` equals
//! `SHA-512("PRAG-WORKER-KEY-V1" ‖ compressed secp256k1 K)`; the worker puts that value in its
//! quote request. Genuine reports made for anything else verify but are refused as not bound.
//!
//! The report a worker registers is JSON (`kind` tells which):
//! - `{"kind":"tdx","quote":HEX,"collateral":{…Intel collateral, binary fields as hex…}}`
//! - `{"kind":"sev-snp","report":HEX,"vcek":HEX of DER,"cert_chain":PEM of ARK and ASK}`
//! - `{"kind":"dev","notice":"DEVELOPMENT REPORT - NOT A HARDWARE QUOTE","signing_key":HEX}` for
//!   machines without a TEE; accepted only by a policy that allows development reports.

mod gate;
mod policy;
mod snp;
mod tdx;
pub mod tsm;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

pub use gate::{AttestationGate, AttestationMode, VERIFY_CACHE_SECS};
pub use policy::{Policy, PolicyError, TcbStatus};
pub use snp::verify_snp;
pub use tdx::{TdxCollateral, fetch_collateral, verify_tdx};

/// Domain string of the key binding in `report_data`.
pub const BINDING_DOMAIN: &[u8] = b"PRAG-WORKER-KEY-V1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestError {
    #[error("attestation report is malformed: {0}")]
    Malformed(String),
    #[error("TDX quote does not verify: {0}")]
    TdxInvalid(String),
    #[error("SEV-SNP certificate chain does not verify (ARK → ASK → VCEK): {0}")]
    SnpChainInvalid(String),
    #[error("SEV-SNP report signature does not verify with the VCEK: {0}")]
    SnpReportInvalid(String),
    #[error("the report is genuine but not bound to this worker's key (report_data does not commit to it)")]
    NotBound,
    #[error("TDX collateral: {0}")]
    Collateral(String),
    #[error("cannot produce this machine's attestation report: {0}")]
    Unavailable(String),
    #[error("attestation policy: {0}")]
    Policy(String),
}

impl From<AttestError> for crate::error::Error {
    fn from(e: AttestError) -> Self {
        use crate::error::{Error, ErrorKind};
        match &e {
            AttestError::NotBound => Error::new(ErrorKind::UnboundKey, e.to_string()),
            AttestError::Unavailable(_) | AttestError::Collateral(_) => {
                Error::new(ErrorKind::Unavailable, e.to_string())
            }
            AttestError::Policy(_) => Error::config(e.to_string()),
            _ => Error::new(ErrorKind::Attestation, e.to_string()),
        }
    }
}

/// What a verified report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// `tdx` or `sev-snp`.
    pub kind: String,
    /// TDX: the platform's TCB status (`UpToDate`, `OutOfDate`, …). SEV-SNP: `Verified`.
    pub tcb_status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub advisory_ids: Vec<String>,
    /// Hex measurements: TDX `mrtd`, `rtmr0`..`rtmr3`; SEV-SNP `measurement`.
    pub measurements: std::collections::BTreeMap<String, String>,
    #[serde(with = "report_data_hex")]
    pub report_data: [u8; 64],
}

/// A registered attestation report, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AttestationReport {
    Tdx {
        quote: String,
        /// Intel's collateral; when absent, a node configured with a PCCS URL fetches it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collateral: Option<TdxCollateral>,
    },
    SevSnp {
        report: String,
        vcek: String,
        cert_chain: String,
    },
    /// A self-describing development report: it proves nothing and says so.
    Dev {
        notice: String,
        signing_key: String,
    },
}

/// The notice every development report must carry, word for word.
pub const DEV_NOTICE: &str = "DEVELOPMENT REPORT - NOT A HARDWARE QUOTE";

impl AttestationReport {
    /// The JSON of a development report for `signing_key` (hex): proves nothing, says so.
    pub fn development(signing_key: &str) -> String {
        let report = AttestationReport::Dev { notice: DEV_NOTICE.to_string(), signing_key: signing_key.to_string() };
        serde_json::to_string(&report).unwrap_or_default()
    }

    /// Adds Intel collateral fetched from `pccs_url` to a TDX report that carries none (others
    /// are left as they are).
    pub async fn add_collateral(&mut self, pccs_url: &str) -> Result<(), AttestError> {
        if let Some(quote) = self.tdx_quote_needing_collateral() {
            let fetched = fetch_collateral(pccs_url, &quote?).await?;
            if let AttestationReport::Tdx { collateral, .. } = self {
                *collateral = Some(fetched);
            }
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Self, AttestError> {
        serde_json::from_str(text).map_err(|e| AttestError::Malformed(e.to_string()))
    }

    /// Verifies signatures and certificate chains (`now`: unix seconds, for certificate and
    /// collateral validity).
    pub fn verify(&self, now: u64) -> Result<Verified, AttestError> {
        self.verify_with(now, None)
    }

    /// A TDX quote's raw bytes (to fetch its collateral), if this is a TDX report without any.
    pub fn tdx_quote_needing_collateral(&self) -> Option<Result<Vec<u8>, AttestError>> {
        match self {
            AttestationReport::Tdx { quote, collateral: None } => {
                Some(hex::decode(quote.trim()).map_err(|e| AttestError::Malformed(format!("quote is not hex: {e}"))))
            }
            _ => None,
        }
    }

    /// [`verify`](Self::verify), with collateral fetched from a PCCS for a TDX report that carries
    /// none.
    pub fn verify_with(&self, now: u64, fetched: Option<&TdxCollateral>) -> Result<Verified, AttestError> {
        let hex_field = |name: &str, v: &str| {
            hex::decode(v.trim()).map_err(|e| AttestError::Malformed(format!("{name} is not hex: {e}")))
        };
        match self {
            AttestationReport::Tdx { quote, collateral } => {
                let collateral = collateral.as_ref().or(fetched).ok_or_else(|| {
                    AttestError::Collateral(
                        "the report carries none and no PCCS has supplied it (start the node with --pccs-url)".into(),
                    )
                })?;
                verify_tdx(&hex_field("quote", quote)?, collateral, now)
            }
            AttestationReport::SevSnp { report, vcek, cert_chain } => {
                verify_snp(&hex_field("report", report)?, &hex_field("vcek", vcek)?, cert_chain.as_bytes())
            }
            AttestationReport::Dev { notice, signing_key } => {
                if notice != DEV_NOTICE {
                    return Err(AttestError::Malformed(format!("a dev report's notice must read {DEV_NOTICE:?}")));
                }
                let key = prag_proto::account::parse_public_key(signing_key)
                    .map_err(|e| AttestError::Malformed(format!("signing_key: {e}")))?;
                Ok(Verified {
                    kind: "dev".into(),
                    tcb_status: "Development".into(),
                    advisory_ids: Vec::new(),
                    measurements: Default::default(),
                    report_data: binding_for(&key),
                })
            }
        }
    }
}

/// The `report_data` that binds `key`.
pub fn binding_for(key: &k256::ecdsa::VerifyingKey) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(BINDING_DOMAIN);
    h.update(key.to_encoded_point(true).as_bytes());
    h.finalize().into()
}

/// Refuses a verified report that does not bind `key`.
pub fn check_binding(verified: &Verified, key: &k256::ecdsa::VerifyingKey) -> Result<(), AttestError> {
    if verified.report_data == binding_for(key) { Ok(()) } else { Err(AttestError::NotBound) }
}

mod report_data_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let bytes = hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom("expected 64 bytes"))
    }
}
