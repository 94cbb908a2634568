//! Intel TDX quotes, verified offline with `dcap-qvl` against the Intel collateral.

use std::collections::BTreeMap;

use dcap_qvl::QuoteCollateralV3;
use serde::{Deserialize, Serialize};

use super::{AttestError, Verified};

/// Intel's collateral for a quote: certificate chains and CRLs (PEM and hex of DER), TCB info
/// and QE identity (JSON text) and their signatures (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxCollateral {
    pub pck_crl_issuer_chain: String,
    pub root_ca_crl: String,
    pub pck_crl: String,
    pub tcb_info_issuer_chain: String,
    pub tcb_info: String,
    pub tcb_info_signature: String,
    pub qe_identity_issuer_chain: String,
    pub qe_identity: String,
    pub qe_identity_signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pck_certificate_chain: Option<String>,
}

impl TdxCollateral {
    /// The collateral as `dcap-qvl` fetched it from a PCCS, in this report format.
    pub fn from_dcap(c: &QuoteCollateralV3) -> Self {
        TdxCollateral {
            pck_crl_issuer_chain: c.pck_crl_issuer_chain.clone(),
            root_ca_crl: hex::encode(&c.root_ca_crl),
            pck_crl: hex::encode(&c.pck_crl),
            tcb_info_issuer_chain: c.tcb_info_issuer_chain.clone(),
            tcb_info: c.tcb_info.clone(),
            tcb_info_signature: hex::encode(&c.tcb_info_signature),
            qe_identity_issuer_chain: c.qe_identity_issuer_chain.clone(),
            qe_identity: c.qe_identity.clone(),
            qe_identity_signature: hex::encode(&c.qe_identity_signature),
            pck_certificate_chain: c.pck_certificate_chain.clone(),
        }
    }

    fn to_dcap(&self) -> Result<QuoteCollateralV3, AttestError> {
        let hex = |name: &str, v: &str| {
            hex::decode(v.trim()).map_err(|e| AttestError::Malformed(format!("collateral.{name} is not hex: {e}")))
        };
        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain: self.pck_crl_issuer_chain.clone(),
            root_ca_crl: hex("root_ca_crl", &self.root_ca_crl)?,
            pck_crl: hex("pck_crl", &self.pck_crl)?,
            tcb_info_issuer_chain: self.tcb_info_issuer_chain.clone(),
            tcb_info: self.tcb_info.clone(),
            tcb_info_signature: hex("tcb_info_signature", &self.tcb_info_signature)?,
            qe_identity_issuer_chain: self.qe_identity_issuer_chain.clone(),
            qe_identity: self.qe_identity.clone(),
            qe_identity_signature: hex("qe_identity_signature", &self.qe_identity_signature)?,
            pck_certificate_chain: self.pck_certificate_chain.clone(),
        })
    }
}

/// Verifies a TDX quote against `collateral` at time `now` (unix seconds). An SGX quote is
/// refused: workers must run in a TD.
pub fn verify_tdx(quote: &[u8], collateral: &TdxCollateral, now: u64) -> Result<Verified, AttestError> {
    let collateral = collateral.to_dcap()?;
    // dcap-qvl parses untrusted bytes; a panic inside it must not take the node down.
    let result = std::panic::catch_unwind(|| dcap_qvl::verify::verify(quote, &collateral, now))
        .map_err(|_| AttestError::TdxInvalid("the quote parser failed on this input".into()))?;
    let (report, status, advisory_ids) = match result {
        Ok(r) => (r.report.clone(), r.status.clone(), r.advisory_ids.clone()),
        // dcap-qvl matches the platform TCB (its step 8) only after every signature and chain has
        // verified (steps 1-7). No matching level means the platform's TCB is below every level in
        // Intel's TCB info: out of date. The body is then read from the verified quote itself.
        Err(e) if format!("{e:#}").contains("No matching TCB level") => {
            let quote = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestError::TdxInvalid(format!("{e:#}")))?;
            (quote.report, "OutOfDate".to_string(), vec!["PlatformTcbBelowAllLevels".to_string()])
        }
        Err(e) => return Err(AttestError::TdxInvalid(format!("{e:#}"))),
    };
    let td = report
        .as_td10()
        .ok_or_else(|| AttestError::TdxInvalid("this is an SGX enclave quote, not a TDX quote".into()))?;
    let measurements = BTreeMap::from([
        ("mrtd".to_string(), hex::encode(td.mr_td)),
        ("rtmr0".to_string(), hex::encode(td.rt_mr0)),
        ("rtmr1".to_string(), hex::encode(td.rt_mr1)),
        ("rtmr2".to_string(), hex::encode(td.rt_mr2)),
        ("rtmr3".to_string(), hex::encode(td.rt_mr3)),
    ]);
    Ok(Verified { kind: "tdx".into(), tcb_status: status, advisory_ids, measurements, report_data: td.report_data })
}

/// Fetches a quote's collateral from a PCCS (or Intel's PCS) at `pccs_url`.
pub async fn fetch_collateral(pccs_url: &str, quote: &[u8]) -> Result<TdxCollateral, AttestError> {
    let client = dcap_qvl::collateral::CollateralClient::with_default_http(pccs_url)
        .map_err(|e| AttestError::Collateral(format!("cannot build the PCCS client: {e:#}")))?;
    let c = client.fetch(quote).await.map_err(|e| AttestError::Collateral(format!("{pccs_url}: {e:#}")))?;
    Ok(TdxCollateral::from_dcap(&c))
}
