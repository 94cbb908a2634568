//! `prag upload`: send files and folders to a collection, several in flight, with a progress bar
//! on a terminal and a JSON summary with `--json`.
//!
//! Each file is stored under a path relative to what was named: a file under its own name, a
//! folder's files under the folder's name and their path inside it — uploading `/home/a/records/`
//! stores `records/x.md`, never `home/a/records/x.md` (the uploader's own directories are nobody's
//! business). Naming `.` or `..` stores the files under their paths inside it.

use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};

use anyhow::bail;
use futures::StreamExt;
use prag_proto::api::{DocumentOutcome, DocumentStatus, UploadResponse};
use serde::Serialize;

use crate::args::UploadArgs;
use crate::connect::{client, runtime};

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

impl Summary {
    fn add(&mut self, documents: Vec<DocumentOutcome>) {
        for d in documents {
            match d.status {
                DocumentStatus::Created => self.created += 1,
                DocumentStatus::Replaced => self.replaced += 1,
                DocumentStatus::Unchanged => self.unchanged += 1,
                DocumentStatus::Deleted => {}
            }
            self.chunks += d.chunks;
            self.documents.push(d);
        }
    }
}

#[derive(Serialize)]
struct FileError {
    path: String,
    error: String,
}

/// A file to send: where it is here, and the path it is stored under.
#[derive(Debug, PartialEq, Eq)]
struct ToSend {
    file: PathBuf,
    stored_as: String,
}

/// The last component of `p` when it is a name (not `.`, `..` or the root).
fn named(p: &Path) -> Option<String> {
    match p.components().next_back() {
        Some(Component::Normal(n)) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    }
}

/// `rel` with `/` separators, after `prefix/` when there is a prefix.
fn stored(prefix: Option<&str>, rel: &Path) -> String {
    let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match prefix {
        Some(p) if !rel.is_empty() => format!("{p}/{}", rel.join("/")),
        Some(p) => p.to_string(),
        None => rel.join("/"),
    }
}

fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<ToSend>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let prefix = named(p);
            for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
                let entry = entry.map_err(|e| anyhow::anyhow!("cannot walk {}: {e}", p.display()))?;
                if entry.file_type().is_file() && prag_node::extract::is_supported(&entry.path().to_string_lossy()) {
                    let rel = entry.path().strip_prefix(p).unwrap_or(entry.path());
                    files.push(ToSend { file: entry.path().to_path_buf(), stored_as: stored(prefix.as_deref(), rel) });
                }
            }
        } else if p.is_file() {
            let Some(name) = named(p) else { bail!("{} is not a file name", p.display()) };
            files.push(ToSend { file: p.clone(), stored_as: name });
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(files)
}

pub fn run(args: UploadArgs) -> anyhow::Result<()> {
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        bail!("no {} files under the given paths", prag_node::extract::SUPPORTED);
    }
    let client = client(&args.client)?;
    let json = args.output.json;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let summary = runtime()?.block_on(async {
        let mut summary = Summary { files: files.len(), ..Summary::default() };
        let mut results = futures::stream::iter(files.iter().map(|f| {
            let (client, collection) = (&client, args.collection.as_str());
            async move {
                let result: anyhow::Result<UploadResponse> = async {
                    let bytes = tokio::fs::read(&f.file)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.file.display()))?;
                    Ok(client.upload(collection, &f.stored_as, &bytes).await?)
                }
                .await;
                (f.stored_as.clone(), result)
            }
        }))
        .buffer_unordered(usize::from(args.parallel));
        while let Some((path, result)) = results.next().await {
            match result {
                Ok(resp) => summary.add(resp.documents),
                Err(e) => {
                    summary.failed += 1;
                    let msg = format!("{e:#}");
                    match &bar {
                        Some(b) => b.println(format!("error: {path}: {msg}")),
                        None if !json => eprintln!("error: {path}: {msg}"),
                        None => {}
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
    if json {
        crate::output::json(&summary)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_stored_relative_to_what_was_named() {
        let tmp = tempfile::tempdir().unwrap();
        let records = tmp.path().join("home/a/records");
        std::fs::create_dir_all(records.join("2024")).unwrap();
        std::fs::write(records.join("x.md"), "x").unwrap();
        std::fs::write(records.join("2024/y.txt"), "y").unwrap();
        std::fs::write(records.join("skip.bin"), "z").unwrap();
        std::fs::write(tmp.path().join("home/a/notes.md"), "n").unwrap();
        let stored = |p: PathBuf| collect_files(&[p]).unwrap().into_iter().map(|f| f.stored_as).collect::<Vec<_>>();
        assert_eq!(stored(records.clone()), ["records/2024/y.txt", "records/x.md"]);
        let mut with_slash = records.as_os_str().to_owned();
        with_slash.push("/");
        assert_eq!(stored(PathBuf::from(with_slash)), ["records/2024/y.txt", "records/x.md"]);
        assert_eq!(stored(tmp.path().join("home/a/notes.md")), ["notes.md"]);
        assert_eq!(stored(records.join("2024/..")), ["2024/y.txt", "x.md"], "`..` names no folder: paths inside it");
        assert!(collect_files(&[tmp.path().join("missing")]).is_err());
    }
}
