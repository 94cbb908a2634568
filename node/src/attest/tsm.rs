//! This machine's own attestation report through the Linux configfs-tsm interface
//! (`/sys/kernel/config/tsm/report`, kernel ≥ 6.7), for a node or worker running in a TDX or
//! SEV-SNP guest: write 64 bytes of `report_data` to `inblob`, read the signed report from
//! `outblob`, and (SEV-SNP) the VCEK and its chain from `auxblob`'s certificate table.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::{AttestError, AttestationReport};

pub const TSM_ROOT: &str = "/sys/kernel/config/tsm/report";

/// The GUIDs of the SEV-SNP certificate table (AMD GHCB spec), in their byte order on the wire.
const GUID_VCEK: [u8; 16] = guid("63da758d-e664-4564-adc5-f4b93be8accd");
const GUID_ASK: [u8; 16] = guid("4ab7b379-bbac-4fe4-a02f-05aef327c782");
const GUID_ARK: [u8; 16] = guid("c0b406a4-a803-4952-9743-3fb6014cd0ae");

/// A GUID's mixed-endian byte layout (first three groups little-endian).
const fn guid(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut hexes = [0u8; 32];
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if b[i] != b'-' {
            hexes[n] = match b[i] {
                b'0'..=b'9' => b[i] - b'0',
                b'a'..=b'f' => b[i] - b'a' + 10,
                _ => 0,
            };
            n += 1;
        }
        i += 1;
    }
    let mut raw = [0u8; 16];
    let mut k = 0;
    while k < 16 {
        raw[k] = hexes[2 * k] << 4 | hexes[2 * k + 1];
        k += 1;
    }
    [
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10], raw[11], raw[12],
        raw[13], raw[14], raw[15],
    ]
}

fn unavailable(reason: impl Into<String>) -> AttestError {
    AttestError::Unavailable(reason.into())
}

/// A raw report from configfs-tsm.
pub struct TsmOutput {
    pub provider: String,
    pub outblob: Vec<u8>,
    pub auxblob: Option<Vec<u8>>,
}

/// Asks the kernel for a report over `report_data`.
pub fn request(root: &Path, report_data: &[u8; 64]) -> Result<TsmOutput, AttestError> {
    if !root.is_dir() {
        return Err(unavailable(format!(
            "{} does not exist: this is not a TDX or SEV-SNP guest (or configfs is not mounted, or the kernel is \
             older than 6.7). On a machine without a TEE, run nodes with --attestation dev and register workers \
             with `prag worker dev-report`",
            root.display()
        )));
    }
    let tag = crate::crypto::random_hex::<8>().map_err(|_| unavailable("the system random number generator failed"))?;
    let dir: PathBuf = root.join(format!("prag-{tag}"));
    std::fs::create_dir(&dir).map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
    let result = (|| {
        std::fs::write(dir.join("inblob"), report_data).map_err(|e| unavailable(format!("inblob: {e}")))?;
        let provider =
            std::fs::read_to_string(dir.join("provider")).map_err(|e| unavailable(format!("provider: {e}")))?;
        let outblob = std::fs::read(dir.join("outblob")).map_err(|e| unavailable(format!("outblob: {e}")))?;
        let auxblob = std::fs::read(dir.join("auxblob")).ok().filter(|a| !a.is_empty());
        Ok(TsmOutput { provider: provider.trim().to_string(), outblob, auxblob })
    })();
    let _ = std::fs::remove_dir(&dir);
    result
}

/// Splits an SEV-SNP certificate table into (VCEK DER, PEM chain of ASK and ARK).
pub fn split_cert_table(aux: &[u8]) -> Result<(Vec<u8>, String), AttestError> {
    let bad = |why: &str| AttestError::Malformed(format!("SEV-SNP certificate table: {why}"));
    let (mut vcek, mut ask, mut ark) = (None, None, None);
    for entry in aux.chunks(24) {
        if entry.len() < 24 {
            return Err(bad("truncated entry"));
        }
        let guid: [u8; 16] = entry[..16].try_into().map_err(|_| bad("entry"))?;
        if guid == [0u8; 16] {
            break;
        }
        let offset = u32::from_le_bytes([entry[16], entry[17], entry[18], entry[19]]) as usize;
        let len = u32::from_le_bytes([entry[20], entry[21], entry[22], entry[23]]) as usize;
        let cert = aux.get(offset..offset.saturating_add(len)).ok_or_else(|| bad("entry points outside the table"))?;
        match guid {
            GUID_VCEK => vcek = Some(cert.to_vec()),
            GUID_ASK => ask = Some(cert.to_vec()),
            GUID_ARK => ark = Some(cert.to_vec()),
            _ => {}
        }
    }
    let vcek = vcek.ok_or_else(|| bad("no VCEK"))?;
    let pem = |der: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    };
    let chain = match (ask, ark) {
        (Some(ask), Some(ark)) => format!("{}{}", pem(&ask), pem(&ark)),
        _ => return Err(bad("no ASK/ARK: fetch them from AMD's KDS for this processor and add them to the report")),
    };
    Ok((vcek, chain))
}

/// This machine's report binding `report_data`, in the registered-report format. A TDX quote
/// carries no collateral here: pass it through a PCCS (`fetch_collateral`) or let the verifying
/// node fetch it.
pub fn self_report(root: &Path, report_data: &[u8; 64]) -> Result<AttestationReport, AttestError> {
    let out = request(root, report_data)?;
    match out.provider.as_str() {
        p if p.starts_with("tdx") => Ok(AttestationReport::Tdx { quote: hex::encode(&out.outblob), collateral: None }),
        p if p.starts_with("sev") => {
            let aux =
                out.auxblob.ok_or_else(|| unavailable("the SEV-SNP report came without certificates (auxblob)"))?;
            let (vcek, cert_chain) = split_cert_table(&aux)?;
            Ok(AttestationReport::SevSnp { report: hex::encode(&out.outblob), vcek: hex::encode(vcek), cert_chain })
        }
        other => Err(unavailable(format!("unknown configfs-tsm provider {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_layout_matches_the_ghcb_spec() {
        // 63da758d-e664-4564-adc5-f4b93be8accd as stored by the firmware.
        assert_eq!(GUID_VCEK[..4], [0x8d, 0x75, 0xda, 0x63]);
        assert_eq!(GUID_VCEK[4..8], [0x64, 0xe6, 0x64, 0x45]);
        assert_eq!(GUID_VCEK[8..], [0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd]);
    }

    #[test]
    fn cert_table_is_split_and_bad_tables_are_errors() {
        let (vcek, ask, ark) = (b"VCEK-DER".to_vec(), b"ASK-DER".to_vec(), b"ARK-DER".to_vec());
        let header_len = 24 * 4;
        let mut table = Vec::new();
        let mut blobs = Vec::new();
        for (g, c) in [(GUID_ARK, &ark), (GUID_ASK, &ask), (GUID_VCEK, &vcek)] {
            table.extend_from_slice(&g);
            table.extend_from_slice(&((header_len + blobs.len()) as u32).to_le_bytes());
            table.extend_from_slice(&(c.len() as u32).to_le_bytes());
            blobs.extend_from_slice(c);
        }
        table.extend_from_slice(&[0u8; 24]);
        table.extend_from_slice(&blobs);
        let (v, chain) = split_cert_table(&table).unwrap();
        assert_eq!(v, vcek);
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(split_cert_table(&table[..30]).is_err());
        let mut outside = table.clone();
        outside[16] = 0xff;
        assert!(split_cert_table(&outside).is_err());
    }

    #[test]
    fn without_configfs_tsm_it_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = self_report(&dir.path().join("missing"), &[0u8; 64]).unwrap_err().to_string();
        assert!(err.contains("not a TDX or SEV-SNP guest"), "{err}");
    }
}
