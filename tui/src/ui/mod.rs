//! Drawing. `render` lays out the header, the current screen and the status line; each screen
//! is a pure function of the [`App`] snapshot. Every screen's main table comes from
//! [`table`], which the selection, the `/` filter and the details popup share.

mod help;
mod market;
mod screens;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, TableState, Tabs, Wrap};

use crate::app::{App, Link, Screen};

/// A screen's main table: headers, rows (full values; the terminal truncates) and column widths
/// for the wide and the compact layout (a width of 0 hides the column).
pub struct TableData {
    pub title: String,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub wide: Vec<Constraint>,
    pub narrow: Vec<Constraint>,
    /// Row index → style (e.g. red for a disconnected node).
    pub alert_rows: Vec<usize>,
}

/// The current screen's table after the filter.
pub fn table(app: &App) -> TableData {
    let mut t = screens::table(app);
    if !app.filter.is_empty() {
        let needle = app.filter.to_lowercase();
        let keep: Vec<usize> =
            (0..t.rows.len()).filter(|&i| t.rows[i].iter().any(|c| c.to_lowercase().contains(&needle))).collect();
        t.alert_rows = keep.iter().enumerate().filter(|(_, i)| t.alert_rows.contains(i)).map(|(n, _)| n).collect();
        t.rows = keep.into_iter().map(|i| t.rows[i].clone()).collect();
    }
    t
}

pub fn row_count(app: &App) -> usize {
    table(app).rows.len()
}

/// Whether the small layout is in use.
pub fn is_compact(app: &App, area: Rect) -> bool {
    app.compact || area.width < 100 || area.height < 30
}

pub fn render(f: &mut Frame<'_>, app: &App) {
    let area = f.area();
    let compact = is_compact(app, area);
    let [header, body, status] = if app.maximised {
        Layout::vertical([Constraint::Length(0), Constraint::Min(1), Constraint::Length(1)]).areas(area)
    } else {
        Layout::vertical([Constraint::Length(if compact { 1 } else { 2 }), Constraint::Min(1), Constraint::Length(1)])
            .areas(area)
    };
    if !app.maximised {
        render_header(f, header, app, compact);
    }
    screens::render(f, body, app, compact);
    render_status(f, status, app);
    if app.details {
        render_details(f, area, app);
    }
    if app.help {
        help::render(f, area);
    }
}

fn render_header(f: &mut Frame<'_>, area: Rect, app: &App, compact: bool) {
    let titles: Vec<Line<'_>> = Screen::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let t = if compact { s.title().chars().take(5).collect::<String>() } else { s.title().to_string() };
            Line::from(format!("{} {t}", i + 1))
        })
        .collect();
    let selected = Screen::ALL.iter().position(|s| *s == app.screen).unwrap_or(0);
    let live = app.nodes.iter().filter(|n| n.link == Link::Live).count();
    let tabs = Tabs::new(titles)
        .select(selected)
        .highlight_style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED))
        .divider("│");
    if compact {
        f.render_widget(tabs, area);
        return;
    }
    let [top, bottom] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    f.render_widget(tabs, top);
    let summary = Line::from(vec![
        Span::styled(" PRAG console ", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!("· nodes {live}/{} live", app.nodes.len())),
    ]);
    f.render_widget(Paragraph::new(summary), bottom);
}

fn render_status(f: &mut Frame<'_>, area: Rect, app: &App) {
    let left = if app.editing_filter {
        format!("/{}▏ (Enter keep · Esc clear)", app.filter)
    } else if !app.filter.is_empty() {
        format!("filter: {} · ? help · q quit", app.filter)
    } else {
        "Tab/1-7 screens · j/k move · Enter details · / filter · ? help · q quit".to_string()
    };
    let right = if app.status_line.is_empty() { String::new() } else { format!(" {} ", app.status_line) };
    let [l, r] = Layout::horizontal([
        Constraint::Min(10),
        Constraint::Length(right.chars().count().min(area.width as usize / 2) as u16),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(left).style(Style::new().fg(Color::DarkGray)), l);
    f.render_widget(Paragraph::new(right).style(Style::new().fg(Color::Yellow)), r);
}

/// The main table of a screen, with selection.
pub fn render_table(f: &mut Frame<'_>, area: Rect, app: &App, compact: bool) {
    let t = table(app);
    let widths: Vec<Constraint> = if compact { t.narrow.clone() } else { t.wide.clone() };
    let visible: Vec<usize> =
        widths.iter().enumerate().filter(|(_, w)| **w != Constraint::Length(0)).map(|(i, _)| i).collect();
    let header =
        Row::new(visible.iter().map(|&i| Cell::from(t.headers[i]))).style(Style::new().add_modifier(Modifier::BOLD));
    let rows: Vec<Row<'_>> = t
        .rows
        .iter()
        .enumerate()
        .map(|(n, r)| {
            let row = Row::new(visible.iter().map(|&i| Cell::from(r.get(i).cloned().unwrap_or_default())));
            if t.alert_rows.contains(&n) { row.style(Style::new().fg(Color::Red)) } else { row }
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(rows, visible.iter().map(|&i| widths[i]).collect::<Vec<_>>())
        .header(header)
        .block(Block::bordered().title(t.title.clone()))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default();
    if !empty {
        state.select(Some(app.selected.min(t.rows.len() - 1)));
    }
    f.render_stateful_widget(table, area, &mut state);
}

fn render_details(f: &mut Frame<'_>, area: Rect, app: &App) {
    let t = table(app);
    let Some(row) = t.rows.get(app.selected.min(t.rows.len().saturating_sub(1))) else { return };
    let lines: Vec<Line<'_>> = t
        .headers
        .iter()
        .zip(row)
        .map(|(h, v)| {
            Line::from(vec![
                Span::styled(format!("{h}: "), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(v.clone()),
            ])
        })
        .collect();
    let popup = centered(area, 80, 60);
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(Block::bordered().title(" details (Enter/Esc close) ")),
        popup,
    );
}

/// A rectangle of `pw`% × `ph`% centred in `area`.
pub fn centered(area: Rect, pw: u16, ph: u16) -> Rect {
    let w = area.width * pw / 100;
    let h = area.height * ph / 100;
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// "3m ago"-style age of `t` relative to the snapshot time `now`.
pub fn ago(now: u64, t: u64) -> String {
    let d = now.saturating_sub(t);
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86_399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}

pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// `host:port` of a node URL.
pub fn host(url: &str) -> String {
    url.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string()
}

pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n.saturating_sub(1)).collect::<String>())
    }
}
