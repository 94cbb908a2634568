//! Snapshot tests of every screen at 80×24 (compact) and 160×48, the help overlay, details, the
//! filter and a disconnected node, all from fixed state.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use prag_proto::api::ConsoleFeed;
use prag_tui::app::{App, Key};
use prag_tui::feed::Update;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const T0: u64 = 1_790_000_000;

fn feed(t: u64, queries: u64, ingested: u64, texts: u64) -> ConsoleFeed {
    let v = json!({
        "api_version": 2,
        "time": t,
        "status": {
            "version": "0.1.0", "api_version": 2, "uptime_secs": 3725, "index_backend": "embedded qdrant-edge",
            "embedder": {"model": "sentence-transformers/all-MiniLM-L6-v2", "dimension": 384, "device": "cpu",
                "dtype": "f32", "workers": 2, "max_batch": 32, "token_budget": 8192, "texts": texts, "batches": 12,
                "queue_depth": 0, "busy_seconds": 4.0},
            "collections": [
                {"name": "clinic", "owner": "02aa", "owner_address": "secret1owner0000000000000000000000000000",
                 "created_at": T0 - 500, "documents": 6, "chunks": 42, "total_points": 42, "indexed_points": 42},
                {"name": "archive", "owner": "02bb", "owner_address": "secret1archivist00000000000000000000000",
                 "created_at": T0 - 400, "documents": 120, "chunks": 900, "total_points": 900, "indexed_points": 0}
            ],
            "documents": 126, "chunks": 942, "queries": queries, "ingested_documents": ingested,
            "disk_bytes": 5_400_000, "node_id": "4f9c2a7d11e0b3c5a6d7e8f901234567",
            "attestation": {"mode": "dev", "policy_source": "built-in default", "min_tcb_status": "UpToDate",
                "max_report_age_secs": 86400, "workers_accepted": 1, "workers_refused": 1,
                "max_liveliness_age_secs": 900},
            "worker_usage": [{"worker": "10.0.0.1", "subscriber": "02cc", "requests": 7, "chunks": 21, "tokens": 900}],
            "refusals": {"no_grant": 2, "stale_request": 1},
            "peer_id": "12D3KooWGzhVc6xYjmE2u5vS4S8J3Jq6dLh1sZz9Zr7XyNfAbCdE",
            "peers": [{"peer_id": "12D3KooWPeerB", "addresses": ["/ip4/127.0.0.1/tcp/7801"], "admitted": false, "rtt_ms": 0.4}]
        },
        "latency": {"query_p50_ms": 5.0, "query_p99_ms": 25.0, "worker_p50_ms": 10.0, "worker_p99_ms": 50.0,
                    "ingest_p50_ms": 250.0, "ingest_p99_ms": 1000.0},
        "ledger": {"height": 14, "head_hash": "9b1f0c2d3e4f5a6b7c8d", "admin": "secret1admin00000000000000000000000000000",
                   "chain_id": "prag-1", "orderer": true, "damage": ""},
        "subscribers": [{"public_key": "02cc", "active": true}, {"public_key": "02dd", "active": false}],
        "api_keys": 2,
        "workers": [
            {"ip_address": "10.0.0.1", "worker_type": "llama", "payment_wallet": "secret1wallet0000000000000000000000000000",
             "attestation": "accepted (dev Development)", "accepted": true, "last_seen": t - 42},
            {"ip_address": "10.0.0.2", "worker_type": "mistral", "payment_wallet": "secret1wallet1111111111111111111111111111",
             "attestation": "refused: unbound_key", "accepted": false, "last_seen": null}
        ],
        "recent_txs": [
            {"height": 13, "time": t - 30, "sender": "secret1admin", "msg": "register_worker"},
            {"height": 12, "time": t - 90, "sender": "secret1admin", "msg": "add_api_key"}
        ],
        "epochs": [{"epoch": 1, "funds": "1000", "closed": true,
                    "shares": [["secret1wallet0000000000000000000000000000", "40", "1000"]]}],
        "audit": [
            {"time": t - 5, "event": "refused", "reason": "no_grant", "actor": "02ee", "worker": "10.0.0.1",
             "subscriber": "02dd", "collection": "clinic", "detail": "the collection's owner has not granted this subscriber access"},
            {"time": t - 20, "event": "served", "worker": "10.0.0.1", "subscriber": "02cc", "collection": "clinic"},
            {"time": t - 60, "event": "grant", "actor": "02aa", "subscriber": "02cc", "collection": "clinic"}
        ],
        "peers": [],
        "market": {
            "epoch": 20_716,
            "tasks": [
                {"task_small_id": 1, "role": "retrieval", "security_level": "sampling-consensus", "minimum_reputation_score": 40,
                 "is_deprecated": false, "subscribers": 3, "lowest_price": 1_000_000},
                {"task_small_id": 2, "role": "embedding", "security_level": "confidential-compute", "minimum_reputation_score": 0,
                 "is_deprecated": true, "subscribers": 1, "lowest_price": null}
            ],
            "nodes": [
                {"node_small_id": 1, "peer_id": "12D3KooWGzhVc6xYjmE2u5vS4S8", "collateral": "10000", "slashed": "0", "reputation_score": 51, "disabled": false},
                {"node_small_id": 2, "peer_id": "12D3KooWPeerB", "collateral": "0", "slashed": "10000", "reputation_score": 0, "disabled": false}
            ],
            "stacks": [
                {"stack_small_id": 7, "task_small_id": 1, "selected_node_id": 2, "num_compute_units": 400000, "escrow_left": "484800", "status": "disputed"},
                {"stack_small_id": 6, "task_small_id": 1, "selected_node_id": 1, "num_compute_units": 1000, "escrow_left": "1212", "status": "open"}
            ],
            "open_stacks": 1, "settling_stacks": 0, "disputed_stacks": 1,
            "recent": [
                {"time": t - 12, "kind": "slash", "stack_small_id": 5, "node_small_id": 2, "amount": "10000", "reason": "dispute"},
                {"time": t - 40, "kind": "refund", "stack_small_id": 4, "node_small_id": 1, "amount": "400000", "reason": "unused units"}
            ],
            "escrow": "486012", "collateral": "10000", "communal_treasury": "7200"
        }
    });
    serde_json::from_value(v).expect("fixture")
}

fn app() -> App {
    let mut app = App::new(&["http://127.0.0.1:7700".to_string(), "http://127.0.0.1:7701".to_string()]);
    for (i, (q, d, t)) in [(10, 2, 50), (14, 3, 80), (20, 3, 90), (27, 5, 140)].into_iter().enumerate() {
        app.apply(Update::Snapshot { node: 0, feed: Box::new(feed(T0 + i as u64, q, d, t)) });
    }
    app.apply(Update::Down { node: 1, reason: "unreachable".into() });
    app
}

fn draw(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    terminal.draw(|f| prag_tui::ui::render(f, app)).expect("draw");
    terminal.backend().to_string()
}

#[test]
fn every_screen_at_both_sizes() {
    for (i, name) in ["overview", "collections", "traffic", "embedder", "ledger", "market", "audit"].iter().enumerate()
    {
        let mut a = app();
        a.key(Key::Char(char::from(b'1' + i as u8)));
        insta::assert_snapshot!(format!("{name}_80x24"), draw(&a, 80, 24));
        insta::assert_snapshot!(format!("{name}_160x48"), draw(&a, 160, 48));
    }
}

#[test]
fn help_overlay_details_filter_and_maximise() {
    let mut a = app();
    a.key(Key::Char('?'));
    insta::assert_snapshot!("help_80x24", draw(&a, 80, 24));
    insta::assert_snapshot!("help_160x48", draw(&a, 160, 48));
    a.key(Key::Esc); // closes help
    assert!(!a.help);
    a.key(Key::Char('7'));
    a.key(Key::Char('/'));
    for c in "grant".chars() {
        a.key(Key::Char(c));
    }
    a.key(Key::Enter);
    assert_eq!(prag_tui::ui::row_count(&a), 2, "filter keeps no_grant and grant rows");
    a.key(Key::Char('j'));
    a.key(Key::Enter);
    insta::assert_snapshot!("audit_filtered_details_160x48", draw(&a, 160, 48));
    a.key(Key::Esc);
    a.key(Key::Char('m'));
    insta::assert_snapshot!("audit_maximised_80x24", draw(&a, 80, 24));
}

#[test]
fn disconnected_nodes_and_garbage_are_shown_not_fatal() {
    let mut a = App::new(&["http://10.1.1.1:7700".to_string()]);
    a.apply(Update::Down { node: 0, reason: "refused (403 forbidden): not an operator key".into() });
    insta::assert_snapshot!("disconnected_80x24", draw(&a, 80, 24));
    insta::assert_snapshot!("disconnected_160x48", draw(&a, 160, 48));
    a.apply(Update::Problem { node: 0, message: "garbage on the stream".into() });
    assert!(draw(&a, 160, 48).contains("garbage on the stream"));
    // A node that comes back is live again.
    a.apply(Update::Snapshot { node: 0, feed: Box::new(feed(T0, 1, 1, 1)) });
    assert!(draw(&a, 160, 48).contains("live"));
}

#[test]
fn resizing_to_tiny_and_huge_never_panics() {
    let mut a = app();
    for screen in '1'..='7' {
        a.key(Key::Char(screen));
        for (w, h) in [(1, 1), (10, 3), (20, 5), (80, 24), (300, 100)] {
            let _ = draw(&a, w, h);
        }
    }
    a.key(Key::Char('q'));
    assert!(a.quit);
}

#[test]
fn collections_in_a_network_show_shards_and_degraded_replicas() {
    let mut app = App::new(&["http://127.0.0.1:7700".to_string()]);
    let mut f = feed(T0, 1, 1, 1);
    f.status.cluster = Some(
        serde_json::from_value(json!({
            "admitted": true, "peer_requests_refused": 1,
            "refused_peers": {"12D3KooWStranger": "peer 12D3KooWStranger is not registered in WorkerManager"},
            "shards": [
                {"collection": "clinic", "shard": 0, "owners": ["A", "B"], "holders": ["A", "B"], "documents": 3, "documents_here": 3, "healthy": true},
                {"collection": "clinic", "shard": 1, "owners": ["B", "C"], "holders": ["B"], "documents": 2, "documents_here": 0, "healthy": false}
            ],
            "bytes_replicated": 4096, "documents_replicated": 3, "transfers_active": 0, "transfers_resumed": 0,
            "remote_searches": 5, "remote_search_p50_ms": 2.5, "remote_search_p99_ms": 5.0
        }))
        .expect("cluster fixture"),
    );
    app.apply(Update::Snapshot { node: 0, feed: Box::new(f) });
    app.key(Key::Char('2'));
    let screen = draw(&app, 160, 48);
    assert!(screen.contains("1/2 here, 1 ok") && screen.contains("degraded"), "{screen}");
    insta::assert_snapshot!("collections_network_160x48", screen);
}
