//! Turning uploaded files into plain-text documents, by the extension of their path.
//!
//! `.txt` / `.md` (UTF-8), `.html` / `.htm`, `.pdf`, and `.jsonl` (one document per line:
//! `{"id"?, "text", "meta"?}`). Everything a user sends is untrusted: errors name the file and,
//! for JSON lines, the line.
//!
//! Plain text and JSON lines are read here, in the node: both are linear in the input (serde_json
//! limits nesting to 128). HTML and PDF parsers are not: a 2.7 KB PDF nested 1,000 deep overflows
//! the stack, a 200 KB HTML table once asked for 24 GB. Those run in a separate, short-lived
//! process with limits on memory, CPU time and stack ([`sandbox`]); a file that hits one is refused
//! with the limit it hit, and the node is not affected.

pub mod child;
pub mod sandbox;

use serde::{Deserialize, Serialize};

pub use sandbox::{Sandbox, SandboxConfig};

/// The file types PRAG reads, as the messages that name them say it.
pub const SUPPORTED: &str = ".txt, .md, .markdown, .html, .htm, .pdf and .jsonl";

/// Longest JSON-lines `id`, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest document path (upload path, or `path#id`), in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a file could not be turned into text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("{path}: unsupported file type; PRAG reads {SUPPORTED}")]
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
    /// The extractor hit one of its limits: the file is refused, the node is unaffected.
    #[error("{path}: refused: {limit}")]
    Limit { path: String, limit: String },
    #[error("{path}: the extracted text is larger than {limit} bytes")]
    TooMuchText { path: String, limit: usize },
    #[error("invalid document path {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    /// The extractor could not be run at all (not the file's fault).
    #[error("{path}: the document extractor could not run: {reason}")]
    Sandbox { path: String, reason: String },
}

impl ExtractError {
    /// Whether the node, not the file, is at fault.
    pub fn is_internal(&self) -> bool {
        matches!(self, ExtractError::Sandbox { .. })
    }
}

impl From<ExtractError> for crate::error::Error {
    fn from(e: ExtractError) -> Self {
        use crate::error::{Error, ErrorKind};
        match &e {
            ExtractError::Limit { .. } | ExtractError::TooMuchText { .. } => {
                Error::new(ErrorKind::TooLarge, e.to_string())
            }
            _ if e.is_internal() => Error::internal("the document extractor failed", e),
            _ => Error::bad_request(e.to_string()),
        }
    }
}

/// One document extracted from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDocument {
    /// The document's name within its collection: the file's path, or `path#id` for JSON lines.
    pub path: String,
    pub text: String,
}

/// What a file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Html,
    Pdf,
    JsonLines,
}

impl Kind {
    pub fn of(path: &str) -> Option<Kind> {
        match extension(path).as_str() {
            "txt" | "md" | "markdown" => Some(Kind::Text),
            "html" | "htm" => Some(Kind::Html),
            "pdf" => Some(Kind::Pdf),
            "jsonl" => Some(Kind::JsonLines),
            _ => None,
        }
    }

    /// Whether this format's parser runs in the sandbox.
    pub fn is_hostile(self) -> bool {
        matches!(self, Kind::Html | Kind::Pdf)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Html => "html",
            Kind::Pdf => "pdf",
            Kind::JsonLines => "jsonl",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Kind::Text),
            "html" => Ok(Kind::Html),
            "pdf" => Ok(Kind::Pdf),
            "jsonl" => Ok(Kind::JsonLines),
            other => Err(crate::error::Error::bad_request(format!("unknown kind {other:?}"))),
        }
    }
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
    Kind::of(path).is_some()
}

fn extension(path: &str) -> String {
    std::path::Path::new(path).extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Characters a document name must not hold beyond the control characters: bidirectional
/// overrides and isolates (U+202E makes `gpj.exe` read `exe.jpg`), zero-width and other invisible
/// format characters, and line and paragraph separators.
fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Document names (upload paths, and `path#id` of JSON-lines rows): relative, 1 to
/// [`MAX_PATH_BYTES`] bytes, no `..` component, no control or invisible format characters.
pub fn validate_document_path(path: &str) -> Result<(), ExtractError> {
    let bad = |reason: &str| Err(ExtractError::BadPath { path: path.to_string(), reason: reason.into() });
    if path.is_empty() || path.len() > MAX_PATH_BYTES {
        return bad("must be 1 to 1024 bytes");
    }
    if path.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    if path.chars().any(is_deceptive) {
        return bad("contains invisible or bidirectional formatting characters");
    }
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return bad("must be relative and must not contain '..'");
    }
    Ok(())
}

/// An upload path names a document ([`validate_document_path`]) and has a supported extension.
pub fn check_upload_path(path: &str) -> Result<(), ExtractError> {
    validate_document_path(path)?;
    if !is_supported(path) {
        return Err(ExtractError::Unsupported { path: path.to_string() });
    }
    Ok(())
}

/// Extracts the documents of a file whose format is read in process (text, JSON lines). HTML and
/// PDF go through [`Sandbox::extract`] instead.
pub fn extract(path: &str, bytes: &[u8]) -> Result<Vec<SourceDocument>, ExtractError> {
    let p = || path.to_string();
    if bytes.is_empty() {
        return Err(ExtractError::Empty { path: p() });
    }
    let docs = match Kind::of(path) {
        Some(Kind::Text) => vec![SourceDocument { path: p(), text: utf8_text(path, bytes)?.to_string() }],
        Some(Kind::JsonLines) => json_lines(path, bytes)?,
        Some(Kind::Html | Kind::Pdf) => {
            return Err(ExtractError::Sandbox {
                path: p(),
                reason: "HTML and PDF are only read in the sandbox".into(),
            });
        }
        None => return Err(ExtractError::Unsupported { path: p() }),
    };
    keep_texts(path, docs)
}

/// Drops documents without text; refuses a file that has none.
pub(crate) fn keep_texts(path: &str, docs: Vec<SourceDocument>) -> Result<Vec<SourceDocument>, ExtractError> {
    let docs: Vec<SourceDocument> = docs.into_iter().filter(|d| !d.text.trim().is_empty()).collect();
    if docs.is_empty() {
        return Err(ExtractError::NoText { path: path.to_string() });
    }
    Ok(docs)
}

/// Why a hostile format could not be read (the child's answer; the parent adds the path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileFailure {
    BadPdf(String),
    BadHtml(String),
    InvalidUtf8(usize),
    Binary,
}

impl HostileFailure {
    pub fn with_path(self, path: &str) -> ExtractError {
        let path = path.to_string();
        match self {
            HostileFailure::BadPdf(reason) => ExtractError::BadPdf { path, reason },
            HostileFailure::BadHtml(reason) => ExtractError::BadHtml { path, reason },
            HostileFailure::InvalidUtf8(offset) => ExtractError::InvalidUtf8 { path, offset },
            HostileFailure::Binary => ExtractError::Binary { path },
        }
    }
}

/// The text of an HTML or PDF file. Call it only where a parser blowing up cannot hurt: in the
/// sandbox's child process (or in tests).
pub fn hostile_text(kind: Kind, bytes: &[u8]) -> Result<String, HostileFailure> {
    match kind {
        Kind::Html => {
            let html = std::str::from_utf8(bytes).map_err(|e| HostileFailure::InvalidUtf8(e.valid_up_to()))?;
            if html.contains('\0') {
                return Err(HostileFailure::Binary);
            }
            // Raw mode lays a table out cell by cell instead of as a grid: its size follows the
            // input's, not rows × columns × widths.
            html2text::config::plain()
                .raw_mode(true)
                .string_from_read(html.as_bytes(), 10_000)
                .map_err(|e| HostileFailure::BadHtml(e.to_string()))
        }
        Kind::Pdf => {
            if !bytes.starts_with(b"%PDF-") {
                return Err(HostileFailure::BadPdf("missing %PDF- header".into()));
            }
            match std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes)) {
                Ok(Ok(text)) => Ok(text),
                Ok(Err(e)) => Err(HostileFailure::BadPdf(e.to_string())),
                Err(_) => Err(HostileFailure::BadPdf("the PDF parser failed on this file".into())),
            }
        }
        Kind::Text | Kind::JsonLines => Err(HostileFailure::Binary),
    }
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
        if id.len() > MAX_ID_BYTES {
            return Err(bad(format!("\"id\" is longer than {MAX_ID_BYTES} bytes")));
        }
        let doc_path = format!("{path}#{id}");
        // The row's name obeys the same rules as an upload path.
        validate_document_path(&doc_path).map_err(|e| match e {
            ExtractError::BadPath { reason, .. } => bad(format!("\"id\" makes an invalid document name: {reason}")),
            other => other,
        })?;
        docs.push(SourceDocument { path: doc_path, text: parsed.text });
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
        let d = hostile_text(
            Kind::Html,
            b"<html><body><h1>Clinic</h1><p>Open <b>daily</b>.</p><script>var x=1;</script></body></html>",
        )
        .expect("html");
        assert!(d.contains("Clinic") && d.contains("daily"), "{d}");
        assert!(!d.contains("<p>"));
        let table = hostile_text(Kind::Html, b"<table><tr><td>ward</td><td>bed 4</td></tr></table>").expect("table");
        assert!(table.contains("ward") && table.contains("bed 4"), "{table}");
        assert!(matches!(extract("x.html", b"<p>x</p>"), Err(ExtractError::Sandbox { .. })), "never in process");
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        assert_eq!(extract("a.txt", b""), Err(ExtractError::Empty { path: "a.txt".into() }));
        assert_eq!(extract("a.txt", b"ok\xff\xfe"), Err(ExtractError::InvalidUtf8 { path: "a.txt".into(), offset: 2 }));
        assert_eq!(extract("a.txt", b"\x00\x01\x02\x03binary"), Err(ExtractError::Binary { path: "a.txt".into() }));
        assert_eq!(extract("a.txt", b"   \n\n  "), Err(ExtractError::NoText { path: "a.txt".into() }));
        assert_eq!(extract("a.exe", b"MZ"), Err(ExtractError::Unsupported { path: "a.exe".into() }));
        assert!(matches!(hostile_text(Kind::Pdf, b"%PDF-1.4 garbage"), Err(HostileFailure::BadPdf(_))));
        assert!(matches!(hostile_text(Kind::Pdf, b"not a pdf"), Err(HostileFailure::BadPdf(_))));
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

    /// Item 11: JSON-lines ids obey the path rules, one rule at a time.
    #[test]
    fn json_lines_ids_cannot_smuggle_what_paths_may_not_hold() {
        let row = |id: &str| format!("{{\"id\":{},\"text\":\"x\"}}\n", serde_json::to_string(id).unwrap());
        for (id, why) in [
            ("a\u{0}b", "control"),
            ("a\nb", "control"),
            ("\u{1b}[2Jwiped", "control"),
            ("../../etc/passwd", "'..'"),
            ("x\u{202E}fdp.exe", "invisible"),
            ("zero\u{200B}width", "invisible"),
        ] {
            let e = extract("r.jsonl", row(id).as_bytes()).expect_err(id);
            assert!(e.to_string().contains(why), "{id:?}: {e}");
        }
        let long = "i".repeat(MAX_ID_BYTES + 1);
        assert!(extract("r.jsonl", row(&long).as_bytes()).expect_err("long").to_string().contains("longer than"));
        assert!(extract("r.jsonl", row("ward-3/bed 4").as_bytes()).is_ok());
    }

    #[test]
    fn document_paths() {
        for ok in ["a.txt", "records/2024/jan.md", "naïve café.txt"] {
            assert!(validate_document_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd.txt", "a/../b.txt", "x\u{202E}txt.exe", "a\tb.txt", &"a".repeat(1025)] {
            assert!(validate_document_path(bad).is_err(), "{bad:?}");
        }
    }
}
