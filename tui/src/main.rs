//! `prag-console` (run as `prag console`): the operator's terminal dashboard.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use prag_tui::app::{App, Key};
use prag_tui::{feed, keyfile, ui};

/// A full-screen dashboard of PRAG nodes: overview, collections, traffic, embedder, ledger and
/// audit log, live from the nodes' API (signed server-sent events).
#[derive(Parser, Debug)]
#[command(name = "prag console", version)]
struct Args {
    /// Node API URL; repeat for several nodes.
    #[arg(long = "node", env = "PRAG_NODE", value_delimiter = ',', default_value = "http://127.0.0.1:7700")]
    nodes: Vec<String>,
    /// Operator key file: the contracts' admin or a key the node lists with --operator.
    #[arg(long, env = "PRAG_KEY", value_name = "FILE")]
    key: PathBuf,
    /// Screen refresh interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    tick_ms: u64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = keyfile::load(&args.key)?;
    let (tx, rx) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    for (i, url) in args.nodes.iter().enumerate() {
        runtime.spawn(feed::run(i, url.clone(), key.clone(), tx.clone()));
    }
    drop(tx);

    let mut terminal = ratatui::init(); // raw mode, alternate screen, and a panic hook that restores both
    let result = event_loop(&mut terminal, App::new(&args.nodes), &rx, Duration::from_millis(args.tick_ms.max(20)));
    ratatui::restore();
    runtime.shutdown_background();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut app: App,
    rx: &mpsc::Receiver<feed::Update>,
    tick: Duration,
) -> anyhow::Result<()> {
    loop {
        // Snapshot: fold everything that arrived, then draw from the state alone.
        while let Ok(update) = rx.try_recv() {
            app.apply(update);
        }
        terminal.draw(|f| ui::render(f, &app)).context("cannot draw")?;
        let deadline = Instant::now() + tick;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if !event::poll(left).context("cannot read the terminal")? {
                break;
            }
            if let Event::Key(k) = event::read().context("cannot read the terminal")? {
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                let key = match k.code {
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
                    KeyCode::Char(c) => Key::Char(c),
                    KeyCode::Tab => Key::Tab,
                    KeyCode::BackTab => Key::BackTab,
                    KeyCode::Up => Key::Up,
                    KeyCode::Down => Key::Down,
                    KeyCode::Enter => Key::Enter,
                    KeyCode::Esc => Key::Esc,
                    KeyCode::Backspace => Key::Backspace,
                    _ => continue,
                };
                app.key(key);
                if app.quit {
                    return Ok(());
                }
                break; // redraw at once after a key
            }
        }
    }
}
