//! An attacker's campaign against one node, on loopback, bounded in time: hostile files, replays,
//! unsigned floods, oversized bodies, half-open connections, a tenant hogging the embedder and
//! walking away, queries racing deletes. Through all of it the node must stay up, answer within
//! bounds, keep its memory under a cap, write nothing for strangers, and leak nothing.
//!
//! Numbers it prints (`campaign:` lines) are for the record, not asserted beyond the bounds.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use prag_proto::api::{CreateCollectionRequest, GrantRequest, GrantsResponse, QueryRequest, QueryResponse};

/// Peak resident memory the node may reach through the whole campaign.
const MEMORY_CAP: u64 = 1536 << 20;
const CANARY: &str = "Canary record 9T: Philippa Oyelaran-Whitcombe receives 25 mg of zuclopenthixol every fortnight.";

fn query(client: &prag_node::client::NodeClient, collection: &str, text: &str) -> QueryResponse {
    rt().block_on(client.post(
        &format!("/v1/collections/{collection}/query"),
        &QueryRequest { text: text.into(), k: 3, exact: false, ..Default::default() },
    ))
    .expect("query")
}

/// Bytes received on a raw connection until it closes or `wait` passes; None: still open.
fn read_until_closed(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    s.set_read_timeout(Some(wait)).ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(_) => return Some(out),
        }
    }
}

#[test]
fn the_node_survives_a_hostile_campaign_within_bounds_and_leaks_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let mut node = NodeProcess::start(
        &data,
        &[
            "--max-file-mb",
            "8",
            "--extract-timeout",
            "3",
            "--extract-memory-mb",
            "512",
            "--max-connections",
            "256",
            "--header-timeout",
            "2",
            "--max-collections-per-key",
            "4",
        ],
    );
    let rt = rt();
    let (owner, attacker, tenant_a, subscriber) = (key(31), key(32), key(33), key(34));
    let oc = node.client(&owner);
    let ac = node.client(&attacker);
    let _: serde_json::Value =
        rt.block_on(oc.post("/v1/collections", &CreateCollectionRequest { name: "vault".into() })).expect("create");
    for (path, text) in CLINIC_DOCS {
        rt.block_on(oc.upload("vault", path, text.as_bytes())).expect("upload");
    }
    rt.block_on(oc.upload("vault", "canary.txt", CANARY.as_bytes())).expect("canary");
    assert_eq!(query(&oc, "vault", CLINIC_QUESTIONS[1]).hits[0].path, "leaflets/mri.md");

    // 1. Hostile files, from a fresh key in a collection of its own. Each is refused with the limit
    // it hit, quickly, and the node goes on.
    let _: serde_json::Value =
        rt.block_on(ac.post("/v1/collections", &CreateCollectionRequest { name: "trap".into() })).expect("trap");
    let hostile: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nested-100k.pdf", deep_pdf(100_000), "nested too deeply"),
        ("nested-dicts-100k.pdf", deep_dict_pdf(100_000), "nested too deeply"),
        ("bomb-600mib.pdf", bomb_pdf(600), "memory"),
        ("divs-100k.html", nested_divs(100_000), "takes more than 3 s"),
        ("nested-1000.pdf", deep_pdf(1000), "no text"),
    ];
    for (name, bytes, expect) in &hostile {
        let started = Instant::now();
        let err = rt.block_on(ac.upload("trap", name, bytes)).expect_err(name);
        let took = started.elapsed();
        let msg = format!("{err:#}");
        eprintln!("campaign: {name} ({} bytes) refused in {:.2} s: {msg}", bytes.len(), took.as_secs_f64());
        assert!(msg.contains(expect), "{name}: {msg}");
        assert!(took < Duration::from_secs(15), "{name} took {took:?}");
        assert!(node.peak_rss() < MEMORY_CAP, "{name}: node grew to {} MiB", node.peak_rss() >> 20);
    }
    // Tables and deep nesting that once cost gigabytes or minutes are ordinary now.
    for (name, bytes) in [("table-2000.html", wide_table(2000)), ("tables-2000.html", nested_tables(2000))] {
        let started = Instant::now();
        rt.block_on(ac.upload("trap", name, &bytes)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        eprintln!("campaign: {name} ({} bytes) ingested in {:.2} s", bytes.len(), started.elapsed().as_secs_f64());
    }
    // Names that would deceive a reader of a listing.
    let e = rt.block_on(ac.upload("trap", "invoice\u{202E}fdp.txt", b"x")).expect_err("bidi");
    assert!(format!("{e:#}").contains("bidirectional"), "{e:#}");
    let e = rt
        .block_on(ac.upload("trap", "rows.jsonl", b"{\"id\":\"../../etc/passwd\",\"text\":\"x\"}\n"))
        .expect_err("jsonl id");
    assert!(format!("{e:#}").contains("'..'"), "{e:#}");
    // Collections per key are bounded.
    for i in 0..3 {
        let _: serde_json::Value = rt
            .block_on(ac.post("/v1/collections", &CreateCollectionRequest { name: format!("spam{i}") }))
            .expect("mine");
    }
    let e = rt
        .block_on(ac.post::<_, serde_json::Value>("/v1/collections", &CreateCollectionRequest { name: "spam9".into() }))
        .expect_err("quota");
    assert!(format!("{e:#}").contains("429 quota"), "{e:#}");
    assert!(node.is_running());

    // 2. Replays: a captured grant, sent again after a revoke, byte for byte and with its key
    // re-spelled, does not grant.
    let now = prag_node::unix_now();
    let grant_body = serde_json::to_vec(&GrantRequest {
        subscriber: prag_proto::account::public_key_hex(subscriber.verifying_key()),
    })
    .expect("json");
    // The same grant, signed once at `now` with one nonce; `respell` may change how it is spelled.
    let grant_with = |respell: fn(&mut prag_proto::api::ChannelHead)| {
        sealed_request(
            &oc,
            "POST",
            "/v1/collections/vault/grants",
            &grant_body,
            now,
            "9a7e0000000000000000000000000001",
            respell,
        )
    };
    let grant = grant_with(|_| {});
    assert_eq!(send_sealed(&oc, &grant).status, 200);
    let _: GrantsResponse = rt
        .block_on(oc.post(
            "/v1/collections/vault/grants/revoke",
            &serde_json::from_slice::<GrantRequest>(&grant_body).expect("g"),
        ))
        .expect("revoke");
    let respellings: [fn(&mut prag_proto::api::ChannelHead); 3] = [
        |_| {},
        |h| h.auth.pubkey = h.auth.pubkey.to_uppercase(),
        |h| {
            use base64::Engine as _;
            h.auth.pubkey = base64::engine::general_purpose::STANDARD.encode(hex::decode(&h.auth.pubkey).expect("hex"));
        },
    ];
    for respell in respellings {
        let a = send_sealed(&oc, &grant_with(respell));
        assert_eq!((a.status, a.code()), (401, "replayed".to_string()));
    }
    let grants: GrantsResponse = rt.block_on(oc.get("/v1/collections/vault/grants")).expect("grants");
    assert!(grants.subscribers.is_empty(), "a replayed grant took effect: {grants:?}");

    // 3. Strangers write nothing and cost little: bogus channel heads, oversized heads, oversized
    // public bodies, and an upload to someone else's collection refused before its body is read.
    let audit_before = std::fs::metadata(data.join("audit.log")).map(|m| m.len()).unwrap_or(0);
    let rss_before = node.peak_rss();
    let http = reqwest::Client::new();
    let started = Instant::now();
    rt.block_on(async {
        let big = "A".repeat(200 * 1024);
        for i in 0..400 {
            let header =
                if i % 2 == 0 { big.as_str() } else { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" };
            if let Ok(r) =
                http.post(format!("{}/v1/sealed", node.url)).header("x-prag-channel", header).body("x").send().await
            {
                assert!(r.status().is_client_error(), "{}", r.status());
            }
        }
        for route in ["/v1/ledger/query", "/v1/ledger/tx"] {
            let r = http.post(format!("{}{route}", node.url)).body(vec![b'['; 16 << 20]).send().await;
            if let Ok(r) = r {
                assert_eq!(r.status().as_u16(), 413, "{route}");
            }
        }
    });
    eprintln!(
        "campaign: 402 unsigned requests (200 KiB heads, 16 MiB bodies) in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let audit_after = std::fs::metadata(data.join("audit.log")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(audit_before, audit_after, "unauthenticated requests wrote to the audit log");
    let grew = node.peak_rss().saturating_sub(rss_before);
    assert!(grew < 64 << 20, "unsigned traffic grew the node by {} MiB", grew >> 20);
    {
        // A stranger announces a 6 MiB upload into the owner's collection and sends no body: the
        // refusal comes anyway, so nothing was buffered first.
        let body = vec![0u8; 6 << 20];
        let sealed = sealed_request(
            &ac,
            "POST",
            "/v1/collections/vault/documents?path=x.txt",
            &body,
            prag_node::unix_now(),
            "5e1d0000000000000000000000000001",
            |_| {},
        );
        let mut s = TcpStream::connect(node.url.trim_start_matches("http://")).expect("connect");
        write!(
            s,
            "POST /v1/sealed HTTP/1.1\r\nHost: x\r\nx-prag-channel: {}\r\nContent-Length: {}\r\n\r\n",
            sealed.header,
            sealed.body.len()
        )
        .expect("head");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut resp = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => resp.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&resp);
            if let (Some(end), Some(len)) = (
                text.find("\r\n\r\n"),
                text.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                }),
            ) && resp.len() >= end + 4 + len
            {
                let (status, answer) =
                    prag_node::channel::open_response(&sealed.response_key, &resp[end + 4..end + 4 + len])
                        .expect("sealed");
                let error: prag_proto::api::ErrorBody = serde_json::from_slice(&answer).expect("error");
                assert_eq!((status, error.code.as_str()), (403, "forbidden"));
                break;
            }
        }
        assert!(
            String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"),
            "no early refusal: {}",
            String::from_utf8_lossy(&resp)
        );
    }

    // 4. Half-open connections (more than --max-connections) do not lock owners out, and are
    // closed after the header timeout.
    let mut slow: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect(node.url.trim_start_matches("http://")).ok()?;
            s.write_all(b"POST /v1/sealed HTTP/1.1\r\nHost: x\r\nx-prag-channel: AAAA").ok()?;
            Some(s)
        })
        .collect();
    assert!(slow.len() > 256, "{} half-open connections", slow.len());
    let started = Instant::now();
    let hits = query(&oc, "vault", CLINIC_QUESTIONS[0]).hits;
    let took = started.elapsed();
    eprintln!("campaign: query among {} half-open connections: {:.3} s", slow.len(), took.as_secs_f64());
    assert_eq!(hits[0].path, "policies/retention.md");
    assert!(took < Duration::from_secs(5), "{took:?}");
    std::thread::sleep(Duration::from_secs(3));
    let closed = slow.iter_mut().filter_map(|s| read_until_closed(s, Duration::from_millis(200))).count();
    assert!(closed >= slow.len() - 5, "only {closed} of {} half-open connections were closed", slow.len());
    drop(slow);
    // A kept-alive connection left idle after an answer is closed too.
    let mut idle = TcpStream::connect(node.url.trim_start_matches("http://")).expect("connect");
    idle.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(read_until_closed(&mut idle, Duration::from_secs(5)).is_some(), "an idle connection stayed open");

    // 5. One tenant's big upload does not starve another's queries; an abandoned upload stops.
    let _: serde_json::Value = rt
        .block_on(node.client(&tenant_a).post("/v1/collections", &CreateCollectionRequest { name: "bulk".into() }))
        .expect("bulk");
    let big_text = |tag: &str, kb: usize| -> Vec<u8> {
        let mut t = String::new();
        let mut i = 0;
        while t.len() < kb * 1024 {
            t.push_str(&format!(
                "Archive {tag} entry {i}: the register of the parish of St Bride was rebound in {} after water \
                 damage; folios {} to {} were photographed, catalogued and returned to the strongroom. ",
                1800 + i % 200,
                i * 3,
                i * 3 + 2
            ));
            i += 1;
        }
        t.into_bytes()
    };
    let url = node.url.clone();
    let texts_before = node.status().embedder.texts;
    let bulk = std::thread::spawn({
        let (key, bytes) = (tenant_a.clone(), big_text("A", 160));
        move || {
            let client = prag_node::client::NodeClient::new(&url, key, prag_node::channel::NodeTrust::development())
                .expect("client");
            let started = Instant::now();
            common::rt().block_on(client.upload("bulk", "archive.txt", &bytes)).expect("bulk upload");
            started.elapsed()
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait until the other tenant's texts are being embedded.
    while node.status().embedder.texts < texts_before + 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let texts_at_start = node.status().embedder.texts;
    let mut worst = Duration::ZERO;
    let mut latencies = Vec::new();
    for q in CLINIC_QUESTIONS {
        let started = Instant::now();
        assert!(!query(&oc, "vault", q).hits.is_empty());
        let took = started.elapsed();
        latencies.push(took.as_secs_f64());
        worst = worst.max(took);
    }
    let overlapped = !bulk.is_finished();
    let embedded_meanwhile = node.status().embedder.texts - texts_at_start;
    let bulk_took = bulk.join().expect("bulk");
    eprintln!(
        "campaign: queries while another tenant embeds 160 KiB: {latencies:.3?} s (worst {:.3} s; {embedded_meanwhile} of its texts embedded meanwhile); the upload took {:.1} s",
        worst.as_secs_f64(),
        bulk_took.as_secs_f64()
    );
    assert!(overlapped, "the upload finished before the queries did: make it larger");
    assert!(
        embedded_meanwhile > latencies.len() as u64 + 6,
        "the other tenant's upload was not being embedded meanwhile"
    );
    assert!(worst < Duration::from_secs(5), "a query waited {worst:?} behind another tenant");
    // Walk away from an upload: its remaining texts are dropped, the embedder goes quiet.
    let client = node.client(&tenant_a);
    let abandoned = big_text("B", 200);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(3), client.upload("bulk", "abandoned.txt", &abandoned)).await;
    });
    std::thread::sleep(Duration::from_secs(3));
    let t0 = node.status().embedder.texts;
    std::thread::sleep(Duration::from_secs(4));
    let status = node.status();
    eprintln!(
        "campaign: after walking away, {} texts embedded in 4 s; {} dropped",
        status.embedder.texts - t0,
        status.embedder.cancelled_texts
    );
    assert!(status.embedder.texts - t0 <= 16, "the embedder kept working for a client that left");
    assert!(status.embedder.cancelled_texts > 0);

    // 6. Queries racing deletes and replacements: never a false integrity alarm, never a path.
    rt.block_on(async {
        for round in 0..12 {
            let text =
                format!("Round {round}: the records room opens at {} o'clock for staff with a badge.", 6 + round);
            // Replaced every round (a new version over the old file), deleted every third.
            let writes = async {
                let _ = oc.upload("vault", "racing.txt", text.as_bytes()).await;
                if round % 3 == 2 {
                    let _: Result<serde_json::Value, prag_node::ClientError> = oc
                        .post("/v1/collections/vault/documents/delete", &serde_json::json!({"path": "racing.txt"}))
                        .await;
                }
            };
            let question = QueryRequest {
                text: "When does the records room open?".into(),
                k: 5,
                exact: true,
                ..Default::default()
            };
            let reads = futures::future::join_all(
                (0..4).map(|_| oc.post::<_, QueryResponse>("/v1/collections/vault/query", &question)),
            );
            let (_, answers) = tokio::join!(writes, reads);
            for a in answers {
                let a = a.expect("query");
                assert!(a.unreadable.is_empty(), "false integrity alarm: {:?}", a.unreadable);
            }
        }
    });
    let metrics = rt.block_on(async { reqwest::get(format!("{}/metrics", node.url)).await?.text().await }).expect("m");
    assert!(metrics.contains("prag_integrity_errors_total 0"), "integrity errors counted");

    // 7. What strangers see, and what anyone can find afterwards.
    let public = rt.block_on(async { reqwest::get(format!("{}/v1/status", node.url)).await?.text().await }).expect("s");
    let owner_hex = prag_proto::account::public_key_hex(owner.verifying_key());
    assert!(!public.contains("vault") && !public.contains(&owner_hex), "unsigned status says too much: {public}");
    assert!(node.is_running());
    let peak = node.peak_rss();
    eprintln!("campaign: node peak resident memory {} MiB", peak >> 20);
    assert!(peak < MEMORY_CAP, "the node peaked at {} MiB", peak >> 20);
    let log = node.log_text();
    for word in ["Oyelaran", "zuclopenthixol", "St Bride"] {
        assert!(!log.contains(word), "{word} in the log");
        for f in all_files(&data) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(!bytes.windows(word.len()).any(|w| w == word.as_bytes()), "{word} in {}", f.display());
        }
    }
}
