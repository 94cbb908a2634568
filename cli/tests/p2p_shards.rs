//! The storage network on loopback, real processes and real libp2p sockets: shards placed by
//! rendezvous over admitted nodes, replicated as ciphertext, searched across nodes with results
//! identical to a single node; a SIGKILLed node loses no answers and its shards are re-replicated;
//! an unadmitted node gets nothing; a transfer cut off mid-way resumes and no partial document is
//! ever served.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use prag_proto::api::{CreateCollectionRequest, NodeStatus, QueryRequest, QueryResponse, SearchMode, UploadResponse};
use prag_proto::ledger::SignedTx;
use serde_json::json;

/// The demo questions, and one the lab leaflet answers.
fn questions() -> Vec<&'static str> {
    CLINIC_QUESTIONS.iter().copied().chain(["How do I get my blood test results?"]).collect()
}

/// `prag storage identity` for a data directory: (peer id, storage key, dev report).
fn identity(data: &Path) -> (String, String, String) {
    let (v, report) = cli_storage_identity(data);
    (v["peer_id"].as_str().unwrap().to_string(), v["signing_key"].as_str().unwrap().to_string(), report)
}

fn admin_file(dir: &Path) -> PathBuf {
    let f = dir.join("admin.key");
    std::fs::write(&f, json!({"type": "secp256k1", "private_key": hex::encode(key(1).to_bytes())}).to_string())
        .expect("key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    f
}

fn register_storage(orderer: &NodeProcess, n: u32, identity: &(String, String, String)) {
    let admin = key(1);
    let tx =
        SignedTx::sign(&admin, &format!("storagenonce{n:08}"), prag_node::unix_now(), storage_registration(identity))
            .expect("sign");
    let _: serde_json::Value =
        rt().block_on(orderer.client(&admin).public("POST", "/v1/ledger/tx", Some(&tx))).expect("register");
}

fn status(node: &NodeProcess) -> NodeStatus {
    node.status()
}

fn fill(node: &NodeProcess) {
    let (client, rt) = (node.client(&key(5)), rt());
    let _: serde_json::Value = rt
        .block_on(client.post("/v1/collections", &CreateCollectionRequest { name: "clinic".into() }))
        .expect("create");
    for (path, text) in CLINIC_DOCS {
        let r: UploadResponse = rt.block_on(client.upload("clinic", path, text.as_bytes())).expect("upload");
        assert_eq!(r.documents.len(), 1);
    }
}

fn ask(node: &NodeProcess, q: &str) -> QueryResponse {
    ask_mode(node, q, SearchMode::default())
}

fn ask_mode(node: &NodeProcess, q: &str, mode: SearchMode) -> QueryResponse {
    rt().block_on(
        node.client(&key(5))
            .post("/v1/collections/clinic/query", &QueryRequest { text: q.into(), k: 5, exact: true, mode }),
    )
    .expect("query")
}

const MODES: [SearchMode; 3] = [SearchMode::Dense, SearchMode::Sparse, SearchMode::Hybrid];

/// (path, chunk, text) per hit, scores checked apart.
fn same_answer(got: &QueryResponse, want: &QueryResponse, what: &str) {
    assert!(!got.partial, "{what}: partial answer, missing shards {:?}", got.missing_shards);
    let g: Vec<(&str, u32, &str)> = got.hits.iter().map(|h| (h.path.as_str(), h.chunk, h.text.as_str())).collect();
    let w: Vec<(&str, u32, &str)> = want.hits.iter().map(|h| (h.path.as_str(), h.chunk, h.text.as_str())).collect();
    assert_eq!(g, w, "{what}: different hits");
    for (a, b) in got.hits.iter().zip(&want.hits) {
        assert!((a.score - b.score).abs() < 1e-4, "{what}: scores {} vs {}", a.score, b.score);
    }
}

/// Waits until `node` sees all of the corpus in `clinic`'s shards, every shard with documents held
/// by exactly its `replicas` owners, all among `allowed`.
fn wait_placed(node: &NodeProcess, replicas: usize, allowed: &[&str], what: &str) -> NodeStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(node);
        if let Some(c) = &s.cluster {
            // Settled: every shard with documents is held by exactly its owners (hand-off done),
            // R of them, all among `allowed`.
            let ok = c.shards.iter().map(|sh| sh.documents).sum::<u64>() == CLINIC_DOCS.len() as u64
                && c.shards.iter().all(|sh| {
                    let mut holders = sh.holders.clone();
                    let mut owners = sh.owners.clone();
                    holders.sort();
                    owners.sort();
                    sh.healthy
                        && owners.len() == replicas
                        && owners.iter().all(|o| allowed.contains(&o.as_str()))
                        && (sh.documents == 0 || holders == owners)
                });
            if ok && c.transfers_active == 0 {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{what}: shards not placed: {:#?}\n{}", s.cluster, node.log_text());
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ledger_height(node: &NodeProcess) -> u64 {
    let v: serde_json::Value =
        rt().block_on(node.client(&key(99)).public::<(), _>("GET", "/v1/ledger/status", None)).expect("ledger");
    v["height"].as_u64().unwrap_or(0)
}

const NET: &[&str] = &["--attestation", "dev", "--shards", "4", "--replicas", "2", "--sync-interval-ms", "200"];

#[test]
fn three_nodes_shard_search_survive_kills_and_refuse_strangers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let admin = admin_file(tmp.path());
    let (da, db, dc, dd) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"), tmp.path().join("d"));
    let (ia, ib, ic) = (identity(&da), identity(&db), identity(&dc));
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let a_addr = format!("/ip4/127.0.0.1/tcp/{pa}");
    let b_addr = format!("/ip4/127.0.0.1/udp/{pb}/quic-v1");
    let c_addr = format!("/ip4/127.0.0.1/tcp/{pc}");
    let args = |own: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = NET.iter().map(|s| s.to_string()).collect();
        v.extend(["--rereplicate-after", "3"].map(String::from));
        v.extend(own.iter().map(|s| s.to_string()));
        v
    };
    let start = |dir: &Path, own: &[&str]| {
        let a = args(own);
        NodeProcess::start(dir, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // The reference: one node alone, same corpus.
    let single = NodeProcess::start(&tmp.path().join("single"), &[]);
    fill(&single);
    let reference: Vec<QueryResponse> = questions().iter().map(|q| ask(&single, q)).collect();
    assert!(reference.iter().all(|r| r.hits.len() == 5));
    // Every mode's answers: the keyword ranking (one IDF over all shards) and the fused one too.
    let by_mode: Vec<Vec<QueryResponse>> =
        MODES.iter().map(|&m| questions().iter().map(|q| ask_mode(&single, q, m)).collect()).collect();
    assert!(by_mode[1].iter().any(|r| !r.hits.is_empty()), "keyword search found nothing");
    drop(single);

    let mut a = start(&da, &["--admin-key", admin.to_str().unwrap(), "--p2p-listen", &a_addr]);
    for (n, id) in [&ia, &ib, &ic].into_iter().enumerate() {
        register_storage(&a, n as u32, id);
    }
    let mut b = start(&db, &["--p2p-listen", &b_addr, "--peer", &a_addr]);
    let mut c = start(&dc, &["--p2p-listen", &c_addr, "--peer", &a_addr]);

    // Upload through node 1 (A); placement spreads the shards, 2 copies each.
    fill(&a);
    let all3 = [ia.0.as_str(), ib.0.as_str(), ic.0.as_str()];
    let placed = wait_placed(&c, 2, &all3, "three nodes");
    // Rendezvous over three nodes with R = 2: no node should hold everything of 4 shards... but
    // each holds only the shards it owns once hand-off is done.
    for node in [&a, &b, &c] {
        let s = wait_placed(node, 2, &all3, "every node agrees");
        let me = s.peer_id.clone();
        let shards = &s.cluster.as_ref().unwrap().shards;
        assert_eq!(shards.iter().map(|sh| sh.documents).sum::<u64>(), CLINIC_DOCS.len() as u64);
        for sh in shards.iter().filter(|sh| sh.documents > 0) {
            assert_eq!(sh.holders.len(), 2, "exactly R copies of shard {}: {:?}", sh.shard, sh.holders);
            let here = sh.documents_here == sh.documents;
            assert_eq!(sh.owners.contains(&me), here, "shard {} is held here iff owned", sh.shard);
        }
        assert!(s.peers.iter().all(|p| p.admitted), "{:?}", s.peers);
    }
    let _ = placed;
    let moved: u64 = [&a, &b, &c].iter().map(|n| status(n).cluster.unwrap().bytes_replicated).sum();
    assert!(moved > 0, "nothing was replicated");

    // Query through node 3 (and the others): identical to the single node, in every mode.
    for (q, want) in questions().iter().zip(&reference) {
        same_answer(&ask(&c, q), want, &format!("via C: {q}"));
        same_answer(&ask(&b, q), want, &format!("via B: {q}"));
        same_answer(&ask(&a, q), want, &format!("via A: {q}"));
    }
    for (mode, answers) in MODES.iter().zip(&by_mode) {
        for (q, want) in questions().iter().zip(answers) {
            for (name, node) in [("A", &a), ("B", &b), ("C", &c)] {
                same_answer(&ask_mode(node, q, *mode), want, &format!("{} via {name}: {q}", mode.as_str()));
            }
        }
    }
    // Each shard has 2 copies on 3 nodes, so some node lacks a shard and had to ask a peer.
    let lacks = |n: &NodeProcess| status(n).cluster.unwrap().shards.iter().any(|s| s.documents > s.documents_here);
    let partial_holder = [&a, &b, &c].into_iter().find(|n| lacks(n)).expect("some node lacks a shard");
    assert!(status(partial_holder).cluster.unwrap().remote_searches > 0, "a partial holder asked its peers");
    let metrics = |n: &NodeProcess| {
        rt().block_on(async { reqwest::get(format!("{}/metrics", n.url)).await?.text().await }).expect("metrics")
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert!(value(&metrics(partial_holder), "prag_remote_search_seconds_count ") > 0.0);
    let replicated: f64 = [&a, &b, &c].iter().map(|n| value(&metrics(n), "prag_replicated_bytes_total ")).sum();
    assert!(replicated > 0.0);
    assert_eq!(value(&metrics(&c), "prag_shards_unhealthy "), 0.0);

    // The owner lists the whole collection on any node, wherever its documents live.
    for node in [&a, &b, &c] {
        let docs: Vec<prag_proto::api::DocumentInfo> =
            rt().block_on(node.client(&key(5)).get("/v1/collections/clinic/documents")).expect("list");
        let mut paths: Vec<&str> = docs.iter().map(|d| d.path.as_str()).collect();
        paths.sort();
        let mut want: Vec<&str> = CLINIC_DOCS.iter().map(|(p, _)| *p).collect();
        want.sort();
        assert_eq!(paths, want);
    }

    // Grants and deletions made through A reach the others.
    let subscriber = prag_proto::account::public_key_hex(key(40).verifying_key());
    let _: serde_json::Value = rt()
        .block_on(a.client(&key(5)).post("/v1/collections/clinic/grants", &json!({"subscriber": subscriber})))
        .expect("grant");
    let _: serde_json::Value = rt()
        .block_on(
            a.client(&key(5)).post("/v1/collections/clinic/documents/delete", &json!({"path": "leaflets/wifi.md"})),
        )
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let grants: serde_json::Value =
            rt().block_on(c.client(&key(5)).get("/v1/collections/clinic/grants")).expect("grants via C");
        let gone = ask(&c, questions()[4]).hits.iter().all(|h| h.path != "leaflets/wifi.md")
            && ask(&b, questions()[4]).hits.iter().all(|h| h.path != "leaflets/wifi.md");
        if grants.to_string().contains(&subscriber) && gone {
            break;
        }
        assert!(Instant::now() < deadline, "grant or deletion did not spread: {grants}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Uploaded again (a version above the tombstone): back everywhere, answers as before.
    let wifi = CLINIC_DOCS.iter().find(|(p, _)| *p == "leaflets/wifi.md").unwrap();
    let _: UploadResponse =
        rt().block_on(a.client(&key(5)).upload("clinic", wifi.0, wifi.1.as_bytes())).expect("re-upload");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ask(&c, questions()[4]).hits.first().map(|h| h.path.as_str()) != Some("leaflets/wifi.md") {
        assert!(Instant::now() < deadline, "re-uploaded document did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_placed(&c, 2, &all3, "after re-upload");
    for (q, want) in questions().iter().zip(&reference) {
        same_answer(&ask(&c, q), want, &format!("after delete and re-upload, via C: {q}"));
    }

    // A stranger: connects, is not registered, gets nothing.
    let d = NodeProcess::start(&dd, &args(&["--peer", &a_addr]).iter().map(String::as_str).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sa = status(&a);
        let refused = sa.cluster.as_ref().unwrap().refused_peers.contains_key(&status(&d).peer_id);
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "A never judged D: {:?}", sa.cluster);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let sd = status(&d);
    let cd = sd.cluster.as_ref().unwrap();
    assert!(!cd.admitted && cd.refusal.as_deref().unwrap_or("").contains("not registered"), "{cd:?}");
    assert!(sd.collections.is_empty(), "D got a collection: {:?}", sd.collections);
    assert_eq!(cd.bytes_replicated, 0);
    let sa = status(&a);
    assert!(sa.peers.iter().any(|p| p.peer_id == sd.peer_id && !p.admitted));
    for path in all_files(&dd) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        for (_, text) in CLINIC_DOCS {
            let probe = &text.as_bytes()[..40.min(text.len())];
            assert!(!bytes.windows(probe.len()).any(|w| w == probe), "plaintext in {}", path.display());
        }
    }
    assert!(!dd.join("collections").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false));
    drop(d);

    // Kill B: every query still complete and identical, at once.
    b.kill();
    for (q, want) in questions().iter().zip(&reference) {
        same_answer(&ask(&c, q), want, &format!("B dead, via C: {q}"));
        same_answer(&ask(&a, q), want, &format!("B dead, via A: {q}"));
    }
    // After the delay, B's copies are re-created on the survivors.
    let survivors = [ia.0.as_str(), ic.0.as_str()];
    wait_placed(&a, 2, &survivors, "re-replication after B's death");
    wait_placed(&c, 2, &survivors, "re-replication after B's death (C's view)");
    // A transaction while B is down; B comes back and catches up.
    register_storage(&a, 10, &identity(&tmp.path().join("spare")));
    b.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger_height(&b) != ledger_height(&a) {
        assert!(Instant::now() < deadline, "B did not catch up on the ledger");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_placed(&b, 2, &all3, "B rejoined");
    for (q, want) in questions().iter().zip(&reference) {
        same_answer(&ask(&b, q), want, &format!("via rejoined B: {q}"));
    }

    // Kill A (the uploader and ledger orderer): still complete through B and C.
    a.kill();
    for (q, want) in questions().iter().zip(&reference) {
        same_answer(&ask(&c, q), want, &format!("A dead, via C: {q}"));
    }
    // Kill C too: B alone answers what it holds and names the shards it cannot reach.
    c.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let partial = loop {
        let r = ask(&b, questions()[0]);
        if r.partial || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The shards B lacks are exactly the ones the answer names as missing.
    let lacking: Vec<u32> =
        status(&b).cluster.unwrap().shards.iter().filter(|s| s.documents > s.documents_here).map(|s| s.shard).collect();
    assert_eq!(partial.partial, !lacking.is_empty(), "{partial:?}");
    assert_eq!(partial.missing_shards, lacking);
}

#[test]
fn a_transfer_cut_off_mid_way_resumes_and_nothing_partial_is_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let admin = admin_file(tmp.path());
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ia, ib) = (identity(&da), identity(&db));
    let pa = free_port();
    let a_addr = format!("/ip4/127.0.0.1/tcp/{pa}");
    let mut a_args: Vec<&str> = NET.to_vec();
    a_args.extend(["--admin-key", admin.to_str().unwrap(), "--p2p-listen", &a_addr]);
    let mut a = NodeProcess::start(&da, &a_args);
    register_storage(&a, 0, &ia);
    register_storage(&a, 1, &ib);
    fill(&a);
    let total: u64 = all_files(&da.join("collections"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "doc"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    // B pulls slowly: 4 KiB/s in 1 KiB pieces, so each document takes several requests.
    let mut b_args: Vec<&str> = NET.to_vec();
    b_args.extend(["--peer", &a_addr, "--transfer-rate-kib", "4", "--transfer-piece", "1024"]);
    let b = NodeProcess::start(&db, &b_args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let part_exists = || all_files(&db).iter().any(|p| p.extension().is_some_and(|e| e == "part"));
    while !part_exists() {
        let c = status(&b).cluster.unwrap();
        assert!(Instant::now() < deadline && c.bytes_replicated < total, "no transfer under way: {c:?} of {total}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The source vanishes mid-transfer.
    a.kill();
    std::thread::sleep(Duration::from_secs(1));
    let sb = status(&b);
    let parts: Vec<PathBuf> =
        all_files(&db).into_iter().filter(|p| p.extension().is_some_and(|e| e == "part")).collect();
    assert!(
        !parts.is_empty(),
        "an interrupted part should be kept for resuming: {:?}\n{}",
        all_files(&db),
        b.log_text()
    );
    // Whatever B serves now is whole: every hit's text is a full chunk of a committed document.
    let held: u64 = sb.cluster.as_ref().unwrap().shards.iter().map(|s| s.documents_here).sum();
    assert!(held < CLINIC_DOCS.len() as u64, "B already had everything");
    for q in questions() {
        let r = ask(&b, q);
        assert!(r.partial || held == CLINIC_DOCS.len() as u64, "B cannot be complete without A: {r:?}");
        for h in &r.hits {
            let (_, text) = CLINIC_DOCS.iter().find(|(p, _)| *p == h.path).expect("known document");
            assert!(text.contains(h.text.trim()), "a hit that is not a whole chunk of {}", h.path);
        }
    }
    // A comes back; B resumes where it stopped and completes.
    a.restart();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status(&b);
        let c = s.cluster.unwrap();
        let held: u64 = c.shards.iter().map(|s| s.documents_here).sum();
        if held == CLINIC_DOCS.len() as u64 && c.transfers_active == 0 {
            assert!(c.transfers_resumed > 0, "the transfer restarted from zero: {c:?}");
            assert!(c.bytes_replicated < total + 4096 * 8, "bytes sent twice: {} of {total}", c.bytes_replicated);
            break;
        }
        assert!(Instant::now() < deadline, "B did not finish: {c:?}\n{}", b.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(all_files(&db).iter().all(|p| p.extension().is_none_or(|e| e != "part")));
    // B alone now answers like A.
    a.kill();
    for q in questions() {
        let r = ask(&b, q);
        assert!(!r.partial && r.hits.len() == 5, "{r:?}");
    }
}
