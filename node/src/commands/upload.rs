//! `prag upload`: send files and folders to a collection, several in flight, with a progress bar
//! on a terminal and a JSON summary with `--json`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::bail;
use futures::StreamExt;
use prag_proto::api::{DocumentOutcome, DocumentStatus, UploadResponse};
use serde::Serialize;

use crate::cli::{NodeConn, runtime};
use crate::extract::is_supported;

#[derive(clap::Args, Debug)]
pub struct UploadArgs {
    #[command(flatten)]
    pub conn: NodeConn,
    #[arg(long, short)]
    pub collection: String,
    /// Files sent at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Print a JSON summary instead of a progress bar and text.
    #[arg(long)]
    pub json: bool,
    /// Files and folders (walked recursively; .txt .md .html .htm .pdf .jsonl).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Serialize, Default)]
struct Summary {
    files: usize,
    created: usize,
    replaced: usize,
    unchanged: usize,
    failed: usize,
    chunks: u64,
    documents: Vec<DocumentOutcome>,
    errors: Vec<FileError>,
}

#[derive(Serialize)]
struct FileError {
    path: String,
    error: String,
}

/// The name a file is stored under: the path as given, without a leading `./` or `/`.
fn document_path(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.trim_start_matches("./").trim_start_matches('/').to_string()
}

fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
                let entry = entry.map_err(|e| anyhow::anyhow!("cannot walk {}: {e}", p.display()))?;
                if entry.file_type().is_file() && is_supported(&entry.path().to_string_lossy()) {
                    files.push(entry.path().to_path_buf());
                }
            }
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(files)
}

pub fn run(args: UploadArgs) -> anyhow::Result<()> {
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        bail!("no .txt, .md, .html, .htm, .pdf or .jsonl files under the given paths");
    }
    let client = args.conn.client()?;
    let bar = if !args.json && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let summary = runtime()?.block_on(async {
        let mut summary = Summary { files: files.len(), ..Summary::default() };
        let mut results = futures::stream::iter(files.iter().map(|f| {
            let (client, collection) = (&client, args.collection.as_str());
            async move {
                let doc_path = document_path(f);
                let result: anyhow::Result<UploadResponse> = async {
                    let bytes =
                        tokio::fs::read(f).await.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
                    client.upload(collection, &doc_path, &bytes).await
                }
                .await;
                (doc_path, result)
            }
        }))
        .buffer_unordered(args.parallel.max(1));
        while let Some((path, result)) = results.next().await {
            match result {
                Ok(resp) => {
                    for d in resp.documents {
                        match d.status {
                            DocumentStatus::Created => summary.created += 1,
                            DocumentStatus::Replaced => summary.replaced += 1,
                            DocumentStatus::Unchanged => summary.unchanged += 1,
                            DocumentStatus::Deleted => {}
                        }
                        summary.chunks += d.chunks;
                        summary.documents.push(d);
                    }
                }
                Err(e) => {
                    summary.failed += 1;
                    let msg = format!("{e:#}");
                    if let Some(b) = &bar {
                        b.println(format!("error: {path}: {msg}"));
                    } else if !args.json {
                        eprintln!("error: {path}: {msg}");
                    }
                    summary.errors.push(FileError { path, error: msg });
                }
            }
            if let Some(b) = &bar {
                b.inc(1);
            }
        }
        summary
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} files: {} created, {} replaced, {} unchanged, {} failed ({} chunks)",
            summary.files, summary.created, summary.replaced, summary.unchanged, summary.failed, summary.chunks
        );
    }
    if summary.failed > 0 {
        bail!("{} of {} files failed", summary.failed, summary.files);
    }
    Ok(())
}
