//! Upload → query round trip, restart without re-embedding, and the canary scan: no chunk text and
//! no 16-byte window of any chunk vector anywhere under the data directory.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use prag_embedder::{DeviceSpec, Embedder, EmbedderConfig};
use prag_proto::api::{
    CollectionInfo, CreateCollectionRequest, DocumentInfo, NodeStatus, QueryRequest, QueryResponse, UploadResponse,
};

const CANARY: &str = "Canary record 7Q: patient Ottoline Vasquez-Brandauer, born 1961, takes 40 mg of \
                      ziprasidone nightly and reports tinnitus after the February procedure.";

const DOCS: &[(&str, &str)] = CLINIC_DOCS;

fn ask(client: &prag_node::client::NodeClient, rt: &tokio::runtime::Runtime, q: &str) -> QueryResponse {
    rt.block_on(client.post(
        "/v1/collections/clinic/query",
        &QueryRequest { text: q.into(), k: 3, exact: false, ..Default::default() },
    ))
    .expect("query")
}

/// Scans every byte under `dir` for `needles`; returns (file, needle index) hits.
fn scan(dir: &std::path::Path, needles: &[Vec<u8>]) -> Vec<(String, usize)> {
    let mut hits = Vec::new();
    for f in all_files(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for (i, n) in needles.iter().enumerate() {
            if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                hits.push((f.display().to_string(), i));
            }
        }
    }
    hits
}

/// The node's embedded-index directories (`/dev/shm/prag-index-<tag of the data dir>-<pid>`).
fn index_dirs_of(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    use sha2::Digest;
    let canonical = data.canonicalize().expect("data dir");
    let tag = hex::encode(&sha2::Sha256::digest(canonical.as_os_str().as_encoded_bytes())[..8]);
    let prefix = format!("prag-index-{tag}");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds any 16 bytes under `dir` that read as 4 consecutive f32 within 1e-4 of 4 consecutive
/// components of `vector`: catches the vector even if the node's float bits differ in the last
/// places from this process's computation.
fn scan_vector_fuzzy(dir: &std::path::Path, vector: &[f32]) -> Vec<String> {
    let mut hits = Vec::new();
    for f in all_files(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        'file: for off in 0..bytes.len().saturating_sub(15) {
            let read = |k: usize| {
                f32::from_le_bytes([
                    bytes[off + 4 * k],
                    bytes[off + 4 * k + 1],
                    bytes[off + 4 * k + 2],
                    bytes[off + 4 * k + 3],
                ])
            };
            let first = read(0);
            if !first.is_finite() || first.abs() < 1e-3 {
                continue;
            }
            for start in 0..vector.len() - 3 {
                if (first - vector[start]).abs() < 1e-4 && (1..4).all(|k| (read(k) - vector[start + k]).abs() < 1e-4) {
                    hits.push(format!("{} @ {off}", f.display()));
                    break 'file;
                }
            }
        }
    }
    hits
}

#[test]
fn upload_query_restart_and_canary_scan() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let rt = rt();
    let owner = key(1);
    let client = node.client(&owner);

    let info: Option<CollectionInfo> = rt
        .block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "clinic".into() }))
        .expect("create");
    assert_eq!(info.map(|i| i.owner), Some(prag_node::account::public_key_hex(&owner)));
    for (path, text) in DOCS {
        let r: UploadResponse = rt.block_on(client.upload("clinic", path, text.as_bytes())).expect("upload");
        assert_eq!(r.documents.len(), 1);
    }
    let r: UploadResponse = rt.block_on(client.upload("clinic", "canary.txt", CANARY.as_bytes())).expect("canary");
    assert_eq!(r.documents[0].chunks, 1);

    let questions = [
        ("How long do you keep a child's medical records?", "policies/retention.md"),
        ("Can I wear my earrings in the scanner?", "leaflets/mri.md"),
        ("When can I drive again after a stent?", "leaflets/heart.md"),
        ("Which baptism registers were damaged by water?", "archive/log.md"),
        ("What is the password for the visitor network?", "leaflets/wifi.md"),
        ("Which medication does Ottoline take at night?", "canary.txt"),
    ];
    let check_answers = |client: &prag_node::client::NodeClient| {
        for (q, want) in questions {
            let resp = ask(client, &rt, q);
            assert_eq!(resp.hits.first().map(|h| h.path.as_str()), Some(want), "{q}: {:?}", resp.hits);
            assert!(resp.unreadable.is_empty());
        }
    };
    check_answers(&client);
    let canary_hit = ask(&client, &rt, "Ottoline Vasquez-Brandauer ziprasidone");
    // A chunk starts with its context: the document's title (here its file name) and section.
    assert_eq!(canary_hit.hits[0].text, format!("canary\n{CANARY}"));

    // Re-upload of the same content is a no-op; a changed file replaces its document.
    let again: UploadResponse = rt.block_on(client.upload("clinic", DOCS[0].0, DOCS[0].1.as_bytes())).expect("again");
    assert_eq!(again.documents[0].status, prag_proto::api::DocumentStatus::Unchanged);
    let changed = "Guest Wi-Fi is now called Clinic-Visitors and needs the code printed on your appointment letter.";
    let replaced: UploadResponse =
        rt.block_on(client.upload("clinic", "leaflets/wifi.md", changed.as_bytes())).expect("replace");
    assert_eq!(replaced.documents[0].status, prag_proto::api::DocumentStatus::Replaced);
    let wifi = ask(&client, &rt, "What is the guest wifi called now?");
    assert_eq!(wifi.hits[0].text, format!("wifi\n{changed}"));
    let docs: Vec<DocumentInfo> = rt.block_on(client.get("/v1/collections/clinic/documents")).expect("docs");
    assert_eq!(docs.len(), DOCS.len() + 1);

    // The canary's vector, computed the way the node computes it (one text alone, CPU, f32).
    let mut cfg = EmbedderConfig::new(model_dir());
    cfg.device = DeviceSpec::Cpu;
    let embedder = Embedder::load(cfg).expect("embedder");
    let vector = embedder.embed_blocking(vec![CANARY.to_string()]).expect("embed").remove(0);
    let vector_bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    let mut needles: Vec<Vec<u8>> = vector_bytes.windows(16).step_by(4).map(|w| w.to_vec()).collect();
    // The chunk text, and the terms keyword search indexes (lowercased, as they are hashed).
    let text_needles = [
        CANARY.as_bytes().to_vec(),
        b"Ottoline".to_vec(),
        b"ziprasidone".to_vec(),
        b"ottoline".to_vec(),
        b"vasquez-brandauer".to_vec(),
        b"tinnitus".to_vec(),
    ];
    needles.extend(text_needles.iter().cloned());

    // The scanner itself finds planted bytes (so zero hits below means something).
    let control = tempfile::tempdir().expect("tmp");
    std::fs::write(control.path().join("plain.bin"), [&b"xx"[..], &vector_bytes[40..80], CANARY.as_bytes()].concat())
        .expect("write");
    assert!(scan(control.path(), &needles).len() >= 2);
    let nudged: Vec<u8> = vector[10..20].iter().flat_map(|f| (f + 3e-6).to_le_bytes()).collect();
    std::fs::write(control.path().join("nudged.bin"), [&b"abc"[..], &nudged].concat()).expect("write");
    assert_eq!(scan_vector_fuzzy(control.path(), &vector).len(), 2);

    let hits = scan(&data, &needles);
    assert!(hits.is_empty(), "plaintext or vector bytes found at rest: {hits:?}");
    let fuzzy = scan_vector_fuzzy(&data, &vector);
    assert!(fuzzy.is_empty(), "vector found at rest: {fuzzy:?}");
    // The live index (memory-backed, holding dense vectors in the clear by design) holds no text
    // and no term: its keyword vectors carry keyed term ids only.
    let index_dirs = index_dirs_of(&data);
    assert!(!index_dirs.is_empty(), "the node's index directory under /dev/shm was not found");
    for dir in &index_dirs {
        let hits = scan(dir, &text_needles);
        assert!(hits.is_empty(), "text or terms in the index: {hits:?}");
    }

    // Restart: answers come back from the encrypted store, nothing is re-embedded, scan still clean.
    node.restart();
    let client = node.client(&owner);
    let status: NodeStatus = node.status();
    assert_eq!(status.embedder.texts, 0, "restart must not re-embed anything");
    assert_eq!(status.documents, DOCS.len() as u64 + 1);
    for (q, want) in questions.iter().filter(|(_, w)| *w != "leaflets/wifi.md") {
        let resp = ask(&client, &rt, q);
        assert_eq!(resp.hits.first().map(|h| h.path.as_str()), Some(*want), "{q}");
    }
    assert_eq!(ask(&client, &rt, "What is the guest wifi called now?").hits[0].text, format!("wifi\n{changed}"));
    // Keyword search after the restart: the term counts were rebuilt from the sealed vectors.
    let keywords: QueryResponse = rt
        .block_on(client.post(
            "/v1/collections/clinic/query",
            &QueryRequest {
                text: "Ottoline Vasquez-Brandauer ziprasidone".into(),
                k: 3,
                mode: prag_proto::api::SearchMode::Sparse,
                ..Default::default()
            },
        ))
        .expect("keyword query");
    assert_eq!(keywords.hits.first().map(|h| h.path.as_str()), Some("canary.txt"), "{:?}", keywords.hits);
    let hits = scan(&data, &needles);
    assert!(hits.is_empty(), "plaintext or vector bytes found at rest after restart: {hits:?}");
    assert!(scan_vector_fuzzy(&data, &vector).is_empty());

    // Exact search agrees with the index on this small corpus.
    let exact: QueryResponse = rt
        .block_on(client.post(
            "/v1/collections/clinic/query",
            &QueryRequest { text: questions[0].0.into(), k: 3, exact: true, ..Default::default() },
        ))
        .expect("exact");
    assert!(exact.exact);
    assert_eq!(exact.hits[0].path, "policies/retention.md");

    // Deleting a document removes it from answers and from disk.
    let _: prag_proto::api::DocumentOutcome = rt
        .block_on(client.post(
            "/v1/collections/clinic/documents/delete",
            &prag_proto::api::DeleteDocumentRequest { doc_id: None, path: Some("canary.txt".into()) },
        ))
        .expect("delete");
    let after = ask(&client, &rt, "Ottoline Vasquez-Brandauer ziprasidone");
    assert!(after.hits.iter().all(|h| h.path != "canary.txt"));

    // Master key file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("master.key")).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!node.log_text().contains("Ottoline"), "plaintext leaked into the log");
}
