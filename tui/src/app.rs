//! The console's state and what keys do to it. Pure: no terminal, no network, no clock.

use std::collections::VecDeque;

use prag_proto::api::ConsoleFeed;

use crate::feed::Update;

/// Samples kept for the traffic sparklines (one per snapshot, i.e. per second).
pub const HISTORY: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Overview,
    Collections,
    Traffic,
    Embedder,
    Ledger,
    Market,
    Audit,
}

impl Screen {
    pub const ALL: [Screen; 7] = [
        Screen::Overview,
        Screen::Collections,
        Screen::Traffic,
        Screen::Embedder,
        Screen::Ledger,
        Screen::Market,
        Screen::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Overview => "Overview",
            Screen::Collections => "Collections",
            Screen::Traffic => "Traffic",
            Screen::Embedder => "Embedder",
            Screen::Ledger => "Ledger",
            Screen::Market => "Market",
            Screen::Audit => "Audit",
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// How a node's feed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Live,
    /// Lost or never reached; the feed retries by itself.
    Disconnected(String),
}

/// Per-second rates, from differences between consecutive snapshots.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub queries: VecDeque<u64>,
    pub ingest: VecDeque<u64>,
    pub worker: VecDeque<u64>,
    pub embedded: VecDeque<u64>,
    last: Option<(u64, u64, u64, u64, u64)>,
}

impl History {
    fn push(q: &mut VecDeque<u64>, v: u64) {
        if q.len() == HISTORY {
            q.pop_front();
        }
        q.push_back(v);
    }

    fn observe(&mut self, f: &ConsoleFeed) {
        let worker_total: u64 = f.status.worker_usage.iter().map(|u| u.requests).sum();
        let now = (f.time, f.status.queries, f.status.ingested_documents, worker_total, f.status.embedder.texts);
        if let Some((t, q, i, w, e)) = self.last {
            let dt = now.0.saturating_sub(t).max(1);
            Self::push(&mut self.queries, now.1.saturating_sub(q) / dt);
            Self::push(&mut self.ingest, now.2.saturating_sub(i) / dt);
            Self::push(&mut self.worker, now.3.saturating_sub(w) / dt);
            Self::push(&mut self.embedded, now.4.saturating_sub(e) / dt);
        }
        self.last = Some(now);
    }
}

#[derive(Debug, Clone)]
pub struct NodeView {
    pub url: String,
    pub link: Link,
    pub feed: Option<ConsoleFeed>,
    pub history: History,
}

#[derive(Debug, Clone)]
pub struct App {
    pub nodes: Vec<NodeView>,
    pub screen: Screen,
    /// Selected row of the current screen's main table.
    pub selected: usize,
    pub filter: String,
    pub editing_filter: bool,
    pub maximised: bool,
    /// Forced compact layout (it is also used whenever the terminal is small).
    pub compact: bool,
    pub help: bool,
    pub details: bool,
    pub quit: bool,
    /// The latest problem worth a line at the bottom (garbage on a stream, a refused key, ...).
    pub status_line: String,
}

/// Keys the console understands, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Tab,
    BackTab,
    Up,
    Down,
    Enter,
    Esc,
    Backspace,
    CtrlC,
}

impl App {
    pub fn new(urls: &[String]) -> Self {
        App {
            nodes: urls
                .iter()
                .map(|u| NodeView { url: u.clone(), link: Link::Connecting, feed: None, history: History::default() })
                .collect(),
            screen: Screen::Overview,
            selected: 0,
            filter: String::new(),
            editing_filter: false,
            maximised: false,
            compact: false,
            help: false,
            details: false,
            quit: false,
            status_line: String::new(),
        }
    }

    /// Folds one update from a node's feed into the state.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Snapshot { node, feed } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    n.history.observe(&feed);
                    n.feed = Some(*feed);
                    n.link = Link::Live;
                }
            }
            Update::Down { node, reason } => {
                if let Some(n) = self.nodes.get_mut(node) {
                    self.status_line = format!("{}: {reason}", n.url);
                    n.link = Link::Disconnected(reason);
                }
            }
            Update::Problem { node, message } => {
                if let Some(n) = self.nodes.get(node) {
                    self.status_line = format!("{}: {message}", n.url);
                }
            }
        }
    }

    /// Rows in the current screen's main table (for moving the selection).
    pub fn rows(&self) -> usize {
        crate::ui::row_count(self)
    }

    pub fn key(&mut self, key: Key) {
        if self.editing_filter {
            match key {
                Key::Enter => self.editing_filter = false,
                Key::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                Key::Backspace => {
                    self.filter.pop();
                }
                Key::Char(c) => self.filter.push(c),
                Key::CtrlC => self.quit = true,
                _ => {}
            }
            self.selected = 0;
            return;
        }
        if self.help {
            // Any key closes the help overlay; q still quits.
            self.help = false;
            if !matches!(key, Key::Char('q') | Key::CtrlC) {
                return;
            }
        }
        match key {
            Key::Char('q') | Key::CtrlC => self.quit = true,
            Key::Char('?') => self.help = true,
            Key::Tab => self.go(Screen::ALL[(self.screen.index() + 1) % Screen::ALL.len()]),
            Key::BackTab => self.go(Screen::ALL[(self.screen.index() + Screen::ALL.len() - 1) % Screen::ALL.len()]),
            Key::Char(c @ '1'..='7') => self.go(Screen::ALL[(c as usize) - ('1' as usize)]),
            Key::Char('j') | Key::Down => {
                let n = self.rows();
                if n > 0 {
                    self.selected = (self.selected + 1).min(n - 1);
                }
            }
            Key::Char('k') | Key::Up => self.selected = self.selected.saturating_sub(1),
            Key::Enter => self.details = !self.details,
            Key::Esc => {
                self.details = false;
                self.maximised = false;
            }
            Key::Char('/') => {
                self.editing_filter = true;
                self.filter.clear();
            }
            Key::Char('m') => self.maximised = !self.maximised,
            Key::Char('c') => self.compact = !self.compact,
            _ => {}
        }
    }

    fn go(&mut self, screen: Screen) {
        self.screen = screen;
        self.selected = 0;
        self.details = false;
    }
}
