//! Bad requests and bad files: each a clear error with its reason, nothing lost, node keeps running.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use k256::ecdsa::SigningKey;
use prag_proto::api::{CreateCollectionRequest, DocumentInfo, ErrorBody, QueryRequest, QueryResponse, UploadResponse};
use prag_proto::auth::{self, sign_request};

/// Sends a request signed with `key` at `timestamp` with `nonce`; returns (status, body).
async fn raw(
    http: &reqwest::Client,
    url: &str,
    path: &str,
    body: &[u8],
    signer: Option<(&SigningKey, u64, &str)>,
) -> (u16, String) {
    let mut req = http.post(format!("{url}{path}")).header("content-type", "application/json").body(body.to_vec());
    if let Some((key, ts, nonce)) = signer {
        let h = sign_request(key, "POST", path, body, ts, nonce);
        req = req
            .header(auth::HEADER_PUBKEY, h.pubkey)
            .header(auth::HEADER_TIMESTAMP, h.timestamp.to_string())
            .header(auth::HEADER_NONCE, h.nonce)
            .header(auth::HEADER_SIGNATURE, h.signature);
    }
    let resp = req.send().await.expect("send");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn code(body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body).map(|e| e.code).unwrap_or_else(|_| format!("<not an error body: {body}>"))
}

#[test]
fn refuses_bad_requests_and_files_and_keeps_serving() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(&data, &["--max-file-mb", "1"]);
    let rt = rt();
    let owner = key(5);
    let stranger = key(6);
    let client = node.client(&owner);
    let _: serde_json::Value =
        rt.block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "kept".into() })).expect("create");
    let text = "The pharmacy closes at six on weekdays and at noon on Saturdays.";
    let _: UploadResponse = rt
        .block_on(client.post("/v1/collections/kept/documents", &upload_body("pharmacy.txt", text.as_bytes())))
        .expect("upload");

    let http = reqwest::Client::new();
    let url = node.url.clone();
    let q = serde_json::to_vec(&QueryRequest { text: "When does the pharmacy close?".into(), k: 1, exact: false })
        .expect("json");
    let path = "/v1/collections/kept/query";
    let now = prag_node::auth::unix_now();
    rt.block_on(async {
        // Unsigned.
        let (s, b) = raw(&http, &url, path, &q, None).await;
        assert_eq!((s, code(&b)), (401, "unsigned".into()), "{b}");
        // Stale, both directions.
        let (s, b) = raw(&http, &url, path, &q, Some((&owner, now - 120, "aaaaaaaaaaaaaaaa1"))).await;
        assert_eq!((s, code(&b)), (401, "stale".into()), "{b}");
        let (s, b) = raw(&http, &url, path, &q, Some((&owner, now + 120, "aaaaaaaaaaaaaaaa2"))).await;
        assert_eq!((s, code(&b)), (401, "stale".into()), "{b}");
        // Fresh, then replayed.
        let (s, b) = raw(&http, &url, path, &q, Some((&owner, now, "bbbbbbbbbbbbbbbb1"))).await;
        assert_eq!(s, 200, "{b}");
        let (s, b) = raw(&http, &url, path, &q, Some((&owner, now, "bbbbbbbbbbbbbbbb1"))).await;
        assert_eq!((s, code(&b)), (401, "replayed".into()), "{b}");
        // Signature over another body.
        let h = sign_request(&owner, "POST", path, b"{}", now, "cccccccccccccccc1");
        let resp = http
            .post(format!("{url}{path}"))
            .header(auth::HEADER_PUBKEY, h.pubkey)
            .header(auth::HEADER_TIMESTAMP, h.timestamp.to_string())
            .header(auth::HEADER_NONCE, h.nonce)
            .header(auth::HEADER_SIGNATURE, h.signature)
            .body(q.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 401);
        assert_eq!(code(&resp.text().await.expect("body")), "bad_signature");
        // A foreign key: valid signature, not the owner.
        let (s, b) = raw(&http, &url, path, &q, Some((&stranger, now, "dddddddddddddddd1"))).await;
        assert_eq!((s, code(&b)), (403, "forbidden".into()), "{b}");
        assert!(!b.contains("pharmacy closes"));
        // Unknown collection.
        let (s, b) = raw(&http, &url, "/v1/collections/nope/query", &q, Some((&owner, now, "eeeeeeeeeeeeeeee1"))).await;
        assert_eq!((s, code(&b)), (404, "not_found".into()), "{b}");
        // Malformed bodies.
        let (s, b) = raw(&http, &url, path, b"{\"text\": 5}", Some((&owner, now, "ffffffffffffffff1"))).await;
        assert_eq!((s, code(&b)), (400, "bad_request".into()), "{b}");
        let (s, b) = raw(&http, &url, path, b"\xff\xfe garbage", Some((&owner, now, "ffffffffffffffff2"))).await;
        assert_eq!((s, code(&b)), (400, "bad_request".into()), "{b}");
        let (s, b) = raw(&http, &url, path, br#"{"text":"x","k":0}"#, Some((&owner, now, "ffffffffffffffff3"))).await;
        assert_eq!((s, code(&b)), (400, "bad_request".into()), "{b}");
        let (s, b) =
            raw(&http, &url, "/v1/collections", br#"{"name":"bad name!"}"#, Some((&owner, now, "ffffffffffffffff4")))
                .await;
        assert_eq!((s, code(&b)), (400, "bad_request".into()), "{b}");
        let (s, b) =
            raw(&http, &url, "/v1/collections", br#"{"name":"kept"}"#, Some((&owner, now, "ffffffffffffffff5"))).await;
        assert_eq!((s, code(&b)), (409, "conflict".into()), "{b}");
    });

    // Bad files: each refused with a message naming the problem.
    let upload = |path: &str, bytes: &[u8]| -> String {
        let r: anyhow::Result<UploadResponse> =
            rt.block_on(client.post("/v1/collections/kept/documents", &upload_body(path, bytes)));
        format!("{:#}", r.expect_err(&format!("{path} must be refused")))
    };
    assert!(upload("empty.txt", b"").contains("empty"));
    assert!(upload("blob.txt", &[0u8, 1, 2, 3, 0, 0, 7, 8]).contains("binary"));
    assert!(upload("latin1.txt", b"caf\xe9 au lait").contains("UTF-8"));
    let e = upload("rows.jsonl", b"{\"text\":\"fine\"}\n{\"text\": 12}\n");
    assert!(e.contains("line 2"), "{e}");
    assert!(upload("scan.pdf", b"%PDF-1.7 this is not really a pdf").contains("PDF"));
    assert!(upload("tool.exe", b"MZ\x90\x00").contains("unsupported"));
    let big = vec![b'a'; 1024 * 1024 + 10];
    let e = upload("huge.txt", &big);
    assert!(e.contains("413") || e.contains("at most"), "{e}");
    let e = upload("../../etc/passwd.txt", b"x");
    assert!(e.contains("'..'"), "{e}");

    // Nothing lost: the stored document still answers; the node is alive.
    assert!(node.is_running());
    let docs: Vec<DocumentInfo> = rt.block_on(client.get("/v1/collections/kept/documents")).expect("docs");
    assert_eq!(docs.len(), 1);
    let resp: QueryResponse = rt
        .block_on(
            client.post(
                "/v1/collections/kept/query",
                &QueryRequest { text: "pharmacy hours".into(), k: 1, exact: false },
            ),
        )
        .expect("query");
    assert_eq!(resp.hits[0].text, text);
    let metrics =
        rt.block_on(async { reqwest::get(format!("{}/metrics", node.url)).await.expect("m").text().await.expect("t") });
    for reason in ["unsigned", "stale", "replayed", "bad_signature", "forbidden"] {
        assert!(metrics.contains(&format!("prag_refusals_total{{reason=\"{reason}\"}}")), "{reason} not counted");
    }
    node.kill();
}
