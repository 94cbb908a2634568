//! Turning uploaded files into plain-text documents, by the extension of their path.
//!
//! `.txt` / `.md` (UTF-8), `.html` / `.htm`, `.pdf`, and `.jsonl` (one document per line:
//! `{"id"?, "text", "meta"?}`). Everything a user sends is untrusted: errors name the file and,
//! for JSON lines, the line; the PDF parser runs under `catch_unwind` because malformed PDFs can
//! make it panic.

use serde::Deserialize;

/// Why a file could not be turned into text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("{path}: unsupported file type; PRAG reads .txt, .md, .html, .htm, .pdf and .jsonl")]
    Unsupported { path: String },
    #[error("{path}: the file is empty")]
    Empty { path: String },
    #[error("{path}: the file holds no text")]
    NoText { path: String },
    #[error("{path}: looks like a binary file, not text")]
    Binary { path: String },
    #[error("{path}: not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 { path: String, offset: usize },
    #[error("{path}: line {line}: {reason}")]
    BadJsonLine { path: String, line: usize, reason: String },
    #[error("{path}: cannot read PDF: {reason}")]
    BadPdf { path: String, reason: String },
    #[error("{path}: cannot read HTML: {reason}")]
    BadHtml { path: String, reason: String },
}

/// One document extracted from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDocument {
    /// The document's name within its collection: the file's path, or `path#id` for JSON lines.
    pub path: String,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonLine {
    #[serde(default)]
    id: Option<serde_json::Value>,
    text: String,
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<serde_json::Value>,
}

pub fn is_supported(path: &str) -> bool {
    matches!(extension(path).as_str(), "txt" | "md" | "markdown" | "html" | "htm" | "pdf" | "jsonl")
}

fn extension(path: &str) -> String {
    std::path::Path::new(path).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Extracts the documents of one uploaded file.
pub fn extract(path: &str, bytes: &[u8]) -> Result<Vec<SourceDocument>, ExtractError> {
    let p = || path.to_string();
    if bytes.is_empty() {
        return Err(ExtractError::Empty { path: p() });
    }
    let docs = match extension(path).as_str() {
        "txt" | "md" | "markdown" => vec![SourceDocument { path: p(), text: utf8_text(path, bytes)?.to_string() }],
        "html" | "htm" => {
            let html = utf8_text(path, bytes)?;
            let text = html2text::from_read(html.as_bytes(), 10_000)
                .map_err(|e| ExtractError::BadHtml { path: p(), reason: e.to_string() })?;
            vec![SourceDocument { path: p(), text }]
        }
        "pdf" => vec![SourceDocument { path: p(), text: pdf_text(path, bytes)? }],
        "jsonl" => json_lines(path, bytes)?,
        _ => return Err(ExtractError::Unsupported { path: p() }),
    };
    let docs: Vec<SourceDocument> = docs.into_iter().filter(|d| !d.text.trim().is_empty()).collect();
    if docs.is_empty() {
        return Err(ExtractError::NoText { path: p() });
    }
    Ok(docs)
}

fn utf8_text<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, ExtractError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ExtractError::InvalidUtf8 { path: path.to_string(), offset: e.valid_up_to() })?;
    // NUL and most C0 controls never appear in text files.
    let controls = text.bytes().filter(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c))).count();
    if controls > 0 && controls * 100 >= text.len().max(1) || text.contains('\0') {
        return Err(ExtractError::Binary { path: path.to_string() });
    }
    Ok(text)
}

fn pdf_text(path: &str, bytes: &[u8]) -> Result<String, ExtractError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ExtractError::BadPdf { path: path.to_string(), reason: "missing %PDF- header".into() });
    }
    let owned = bytes.to_vec();
    match std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem(&owned)) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ExtractError::BadPdf { path: path.to_string(), reason: e.to_string() }),
        Err(_) => {
            Err(ExtractError::BadPdf { path: path.to_string(), reason: "the PDF parser failed on this file".into() })
        }
    }
}

fn json_lines(path: &str, bytes: &[u8]) -> Result<Vec<SourceDocument>, ExtractError> {
    let text = utf8_text(path, bytes)?;
    let mut docs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| ExtractError::BadJsonLine { path: path.to_string(), line: line_no, reason };
        let parsed: JsonLine = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let id = match parsed.id {
            None => line_no.to_string(),
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => return Err(bad("\"id\" must be a non-empty string or a number".into())),
        };
        docs.push(SourceDocument { path: format!("{path}#{id}"), text: parsed.text });
    }
    let mut seen = std::collections::HashSet::new();
    for d in &docs {
        if !seen.insert(d.path.as_str()) {
            return Err(ExtractError::BadJsonLine {
                path: path.to_string(),
                line: 0,
                reason: format!("duplicate id in {}", d.path),
            });
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_markdown() {
        let d = extract("notes/a.md", "# Title\n\nBody text.".as_bytes()).expect("md");
        assert_eq!(d, vec![SourceDocument { path: "notes/a.md".into(), text: "# Title\n\nBody text.".into() }]);
    }

    #[test]
    fn html_is_stripped() {
        let d = extract(
            "x.html",
            b"<html><body><h1>Clinic</h1><p>Open <b>daily</b>.</p><script>var x=1;</script></body></html>",
        )
        .expect("html");
        assert!(d[0].text.contains("Clinic") && d[0].text.contains("daily"), "{}", d[0].text);
        assert!(!d[0].text.contains("<p>"));
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        assert_eq!(extract("a.txt", b""), Err(ExtractError::Empty { path: "a.txt".into() }));
        assert_eq!(extract("a.txt", b"ok\xff\xfe"), Err(ExtractError::InvalidUtf8 { path: "a.txt".into(), offset: 2 }));
        assert_eq!(extract("a.txt", b"\x00\x01\x02\x03binary"), Err(ExtractError::Binary { path: "a.txt".into() }));
        assert_eq!(extract("a.txt", b"   \n\n  "), Err(ExtractError::NoText { path: "a.txt".into() }));
        assert_eq!(extract("a.exe", b"MZ"), Err(ExtractError::Unsupported { path: "a.exe".into() }));
        assert!(matches!(extract("a.pdf", b"%PDF-1.4 garbage"), Err(ExtractError::BadPdf { .. })));
        assert!(matches!(extract("a.pdf", b"not a pdf"), Err(ExtractError::BadPdf { .. })));
    }

    #[test]
    fn json_lines_with_ids_and_errors() {
        let d = extract("r.jsonl", b"{\"id\":\"p1\",\"text\":\"one\",\"meta\":{\"ward\":3}}\n\n{\"text\":\"two\"}\n{\"id\":7,\"text\":\"three\"}\n")
            .expect("jsonl");
        let paths: Vec<&str> = d.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, vec!["r.jsonl#p1", "r.jsonl#3", "r.jsonl#7"]);
        let e = extract("r.jsonl", b"{\"text\":\"ok\"}\n{\"txt\":\"bad\"}\n").expect_err("bad line");
        assert!(matches!(e, ExtractError::BadJsonLine { line: 2, .. }), "{e}");
        let e = extract("r.jsonl", b"{\"text\":\"ok\"}\nnot json\n").expect_err("bad line");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = extract("r.jsonl", b"{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"a\",\"text\":\"y\"}\n").expect_err("dup");
        assert!(e.to_string().contains("duplicate"), "{e}");
    }
}
