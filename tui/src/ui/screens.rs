//! The seven screens: each one's main table, and the panels drawn around it (the Market's in
//! `market`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Sparkline};

use super::{TableData, ago, bytes, duration, host, render_table, short};
use crate::app::{App, Link, NodeView, Screen};

use Constraint::{Length as L, Min};

pub fn table(app: &App) -> TableData {
    match app.screen {
        Screen::Overview => overview(app),
        Screen::Collections => collections(app),
        Screen::Traffic => traffic(app),
        Screen::Embedder => embedder(app),
        Screen::Ledger => workers(app),
        Screen::Market => super::market::stacks(app),
        Screen::Audit => audit(app),
    }
}

pub fn render(f: &mut Frame<'_>, area: Rect, app: &App, compact: bool) {
    if app.maximised {
        render_table(f, area, app, compact);
        return;
    }
    match app.screen {
        Screen::Overview => {
            let side = if compact { 6 } else { 8 };
            let [main, bottom] = Layout::vertical([Min(4), L(side)]).areas(area);
            render_table(f, main, app, compact);
            let [health, alerts] =
                Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
            f.render_widget(Paragraph::new(health_lines(app)).block(Block::bordered().title("Network health")), health);
            f.render_widget(
                Paragraph::new(alert_lines(app))
                    .style(Style::new().fg(Color::Yellow))
                    .block(Block::bordered().title("Alerts")),
                alerts,
            );
        }
        Screen::Traffic => {
            let h = if compact { 3 } else { 5 };
            let [q, i, w, rest] = Layout::vertical([L(h), L(h), L(h), Min(3)]).areas(area);
            let (queries, ingest, worker) = sums(app);
            spark(f, q, &format!("queries/s (now {})", queries.last().copied().unwrap_or(0)), &queries, Color::Cyan);
            spark(
                f,
                i,
                &format!("ingest documents/s (now {})", ingest.last().copied().unwrap_or(0)),
                &ingest,
                Color::Green,
            );
            spark(
                f,
                w,
                &format!("worker requests/s (now {})", worker.last().copied().unwrap_or(0)),
                &worker,
                Color::Magenta,
            );
            let [table, refusals] =
                Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(rest);
            render_table(f, table, app, compact);
            f.render_widget(
                Paragraph::new(refusal_lines(app)).block(Block::bordered().title("Refusals by reason")),
                refusals,
            );
        }
        Screen::Embedder => {
            let [top, rest] = Layout::vertical([L(if compact { 4 } else { 6 }), Min(3)]).areas(area);
            let mut texts: Vec<u64> = Vec::new();
            for n in &app.nodes {
                add_aligned(&mut texts, &n.history.embedded.iter().copied().collect::<Vec<_>>());
            }
            spark(
                f,
                top,
                &format!("texts embedded/s (now {})", texts.last().copied().unwrap_or(0)),
                &texts,
                Color::Blue,
            );
            render_table(f, rest, app, compact);
        }
        Screen::Ledger => {
            let [top, rest] = Layout::vertical([L(if compact { 7 } else { 9 }), Min(4)]).areas(area);
            let [summary, txs] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
            f.render_widget(Paragraph::new(ledger_lines(app)).block(Block::bordered().title("Ledger")), summary);
            f.render_widget(Paragraph::new(tx_lines(app)).block(Block::bordered().title("Recent transactions")), txs);
            if compact {
                render_table(f, rest, app, compact);
            } else {
                let [table, epochs] =
                    Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(rest);
                render_table(f, table, app, compact);
                f.render_widget(
                    Paragraph::new(epoch_lines(app)).block(Block::bordered().title("Reward epochs")),
                    epochs,
                );
            }
        }
        Screen::Market => super::market::render(f, area, app, compact),
        Screen::Collections | Screen::Audit => render_table(f, area, app, compact),
    }
}

fn spark(f: &mut Frame<'_>, area: Rect, title: &str, data: &[u64], color: Color) {
    let width = area.width.saturating_sub(2) as usize;
    let tail = &data[data.len().saturating_sub(width)..];
    f.render_widget(
        Sparkline::default().block(Block::bordered().title(title.to_string())).data(tail).style(Style::new().fg(color)),
        area,
    );
}

/// Adds `b` into `acc`, aligned at the newest sample.
fn add_aligned(acc: &mut Vec<u64>, b: &[u64]) {
    if b.len() > acc.len() {
        let mut padded = vec![0; b.len() - acc.len()];
        padded.append(acc);
        *acc = padded;
    }
    let off = acc.len() - b.len();
    for (i, v) in b.iter().enumerate() {
        acc[off + i] += v;
    }
}

fn sums(app: &App) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let (mut q, mut i, mut w) = (Vec::new(), Vec::new(), Vec::new());
    for n in &app.nodes {
        add_aligned(&mut q, &n.history.queries.iter().copied().collect::<Vec<_>>());
        add_aligned(&mut i, &n.history.ingest.iter().copied().collect::<Vec<_>>());
        add_aligned(&mut w, &n.history.worker.iter().copied().collect::<Vec<_>>());
    }
    (q, i, w)
}

fn link_text(n: &NodeView) -> String {
    match &n.link {
        Link::Connecting => "connecting".into(),
        Link::Live => "live".into(),
        Link::Disconnected(why) => format!("disconnected: {why}"),
    }
}

/// The feed the ledger panels use: the first node that has one (every node holds the same
/// contracts' state).
pub(super) fn ledger_feed(app: &App) -> Option<&prag_proto::api::ConsoleFeed> {
    app.nodes.iter().filter(|n| n.link == Link::Live).chain(app.nodes.iter()).find_map(|n| n.feed.as_ref())
}

fn overview(app: &App) -> TableData {
    let mut rows = Vec::new();
    let mut alert_rows = Vec::new();
    for (i, n) in app.nodes.iter().enumerate() {
        if !matches!(n.link, Link::Live) {
            alert_rows.push(i);
        }
        let row = match &n.feed {
            Some(f) => {
                let s = &f.status;
                let a = &s.attestation;
                vec![
                    host(&n.url),
                    link_text(n),
                    if s.peer_id.is_empty() { "(alone)".to_string() } else { short(&s.peer_id, 14) },
                    duration(s.uptime_secs),
                    format!(
                        "{}{} {}✓ {}✗",
                        a.mode,
                        if a.mode == "dev" { " ⚠" } else { "" },
                        a.workers_accepted,
                        a.workers_refused
                    ),
                    format!("{} {}", s.embedder.device, s.embedder.dtype),
                    s.embedder.model.rsplit('/').next().unwrap_or_default().to_string(),
                    s.documents.to_string(),
                    bytes(s.disk_bytes),
                    s.peers.len().to_string(),
                ]
            }
            None => {
                let mut row = vec![host(&n.url), link_text(n)];
                row.resize(10, "-".to_string());
                row
            }
        };
        rows.push(row);
    }
    TableData {
        title: "Nodes".into(),
        headers: vec!["node", "state", "peer id", "uptime", "attestation", "device", "model", "docs", "disk", "peers"],
        rows,
        wide: vec![L(22), L(14), L(15), L(8), L(18), L(10), Min(10), L(6), L(10), L(5)],
        narrow: vec![L(18), L(12), L(0), L(8), L(16), L(0), L(0), L(5), L(10), L(0)],
        alert_rows,
    }
}

fn health_lines(app: &App) -> Vec<Line<'static>> {
    let live = app.nodes.iter().filter(|n| n.link == Link::Live).count();
    let feeds: Vec<_> = app.nodes.iter().filter_map(|n| n.feed.as_ref()).collect();
    let docs: u64 = feeds.iter().map(|f| f.status.documents).sum();
    let chunks: u64 = feeds.iter().map(|f| f.status.chunks).sum();
    let refusals: u64 = feeds.iter().flat_map(|f| f.status.refusals.values()).sum();
    let queries: u64 = feeds.iter().map(|f| f.status.queries).sum();
    vec![
        Line::from(format!("nodes live      {live}/{}", app.nodes.len())),
        Line::from(format!("documents       {docs} ({chunks} chunks)")),
        Line::from(format!("queries served  {queries}")),
        Line::from(format!("refusals        {refusals}")),
    ]
}

fn alert_lines(app: &App) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    for n in &app.nodes {
        let h = host(&n.url);
        if let Link::Disconnected(why) = &n.link {
            out.push(Line::from(format!("{h}: disconnected ({why}); retrying")));
        }
        if let Some(f) = &n.feed {
            if f.status.attestation.mode == "dev" {
                out.push(Line::from(format!("{h}: attestation DEVELOPMENT mode")));
            }
            if f.status.attestation.workers_refused > 0 {
                out.push(Line::from(format!(
                    "{h}: {} worker(s) refused by policy",
                    f.status.attestation.workers_refused
                )));
            }
            if !f.ledger.damage.is_empty() {
                out.push(Line::from(format!("{h}: ledger damage at start: {}", f.ledger.damage)));
            }
            let integrity = f.status.refusals.get("integrity").copied().unwrap_or(0);
            if integrity > 0 {
                out.push(Line::from(format!("{h}: {integrity} integrity errors")));
            }
        }
    }
    if out.is_empty() {
        out.push(Line::from("none"));
    }
    out
}

fn collections(app: &App) -> TableData {
    let mut rows = Vec::new();
    let mut alert_rows = Vec::new();
    for n in &app.nodes {
        let Some(f) = &n.feed else { continue };
        for c in &f.status.collections {
            // In a network: shards held whole here / shards, and how many have all their copies.
            let (replicas, degraded) = match &f.status.cluster {
                Some(cl) => {
                    let shards: Vec<_> = cl.shards.iter().filter(|s| s.collection == c.name).collect();
                    let here = shards.iter().filter(|s| s.documents > 0 && s.documents_here == s.documents).count();
                    let ok = shards.iter().filter(|s| s.healthy).count();
                    (format!("{here}/{} here, {ok} ok", shards.len()), ok < shards.len())
                }
                None => ("1 (this node)".into(), false),
            };
            let health = if degraded {
                "degraded"
            } else if c.total_points == 0 || c.indexed_points == c.total_points {
                "ok"
            } else {
                "indexing"
            };
            if degraded {
                alert_rows.push(rows.len());
            }
            rows.push(vec![
                host(&n.url),
                c.name.clone(),
                c.owner_address.clone(),
                c.documents.to_string(),
                c.chunks.to_string(),
                format!("{}/{}", c.indexed_points, c.total_points),
                replicas,
                health.into(),
            ]);
        }
    }
    TableData {
        title: "Collections · shards and replicas".into(),
        headers: vec!["node", "collection", "owner", "docs", "chunks", "indexed/total", "replicas", "health"],
        rows,
        wide: vec![L(22), L(18), Min(20), L(6), L(8), L(14), L(17), L(9)],
        narrow: vec![L(0), L(14), L(16), L(5), L(7), L(13), L(0), L(9)],
        alert_rows,
    }
}

fn traffic(app: &App) -> TableData {
    let rows = app
        .nodes
        .iter()
        .filter_map(|n| {
            let f = n.feed.as_ref()?;
            let l = &f.latency;
            Some(vec![
                host(&n.url),
                f.status.queries.to_string(),
                format!("{:.1}/{:.1}", l.query_p50_ms, l.query_p99_ms),
                format!("{:.1}/{:.1}", l.worker_p50_ms, l.worker_p99_ms),
                format!("{:.0}/{:.0}", l.ingest_p50_ms, l.ingest_p99_ms),
            ])
        })
        .collect();
    TableData {
        title: "Latency ms (p50/p99)".into(),
        headers: vec!["node", "queries", "query", "worker", "ingest"],
        rows,
        wide: vec![L(22), L(8), L(12), L(12), L(12)],
        narrow: vec![L(0), L(7), L(11), L(11), L(11)],
        alert_rows: Vec::new(),
    }
}

fn refusal_lines(app: &App) -> Vec<Line<'static>> {
    let mut all = std::collections::BTreeMap::new();
    for f in app.nodes.iter().filter_map(|n| n.feed.as_ref()) {
        for (k, v) in &f.status.refusals {
            *all.entry(k.clone()).or_insert(0u64) += v;
        }
    }
    if all.is_empty() {
        return vec![Line::from("none")];
    }
    all.into_iter().map(|(k, v)| Line::from(format!("{k:<20} {v}"))).collect()
}

fn embedder(app: &App) -> TableData {
    let rows = app
        .nodes
        .iter()
        .filter_map(|n| {
            let e = &n.feed.as_ref()?.status.embedder;
            let rate = if e.busy_seconds > 0.0 { e.texts as f64 / e.busy_seconds } else { 0.0 };
            Some(vec![
                host(&n.url),
                e.device.clone(),
                e.dtype.clone(),
                e.workers.to_string(),
                e.max_batch.to_string(),
                e.token_budget.to_string(),
                e.texts.to_string(),
                format!("{rate:.1}"),
                e.queue_depth.to_string(),
            ])
        })
        .collect();
    TableData {
        title: "Embedders".into(),
        headers: vec!["node", "device", "dtype", "workers", "batch", "tokens/batch", "texts", "texts/s busy", "queue"],
        rows,
        wide: vec![L(22), L(10), L(6), L(8), L(6), L(13), L(9), L(13), L(6)],
        narrow: vec![L(0), L(8), L(5), L(7), L(5), L(0), L(8), L(12), L(5)],
        alert_rows: Vec::new(),
    }
}

fn workers(app: &App) -> TableData {
    let mut rows = Vec::new();
    let mut alert_rows = Vec::new();
    if let Some(f) = ledger_feed(app) {
        for (i, w) in f.workers.iter().enumerate() {
            if !w.accepted {
                alert_rows.push(i);
            }
            rows.push(vec![
                w.ip_address.clone(),
                w.worker_type.clone(),
                w.attestation.clone(),
                w.last_seen.map(|t| ago(f.time, t)).unwrap_or_else(|| "never".into()),
                w.payment_wallet.clone(),
            ]);
        }
    }
    TableData {
        title: "Workers".into(),
        headers: vec!["address", "type", "attestation", "liveliness", "wallet"],
        rows,
        wide: vec![L(16), L(12), L(24), L(11), Min(20)],
        narrow: vec![L(14), L(10), L(22), L(10), L(0)],
        alert_rows,
    }
}

fn ledger_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return vec![Line::from("no node connected")] };
    let active = f.subscribers.iter().filter(|s| s.active).count();
    vec![
        Line::from(format!("chain     {}", f.ledger.chain_id)),
        Line::from(format!("height    {} ({})", f.ledger.height, short(&f.ledger.head_hash, 12))),
        Line::from(format!("admin     {}", f.ledger.admin)),
        Line::from(format!("subscr.   {active} active / {} · API keys {}", f.subscribers.len(), f.api_keys)),
        Line::from(format!("workers   {}", f.workers.len())),
        Line::from(format!("orderer   {}", if f.ledger.orderer { "this node" } else { "another node" })),
    ]
}

fn tx_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return Vec::new() };
    f.recent_txs.iter().map(|t| Line::from(format!("#{:<5} {:<8} {}", t.height, ago(f.time, t.time), t.msg))).collect()
}

fn epoch_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return Vec::new() };
    if f.epochs.is_empty() {
        return vec![Line::from("no epochs funded")];
    }
    let mut out = Vec::new();
    for e in &f.epochs {
        out.push(Line::from(format!("epoch {} · {} · {}", e.epoch, e.funds, if e.closed { "closed" } else { "open" })));
        for (wallet, work, amount) in &e.shares {
            out.push(Line::from(format!("  {} work {work} → {amount}", short(wallet, 16))));
        }
    }
    out
}

fn audit(app: &App) -> TableData {
    let mut entries: Vec<(u64, String, &prag_proto::api::AuditEntry, u64)> = Vec::new();
    for n in &app.nodes {
        let Some(f) = &n.feed else { continue };
        for e in &f.audit {
            entries.push((e.time, host(&n.url), e, f.time));
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let rows = entries
        .into_iter()
        .map(|(_, node, e, now)| {
            vec![
                ago(now, e.time),
                node,
                e.event.clone(),
                e.reason.clone(),
                e.worker.clone(),
                e.subscriber.clone(),
                e.collection.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    TableData {
        title: "Audit log (newest first)".into(),
        headers: vec!["when", "node", "event", "reason", "worker", "subscriber", "collection", "detail"],
        rows,
        wide: vec![L(8), L(20), L(16), L(20), L(12), L(14), L(12), Min(10)],
        narrow: vec![L(8), L(0), L(9), L(18), L(11), L(0), L(10), Min(8)],
        alert_rows: Vec::new(),
    }
}
