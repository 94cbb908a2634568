//! Bad requests and bad files: each a clear error with its reason, nothing lost, node keeps running.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use k256::ecdsa::SigningKey;
use prag_proto::api::{CreateCollectionRequest, DocumentInfo, QueryRequest, QueryResponse, UploadResponse};

/// Sends `body` to `path` on the owner's channel signed by `signer` at `timestamp` with `nonce`
/// (None: the signature headers are left out); returns (status, code).
fn raw(node: &NodeProcess, path: &str, body: &[u8], signer: (&SigningKey, u64, &str), unsigned: bool) -> (u16, String) {
    let (key, ts, nonce) = signer;
    let client = node.client(key);
    let sealed = sealed_request(&client, "POST", path, body, ts, nonce, |h| {
        if unsigned {
            h.auth.signature.clear();
        }
    });
    let a = send_sealed(&client, &sealed);
    (a.status, a.code())
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
    let _: UploadResponse = rt.block_on(client.upload("kept", "pharmacy.txt", text.as_bytes())).expect("upload");

    let q = serde_json::to_vec(&QueryRequest {
        text: "When does the pharmacy close?".into(),
        k: 1,
        exact: false,
        ..Default::default()
    })
    .expect("json");
    let path = "/v1/collections/kept/query";
    let now = prag_node::unix_now();
    // Unsigned (an empty signature).
    assert_eq!(raw(&node, path, &q, (&owner, now, "aaaaaaaaaaaaaaaa0"), true), (401, "malformed_signature".into()));
    // Stale, both directions.
    assert_eq!(raw(&node, path, &q, (&owner, now - 120, "aaaaaaaaaaaaaaaa1"), false), (401, "stale".into()));
    assert_eq!(raw(&node, path, &q, (&owner, now + 120, "aaaaaaaaaaaaaaaa2"), false), (401, "stale".into()));
    // Fresh, then replayed.
    assert_eq!(raw(&node, path, &q, (&owner, now, "bbbbbbbbbbbbbbbb1"), false).0, 200);
    assert_eq!(raw(&node, path, &q, (&owner, now, "bbbbbbbbbbbbbbbb1"), false), (401, "replayed".into()));
    // Signature over another body: the body is read and does not have the signed hash.
    let c = node.client(&owner);
    let sealed = sealed_request(&c, "POST", path, &q, now, "cccccccccccccccc1", |h| {
        h.auth =
            prag_proto::auth::sign_request(&owner, "POST", path, b"{}", now, "cccccccccccccccc1", &h.auth.audience);
    });
    let a = send_sealed(&c, &sealed);
    assert_eq!((a.status, a.code()), (401, "body_mismatch".into()));
    // Someone else's key named as the signer.
    let sealed = sealed_request(&c, "POST", path, &q, now, "cccccccccccccccc2", |h| {
        h.auth.pubkey = prag_proto::account::public_key_hex(stranger.verifying_key());
    });
    let a = send_sealed(&c, &sealed);
    assert_eq!((a.status, a.code()), (401, "bad_signature".into()));
    // A foreign key: valid signature, not the owner.
    assert_eq!(raw(&node, path, &q, (&stranger, now, "dddddddddddddddd1"), false), (403, "forbidden".into()));
    // Unknown collection.
    assert_eq!(
        raw(&node, "/v1/collections/nope/query", &q, (&owner, now, "eeeeeeeeeeeeeeee1"), false),
        (404, "not_found".into())
    );
    // Malformed bodies.
    assert_eq!(
        raw(&node, path, b"{\"text\": 5}", (&owner, now, "ffffffffffffffff1"), false),
        (400, "bad_request".into())
    );
    assert_eq!(
        raw(&node, path, b"\xff\xfe garbage", (&owner, now, "ffffffffffffffff2"), false),
        (400, "bad_request".into())
    );
    assert_eq!(
        raw(&node, path, br#"{"text":"x","k":0}"#, (&owner, now, "ffffffffffffffff3"), false),
        (400, "bad_request".into())
    );
    assert_eq!(
        raw(&node, "/v1/collections", br#"{"name":"bad name!"}"#, (&owner, now, "ffffffffffffffff4"), false),
        (400, "bad_request".into())
    );
    for name in [".", "..", ".hidden"] {
        let body = serde_json::to_vec(&CreateCollectionRequest { name: name.into() }).expect("json");
        let nonce = format!("ffffffffffff{:04}", name.len());
        assert_eq!(
            raw(&node, "/v1/collections", &body, (&owner, now, &nonce), false),
            (400, "bad_request".into()),
            "{name}"
        );
    }
    assert_eq!(
        raw(&node, "/v1/collections", br#"{"name":"kept"}"#, (&owner, now, "ffffffffffffffff5"), false),
        (409, "conflict".into())
    );

    // Bad files: each refused with a message naming the problem.
    let upload = |path: &str, bytes: &[u8]| -> String {
        let r: Result<UploadResponse, prag_node::ClientError> = rt.block_on(client.upload("kept", path, bytes));
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
        .block_on(client.post(
            "/v1/collections/kept/query",
            &QueryRequest { text: "pharmacy hours".into(), k: 1, exact: false, ..Default::default() },
        ))
        .expect("query");
    assert_eq!(chunk_body(&resp.hits[0].text), text);
    let metrics =
        rt.block_on(async { reqwest::get(format!("{}/metrics", node.url)).await.expect("m").text().await.expect("t") });
    for reason in ["malformed_signature", "stale", "replayed", "bad_signature", "body_mismatch", "forbidden"] {
        assert!(metrics.contains(&format!("prag_refusals_total{{reason=\"{reason}\"}}")), "{reason} not counted");
    }
    node.kill();
}
