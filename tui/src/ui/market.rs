//! The Market screen: tasks and nodes (collateral, reputation) on top, the stacks not yet paid
//! out in the main table, recent slashes and refunds beside it. Read from the ledger's node (the
//! market is the same on every node).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};

use super::screens::ledger_feed;
use super::{TableData, ago, render_table, short};
use crate::app::App;

use Constraint::{Length as L, Min};

pub fn stacks(app: &App) -> TableData {
    let mut rows = Vec::new();
    let mut alert_rows = Vec::new();
    if let Some(f) = ledger_feed(app) {
        for (i, s) in f.market.stacks.iter().enumerate() {
            if s.status == "disputed" {
                alert_rows.push(i);
            }
            rows.push(vec![
                s.stack_small_id.to_string(),
                s.task_small_id.to_string(),
                s.selected_node_id.to_string(),
                s.num_compute_units.to_string(),
                s.escrow_left.0.to_string(),
                s.status.clone(),
            ]);
        }
    }
    TableData {
        title: "Stacks (open, settling, disputed)".into(),
        headers: vec!["stack", "task", "node", "units", "escrow", "status"],
        rows,
        wide: vec![L(7), L(6), L(6), L(10), L(14), Min(10)],
        narrow: vec![L(6), L(5), L(5), L(9), L(11), Min(8)],
        alert_rows,
    }
}

fn summary_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return vec![Line::from("no node connected")] };
    let m = &f.market;
    let mut out = vec![Line::from(format!(
        "epoch {} · stacks {} open, {} settling, {} disputed · escrow {} · collateral {} · communal {}",
        m.epoch, m.open_stacks, m.settling_stacks, m.disputed_stacks, m.escrow.0, m.collateral.0, m.communal_treasury.0
    ))];
    if m.tasks.is_empty() {
        out.push(Line::from("no tasks"));
    }
    for t in &m.tasks {
        out.push(Line::from(format!(
            "task {:<3} {:<10} {:<20} min rep {:<3} {} subscribed, lowest ask {}{}",
            t.task_small_id,
            t.role,
            t.security_level,
            t.minimum_reputation_score,
            t.subscribers,
            t.lowest_price.map(|p| format!("{p}/M")).unwrap_or_else(|| "-".into()),
            if t.is_deprecated { " · deprecated" } else { "" },
        )));
    }
    out
}

fn node_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return Vec::new() };
    if f.market.nodes.is_empty() {
        return vec![Line::from("no market nodes")];
    }
    f.market
        .nodes
        .iter()
        .map(|n| {
            let line = Line::from(format!(
                "node {:<3} {} collateral {} rep {:>3}{}{}",
                n.node_small_id,
                short(&n.peer_id, 14),
                n.collateral.0,
                n.reputation_score,
                if n.slashed.0 > 0 { format!(" · slashed {}", n.slashed.0) } else { String::new() },
                if n.disabled { " · disabled" } else { "" },
            ));
            if n.slashed.0 > 0 { line.style(Style::new().fg(Color::Red)) } else { line }
        })
        .collect()
}

fn money_lines(app: &App) -> Vec<Line<'static>> {
    let Some(f) = ledger_feed(app) else { return Vec::new() };
    if f.market.recent.is_empty() {
        return vec![Line::from("no slashes or refunds yet")];
    }
    f.market
        .recent
        .iter()
        .map(|r| {
            let who = r.node_small_id.map(|n| format!(" node {n}")).unwrap_or_default();
            let line = Line::from(format!(
                "{:<8} {:<7} stack {}{who} {} ({})",
                ago(f.time, r.time),
                r.kind,
                r.stack_small_id,
                r.amount.0,
                r.reason
            ));
            if r.kind == "slash" { line.style(Style::new().fg(Color::Red)) } else { line }
        })
        .collect()
}

pub fn render(f: &mut Frame<'_>, area: Rect, app: &App, compact: bool) {
    let market = Paragraph::new(summary_lines(app)).block(Block::bordered().title("Market"));
    let nodes = Paragraph::new(node_lines(app)).block(Block::bordered().title("Nodes"));
    if compact {
        // Narrow: the panels stack, each full width.
        let [top, middle, rest] = Layout::vertical([L(5), L(4), Min(3)]).areas(area);
        f.render_widget(market, top);
        f.render_widget(nodes, middle);
        render_table(f, rest, app, compact);
        return;
    }
    let [top, rest] = Layout::vertical([L(9), Min(4)]).areas(area);
    let [left, right] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    f.render_widget(market, left);
    f.render_widget(nodes, right);
    let [table, money] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(rest);
    render_table(f, table, app, compact);
    f.render_widget(
        Paragraph::new(money_lines(app)).block(Block::bordered().title("Recent slashes and refunds")),
        money,
    );
}
