//! Crash safety (SIGKILL mid-upload) and tamper detection (one flipped ciphertext byte).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use prag_proto::api::{CreateCollectionRequest, DocumentInfo, QueryRequest, QueryResponse, UploadResponse};

/// A document with a unique marker sentence and enough text for several chunks.
fn document(i: usize) -> String {
    let mut text = format!("Specimen ledger entry {i}: marker code ZX{i:04} belongs to ward {}.\n\n", i % 17);
    for p in 0..6 {
        text.push_str(&format!(
            "Paragraph {p} of entry {i}. The sample was logged at the reception desk, labelled with the patient's \
             hospital number, stored at four degrees and couriered to the regional laboratory the same afternoon, \
             where a technician confirmed the seal was intact and recorded the arrival time in the register.\n\n"
        ));
    }
    text
}

#[test]
fn sigkill_mid_upload_loses_no_committed_document_and_shows_no_partial_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    // Plain token windows: the test recomputes each document's chunks with the tokenizer.
    let mut node = NodeProcess::start(&data, &["--chunk-tokens", "64", "--chunk-overlap", "8", "--chunking", "tokens"]);
    let rt = rt();
    let owner = key(3);
    let client = Arc::new(node.client(&owner));
    let _: serde_json::Value = rt
        .block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "ledger".into() }))
        .expect("create");

    // Upload 400 documents, 4 in flight, recording each the node reports committed; kill the node
    // once 40 are committed, while more are in flight.
    let committed: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let total = 400;
    rt.block_on(async {
        use futures::StreamExt;
        let killer = {
            let committed = Arc::clone(&committed);
            async move {
                loop {
                    if committed.lock().map(|c| c.len()).unwrap_or(0) >= 40 {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        };
        let uploads = futures::stream::iter((0..total).map(|i| {
            let client = Arc::clone(&client);
            let committed = Arc::clone(&committed);
            async move {
                let path = format!("entries/{i:04}.txt");
                let r: Result<UploadResponse, prag_node::ClientError> =
                    client.upload("ledger", &path, document(i).as_bytes()).await;
                if let (Ok(r), Ok(mut c)) = (r, committed.lock()) {
                    c.push((path, r.documents[0].chunks));
                }
            }
        }))
        .buffer_unordered(4)
        .collect::<Vec<()>>();
        tokio::select! {
            _ = killer => {}
            _ = uploads => panic!("all uploads finished before the kill; make the corpus larger"),
        }
    });
    node.kill();
    let committed = committed.lock().expect("lock").clone();
    assert!(committed.len() >= 40 && committed.len() < total, "{}", committed.len());

    node.restart();
    let client = node.client(&owner);
    let docs: Vec<DocumentInfo> = rt.block_on(client.get("/v1/collections/ledger/documents")).expect("docs");
    // Every reported commit survived with all its chunks.
    for (path, chunks) in &committed {
        let d = docs.iter().find(|d| &d.path == path).unwrap_or_else(|| panic!("committed {path} lost"));
        assert_eq!(d.chunks, *chunks, "{path}");
    }
    // Anything else visible was committed just before the kill (at most the 4 in flight), and is
    // whole: all its chunks are there, and its first chunk is found verbatim by exact search.
    assert!(docs.len() <= committed.len() + 4, "{} visible, {} committed", docs.len(), committed.len());
    let model = prag_embedder::ModelDir::open(&model_dir()).expect("model dir");
    let tokenizer = prag_embedder::TextTokenizer::load(&model).expect("tokenizer");
    for d in &docs {
        let i: usize = d.path[8..12].parse().expect("index");
        let text = document(i);
        let spans = tokenizer.token_spans(&text, 64, 8).expect("spans");
        assert_eq!(d.chunks, spans.len() as u64, "{} is partial", d.path);
        let first = text[spans[0].start..spans[0].end].to_string();
        let resp: QueryResponse = rt
            .block_on(client.post(
                "/v1/collections/ledger/query",
                &QueryRequest { text: first.clone(), k: 1, exact: true, ..Default::default() },
            ))
            .expect("query");
        let hit = resp.hits.first().expect("a hit");
        assert_eq!((hit.path.as_str(), hit.chunk, hit.text.as_str()), (d.path.as_str(), 0, first.as_str()));
        assert!(resp.unreadable.is_empty());
    }
    let log = node.log_text();
    assert!(!log.contains("cannot read document") && !log.contains("unreadable"), "{log}");
    // No temporary files survive the restart.
    assert!(all_files(&data).iter().all(|f| !f.to_string_lossy().ends_with(".tmp")));
}

#[test]
fn flipped_ciphertext_byte_is_an_integrity_error_and_the_rest_is_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &[]);
    let rt = rt();
    let owner = key(4);
    let client = node.client(&owner);
    let _: serde_json::Value =
        rt.block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "notes".into() })).expect("create");
    let target = "The vault combination for the records room is kept by the duty manager.";
    let other = "Visiting hours on the maternity ward are from two until eight in the evening.";
    for (p, t) in [("vault.txt", target), ("visiting.txt", other)] {
        let _: UploadResponse = rt.block_on(client.upload("notes", p, t.as_bytes())).expect("up");
    }
    let docs: Vec<DocumentInfo> = rt.block_on(client.get("/v1/collections/notes/documents")).expect("docs");
    let vault = docs.iter().find(|d| d.path == "vault.txt").expect("vault doc");

    // Flip one byte inside the chunk's sealed text: after the magic (8), header length (4) and the
    // sealed header, then the chunk's length (4) and 12-byte nonce, the next bytes are ciphertext.
    let file = all_files(&data)
        .into_iter()
        .find(|f| f.to_string_lossy().ends_with(&format!("{}.doc", vault.doc_id)))
        .expect("file");
    let mut bytes = std::fs::read(&file).expect("read");
    let hlen = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let text_start = 12 + hlen + 4 + 12;
    bytes[text_start + 5] ^= 0x01;
    std::fs::write(&file, &bytes).expect("write");

    let ask = |q: &str| -> QueryResponse {
        rt.block_on(client.post(
            "/v1/collections/notes/query",
            &QueryRequest { text: q.into(), k: 2, exact: false, ..Default::default() },
        ))
        .expect("query")
    };
    let resp = ask("Who keeps the vault combination?");
    assert!(resp.hits.iter().all(|h| h.path != "vault.txt"), "tampered chunk served: {:?}", resp.hits);
    assert!(resp.hits.iter().all(|h| chunk_body(&h.text) != target));
    assert_eq!(resp.unreadable.len(), 1);
    assert!(resp.unreadable[0].error.contains("integrity"), "{:?}", resp.unreadable);
    // The rest is served, and the node keeps running.
    let resp = ask("When can I visit the maternity ward?");
    assert_eq!(chunk_body(&resp.hits[0].text), other);
    assert!(node.is_running());
    let metrics = rt.block_on(async {
        reqwest::get(format!("{}/metrics", node.url)).await.expect("metrics").text().await.expect("text")
    });
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("prag_integrity_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 1, "{metrics}");
}
