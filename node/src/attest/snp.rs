//! AMD SEV-SNP reports, verified with the `sev` crate: ARK (self-signed) → ASK → VCEK, then the
//! report's signature with the VCEK.

use std::collections::BTreeMap;

use sev::certs::snp::{Certificate, Chain, Verifiable, ca};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;

use super::{AttestError, Verified};

/// Splits a PEM bundle into its certificates.
fn pem_blocks(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END") {
            out.push(std::mem::take(&mut current).into_bytes());
        }
    }
    out
}

/// Verifies `report` (the raw 1184-byte report) with `vcek_der` and the ARK/ASK in `chain_pem`.
pub fn verify_snp(report: &[u8], vcek_der: &[u8], chain_pem: &[u8]) -> Result<Verified, AttestError> {
    let parsed =
        AttestationReport::from_bytes(report).map_err(|e| AttestError::Malformed(format!("SEV-SNP report: {e}")))?;
    let vcek = Certificate::from_der(vcek_der).map_err(|e| AttestError::Malformed(format!("VCEK certificate: {e}")))?;
    let certs: Vec<Certificate> = pem_blocks(chain_pem)
        .iter()
        .map(|b| Certificate::from_pem(b).map_err(|e| AttestError::Malformed(format!("cert_chain: {e}"))))
        .collect::<Result<_, _>>()?;
    if certs.len() != 2 {
        return Err(AttestError::Malformed(format!("cert_chain must hold the ARK and the ASK, found {}", certs.len())));
    }
    // AMD ships the chain as ASK then ARK; accept either order by finding the self-signed one.
    let self_signed = |c: &Certificate| (c, c).verify().is_ok();
    let (ark, ask) = if self_signed(&certs[1]) {
        (certs[1].clone(), certs[0].clone())
    } else if self_signed(&certs[0]) {
        (certs[0].clone(), certs[1].clone())
    } else {
        return Err(AttestError::SnpChainInvalid("no self-signed ARK in cert_chain".into()));
    };
    let chain = Chain { ca: ca::Chain { ark, ask }, vek: vcek };
    (&chain).verify().map_err(|e| AttestError::SnpChainInvalid(e.to_string()))?;
    (&chain, &parsed).verify().map_err(|e| AttestError::SnpReportInvalid(e.to_string()))?;
    Ok(Verified {
        kind: "sev-snp".into(),
        tcb_status: "Verified".into(),
        advisory_ids: Vec::new(),
        measurements: BTreeMap::from([("measurement".to_string(), hex::encode(parsed.measurement))]),
        report_data: parsed.report_data,
    })
}
