//! `prag embed`: one embedding per input text.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};

use crate::args::EmbedArgs;

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let texts = match &args.input {
        Some(path) => read_texts(path)?,
        None => args.texts.clone(),
    };
    let embedder = crate::config::embedder(&args.model, false)?;
    let vectors = crate::connect::runtime()?.block_on(embedder.embed(texts))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer(&mut out, &vectors)?;
        writeln!(out)?;
    } else {
        for v in &vectors {
            let line: Vec<String> = v.iter().map(|x| format!("{x:.7}")).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Reads one text per line, or JSON lines `{"text": ...}`. A file ending in `.jsonl` must be JSON
/// lines throughout; elsewhere a line that parses as an object with `text` is taken as JSON.
pub fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let strict_jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut texts = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {} is not valid UTF-8 text", path.display(), n + 1))?;
        let trimmed = line.trim();
        if trimmed.is_empty() && strict_jsonl {
            continue;
        }
        if trimmed.starts_with('{') || strict_jsonl {
            match serde_json::from_str::<serde_json::Value>(trimmed) {
                Ok(serde_json::Value::Object(map)) => match map.get("text") {
                    Some(serde_json::Value::String(t)) => {
                        texts.push(t.clone());
                        continue;
                    }
                    _ if strict_jsonl => bail!("{}: line {}: no string field \"text\"", path.display(), n + 1),
                    _ => {}
                },
                Ok(_) if strict_jsonl => bail!("{}: line {}: expected a JSON object", path.display(), n + 1),
                Err(e) if strict_jsonl => bail!("{}: line {}: invalid JSON: {e}", path.display(), n + 1),
                _ => {}
            }
        }
        texts.push(line);
    }
    if texts.is_empty() {
        bail!("{} holds no text", path.display());
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_json_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let plain = dir.path().join("in.txt");
        std::fs::write(&plain, "first line\n{\"text\": \"from json\"}\n{not json}\n").expect("write");
        assert_eq!(read_texts(&plain).expect("read"), vec!["first line", "from json", "{not json}"]);

        let jsonl = dir.path().join("in.jsonl");
        std::fs::write(&jsonl, "{\"text\": \"a\"}\n\n{\"text\": \"b\", \"meta\": 1}\n").expect("write");
        assert_eq!(read_texts(&jsonl).expect("read"), vec!["a", "b"]);

        std::fs::write(&jsonl, "{\"text\": \"a\"}\n{\"txt\": 1}\n").expect("write");
        let e = read_texts(&jsonl).expect_err("must fail").to_string();
        assert!(e.contains("line 2"), "{e}");

        std::fs::write(&plain, b"ok\n\xff\xfe\n").expect("write");
        let e = format!("{:#}", read_texts(&plain).expect_err("must fail"));
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
    }
}
