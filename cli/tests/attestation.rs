//! Attestation verification on the genuine samples in `shared/fixtures/attestation/`: each verifies;
//! one flipped byte in the signed body, the signature or a certificate fails; the outdated TDX
//! sample reports its status; and no sample is bound to a key of ours.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use prag_node::attest::{
    AttestError, AttestationReport, TdxCollateral, binding_for, check_binding, verify_snp, verify_tdx,
};

fn fixtures() -> PathBuf {
    std::env::var_os("PRAG_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"))
        .join("attestation")
}

/// Inside the sample collateral's validity window (2025-06-19 .. 2025-07-19).
const TDX_NOW: u64 = 1_750_809_600; // 2025-06-25T00:00:00Z
/// Inside the outdated sample's collateral window (2026-02-18 .. 2026-03-20).
const OUTDATED_NOW: u64 = 1_771_804_800; // 2026-02-23T00:00:00Z

fn tdx(name: &str) -> (Vec<u8>, TdxCollateral) {
    let dir = fixtures().join("tdx");
    let quote = std::fs::read(dir.join(name)).expect("quote");
    let collateral: TdxCollateral =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}_collateral.json"))).expect("collateral"))
            .expect("json");
    (quote, collateral)
}

fn snp() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = fixtures().join("sev-snp");
    let report =
        hex::decode(std::fs::read_to_string(dir.join("report_milan.hex")).expect("report").trim()).expect("hex");
    (
        report,
        std::fs::read(dir.join("vcek_milan.der")).expect("vcek"),
        std::fs::read(dir.join("cert_chain_milan")).expect("chain"),
    )
}

fn some_key() -> k256::ecdsa::VerifyingKey {
    k256::ecdsa::VerifyingKey::from(&k256::ecdsa::SigningKey::from_slice(&[42; 32]).expect("key"))
}

#[test]
fn genuine_tdx_quote_verifies_and_is_not_bound_to_our_key() {
    let (quote, collateral) = tdx("tdx_quote");
    let v = verify_tdx(&quote, &collateral, TDX_NOW).expect("genuine quote verifies");
    assert_eq!(v.kind, "tdx");
    assert_eq!(v.tcb_status, "UpToDate");
    assert_eq!(v.measurements["mrtd"].len(), 96);
    assert_eq!(check_binding(&v, &some_key()), Err(AttestError::NotBound));
    // The JSON form a worker registers verifies the same way.
    let json = serde_json::json!({"kind": "tdx", "quote": hex::encode(&quote), "collateral": collateral});
    let parsed = AttestationReport::parse(&json.to_string()).expect("parse");
    assert_eq!(parsed.verify(TDX_NOW).expect("verify"), v);
    // Without collateral it needs a PCCS; collateral supplied from elsewhere (as fetched) works.
    let bare = serde_json::json!({"kind": "tdx", "quote": hex::encode(&quote)});
    let bare = AttestationReport::parse(&bare.to_string()).expect("parse");
    assert!(matches!(bare.verify(TDX_NOW), Err(AttestError::Collateral(m)) if m.contains("--pccs-url")));
    assert_eq!(bare.verify_with(TDX_NOW, Some(&collateral)).expect("verify"), v);

    // `prag attest verify` says the same, and names the binding failure.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("report.json");
    std::fs::write(&file, json.to_string()).expect("write");
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_prag"))
            .args(["attest", "verify", "--report"])
            .arg(&file)
            .args(["--at", &TDX_NOW.to_string()])
            .args(extra)
            .output()
            .expect("run")
    };
    let ok = run(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("UpToDate"));
    let key_hex = prag_proto::account::public_key_hex(&some_key());
    let unbound = run(&["--signing-key", &key_hex]);
    assert!(!unbound.status.success());
    assert!(String::from_utf8_lossy(&unbound.stderr).contains("not bound"));
}

#[test]
fn tdx_flipped_bytes_fail() {
    let (quote, collateral) = tdx("tdx_quote");
    // Header 48 bytes, TD report body 584: the signed part. Then the signature data.
    for (what, at) in [
        ("header", 20usize),
        ("report body mrtd", 48 + 136 + 3),
        ("report_data", 48 + 520 + 7),
        ("signature", 636 + 10),
    ] {
        let mut q = quote.clone();
        q[at] ^= 0x01;
        assert!(verify_tdx(&q, &collateral, TDX_NOW).is_err(), "flip in {what} not detected");
    }
    // A byte inside the PCK certificate chain carried in the quote.
    let pem = b"-----BEGIN CERTIFICATE-----";
    let cert_at = quote.windows(pem.len()).position(|w| w == pem).expect("cert in quote") + pem.len() + 120;
    let mut q = quote.clone();
    q[cert_at] = if q[cert_at] == b'A' { b'B' } else { b'A' };
    assert!(verify_tdx(&q, &collateral, TDX_NOW).is_err(), "flip in PCK certificate not detected");
    // A byte of the collateral's TCB info signature, and of its issuer chain.
    let mut c = collateral.clone();
    c.tcb_info_signature.replace_range(10..11, if &c.tcb_info_signature[10..11] == "0" { "1" } else { "0" });
    assert!(verify_tdx(&quote, &c, TDX_NOW).is_err(), "flip in TCB info signature not detected");
    let mut c = collateral.clone();
    c.tcb_info = c.tcb_info.replacen("UpToDate", "UpToDatf", 1);
    assert!(verify_tdx(&quote, &c, TDX_NOW).is_err(), "change in TCB info not detected");
    // Outside the collateral's validity window.
    assert!(verify_tdx(&quote, &collateral, TDX_NOW + 365 * 86_400).is_err());
    // Garbage never panics.
    assert!(verify_tdx(&quote[..100], &collateral, TDX_NOW).is_err());
    assert!(verify_tdx(&[], &collateral, TDX_NOW).is_err());
}

#[test]
fn outdated_tdx_reports_its_status_and_sgx_is_refused() {
    let (quote, collateral) = tdx("tdx_quote_outdated");
    let v = verify_tdx(&quote, &collateral, OUTDATED_NOW).expect("signature verifies");
    assert_ne!(v.tcb_status, "UpToDate");
    assert!(v.tcb_status.contains("OutOfDate"), "{}", v.tcb_status);
    let (sgx, sgx_collateral) = tdx("sgx_quote");
    let e = verify_tdx(&sgx, &sgx_collateral, TDX_NOW).expect_err("SGX is not TDX");
    assert!(e.to_string().contains("SGX") || e.to_string().contains("TDX"), "{e}");
}

#[test]
fn genuine_snp_report_verifies_and_flipped_bytes_fail() {
    let (report, vcek, chain) = snp();
    let v = verify_snp(&report, &vcek, &chain).expect("genuine report verifies");
    assert_eq!(v.kind, "sev-snp");
    assert_eq!(v.measurements["measurement"].len(), 96);
    assert_eq!(check_binding(&v, &some_key()), Err(AttestError::NotBound));

    // Signed body (report_data at 0x50, measurement at 0x90), and the signature at 0x2a0.
    for (what, at) in [("report_data", 0x50 + 3), ("measurement", 0x90 + 5), ("signature", 0x2a0 + 8)] {
        let mut r = report.clone();
        r[at] ^= 0x01;
        assert!(verify_snp(&r, &vcek, &chain).is_err(), "flip in {what} not detected");
    }
    // The VCEK certificate's signature (its last bytes) and the ASK/ARK PEM.
    let mut c = vcek.clone();
    let n = c.len();
    c[n - 10] ^= 0x01;
    assert!(verify_snp(&report, &c, &chain).is_err(), "flip in VCEK not detected");
    let text = String::from_utf8(chain.clone()).expect("pem");
    let at = text.find("-----BEGIN CERTIFICATE-----").expect("pem") + 200;
    let mut bytes = chain.clone();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    assert!(verify_snp(&report, &vcek, &bytes).is_err(), "flip in cert chain not detected");
    assert!(verify_snp(&report[..500], &vcek, &chain).is_err());
}

#[test]
fn binding_is_sha512_of_domain_and_compressed_key() {
    use sha2::Digest;
    let k = some_key();
    let mut h = sha2::Sha512::new();
    h.update(b"PRAG-WORKER-KEY-V1");
    h.update(k.to_encoded_point(true).as_bytes());
    let expected: [u8; 64] = h.finalize().into();
    assert_eq!(binding_for(&k), expected);
}

#[test]
fn policy_refuses_outdated_by_default_and_names_the_failed_field() {
    use prag_node::attest::Policy;
    let (quote, collateral) = tdx("tdx_quote_outdated");
    let outdated = verify_tdx(&quote, &collateral, OUTDATED_NOW).expect("verifies");
    let default = Policy::default();
    let e = default.check(&outdated, OUTDATED_NOW, OUTDATED_NOW).expect_err("outdated refused");
    assert_eq!(e.field, "min_tcb_status");
    let lenient = Policy::from_toml("min_tcb_status = \"OutOfDate\"\n").expect("toml");
    lenient.check(&outdated, OUTDATED_NOW, OUTDATED_NOW).expect("allowed when the policy says so");

    let (quote, collateral) = tdx("tdx_quote");
    let fresh = verify_tdx(&quote, &collateral, TDX_NOW).expect("verifies");
    default.check(&fresh, TDX_NOW, TDX_NOW).expect("UpToDate passes the default policy");
    let pinned = Policy::from_toml(&format!("allowed_mrtd = [\"{}\"]\n", "00".repeat(48))).expect("toml");
    assert_eq!(pinned.check(&fresh, TDX_NOW, TDX_NOW).expect_err("mrtd").field, "allowed_mrtd");
    let exact = Policy::from_toml(&format!("allowed_mrtd = [\"{}\"]\n", fresh.measurements["mrtd"])).expect("toml");
    exact.check(&fresh, TDX_NOW, TDX_NOW).expect("listed mrtd passes");
    assert_eq!(default.check(&fresh, TDX_NOW - 2 * 86_400, TDX_NOW).expect_err("old").field, "max_report_age_secs");

    let (report, vcek, chain) = snp();
    let snp_v = verify_snp(&report, &vcek, &chain).expect("snp");
    default.check(&snp_v, 0, 0).expect("any measurement by default");
    let snp_pinned =
        Policy::from_toml(&format!("allowed_snp_measurements = [\"{}\"]\n", "ab".repeat(48))).expect("toml");
    assert_eq!(snp_pinned.check(&snp_v, 0, 0).expect_err("measurement").field, "allowed_snp_measurements");

    assert!(Policy::from_toml("allowed_mrtd = [\"zz\"]").is_err());
    assert!(Policy::from_toml("min_tcb_status = \"Great\"").is_err());
    assert!(Policy::from_toml("no_such_field = 1").is_err());
}

#[test]
fn dev_reports_bind_their_key_and_are_refused_unless_allowed() {
    use prag_node::attest::{DEV_NOTICE, Policy};
    let key = some_key();
    let text = serde_json::json!({"kind": "dev", "notice": DEV_NOTICE, "signing_key": prag_proto::account::public_key_hex(&key)}).to_string();
    let v = AttestationReport::parse(&text).expect("parse").verify(0).expect("dev verifies");
    assert_eq!(v.kind, "dev");
    check_binding(&v, &key).expect("bound to its key");
    assert_eq!(Policy::default().check(&v, 0, 0).expect_err("dev refused").field, "allow_dev");
    Policy::from_toml("allow_dev = true").expect("toml").check(&v, 0, 0).expect("dev allowed");
    let disguised = serde_json::json!({"kind": "dev", "notice": "genuine TDX quote", "signing_key": prag_proto::account::public_key_hex(&key)}).to_string();
    assert!(AttestationReport::parse(&disguised).expect("parse").verify(0).is_err());
}
