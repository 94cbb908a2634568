//! The `?` overlay: every key.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

pub const KEYS: &[(&str, &str)] = &[
    ("Tab / Shift-Tab", "next / previous screen"),
    ("1 … 7", "Overview, Collections, Traffic, Embedder, Ledger, Market, Audit"),
    ("j / k, ↓ / ↑", "move the selection"),
    ("Enter", "details of the selected row"),
    ("/", "filter rows (Enter keeps it, Esc clears it)"),
    ("m", "maximise the main panel"),
    ("c", "compact layout"),
    ("Esc", "close details, leave maximised"),
    ("?", "this help (any key closes it)"),
    ("q, Ctrl-C", "quit"),
];

pub fn render(f: &mut Frame<'_>, area: Rect) {
    let lines: Vec<Line<'_>> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>16}  "), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(*what),
            ])
        })
        .collect();
    let h = (KEYS.len() as u16 + 2).min(area.height);
    let w = 76.min(area.width);
    let popup = Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h };
    f.render_widget(Clear, popup);
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" keys ")), popup);
}
