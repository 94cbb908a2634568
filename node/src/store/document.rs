//! One document file: a sealed header and, per chunk, its sealed text, sealed dense vector and
//! sealed sparse (keyword) vector.
//!
//! ```text
//! "PRAGDOC2"
//! u32 len ‖ sealed header (JSON: path, content fingerprint, chunk count, time)
//! per chunk: u32 len ‖ sealed text ‖ u32 len ‖ sealed vector (f32 little-endian)
//!            ‖ u32 len ‖ sealed sparse vector (see `lexical::SparseVector::encode`)
//! "PRAGEND1"
//! ```
//! Files written before keyword search (`PRAGDOC1`) have no sparse vectors; loading one computes
//! them from its texts (opened, hashed, wiped), so old data searches like new.
//! Every length is checked against the file size before use, so a truncated or damaged file is
//! reported as damaged, never read out of bounds.

use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{StoreError, io_err, sync_dir};
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::lexical::{SparseVector, TermKey};

const MAGIC: &[u8; 8] = b"PRAGDOC2";
/// The format before sparse vectors.
const MAGIC_V1: &[u8; 8] = b"PRAGDOC1";
const END: &[u8; 8] = b"PRAGEND1";
/// The key version new data is sealed under.
pub const KEY_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DocumentHeader {
    pub path: String,
    /// Keyed hash of the extracted text: equal text ⇒ re-upload is a no-op.
    pub fingerprint: String,
    pub chunks: u32,
    pub created_at: u64,
    pub key_version: u32,
    /// Orders the versions of a document across replicas: the newest wins. Unix nanoseconds at
    /// ingest, and always above the version it replaces. 0 in files written before it existed.
    #[serde(default)]
    pub version: u64,
}

/// A version for a document replacing one of version `previous`.
pub fn new_version(previous: Option<u64>) -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    now.max(previous.map_or(0, |p| p + 1))
}

/// A chunk to be written.
pub struct NewChunk<'a> {
    pub text: &'a str,
    pub vector: &'a [f32],
    pub sparse: &'a SparseVector,
}

/// One chunk read back at start.
#[derive(Debug, Clone)]
pub struct LoadedChunk {
    pub loc: ChunkLocation,
    pub vector: Vec<f32>,
    pub sparse: SparseVector,
}

/// Where a chunk's sealed text lies in its document file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    pub offset: u64,
    pub len: u32,
}

/// A document read back at start: its header, and per chunk the text's location and the vector
/// (or the integrity error that prevented reading it).
pub struct LoadedDocument {
    pub header: DocumentHeader,
    /// The file's length.
    pub bytes: u64,
    pub chunks: Vec<Result<LoadedChunk, StoreError>>,
}

fn ctx<'a>(purpose: Purpose, cid: &'a str, doc: &'a str, chunk: u32) -> KeyContext<'a> {
    KeyContext::new(purpose, cid, doc, chunk, KEY_VERSION)
}

/// A document file written and synced under `tmp/`, not yet in place.
#[derive(Debug)]
pub struct Staged {
    pub tmp: PathBuf,
    pub locations: Vec<ChunkLocation>,
    /// The file's length.
    pub bytes: u64,
}

/// Writes a document atomically: temp file in `tmp_dir`, fsync, rename to `final_path`, fsync dir.
pub fn write(
    master: &MasterKey,
    cid: &str,
    doc_id: &str,
    header: &DocumentHeader,
    chunks: &[NewChunk<'_>],
    tmp_dir: &Path,
    final_path: &Path,
) -> Result<Vec<ChunkLocation>, StoreError> {
    let staged =
        stage(master, cid, doc_id, header, chunks, &tmp_dir.join(format!("{doc_id}.{}.tmp", std::process::id())))?;
    std::fs::rename(&staged.tmp, final_path).map_err(io_err("cannot commit", final_path))?;
    if let Some(dir) = final_path.parent() {
        sync_dir(dir)?;
    }
    Ok(staged.locations)
}

/// Writes a document file to `tmp_path` and syncs it; nothing is in place yet.
pub fn stage(
    master: &MasterKey,
    cid: &str,
    doc_id: &str,
    header: &DocumentHeader,
    chunks: &[NewChunk<'_>],
    tmp_path: &Path,
) -> Result<Staged, StoreError> {
    let tmp_path = tmp_path.to_path_buf();
    let file = std::fs::File::create(&tmp_path).map_err(io_err("cannot create", &tmp_path))?;
    let mut w = BufWriter::new(file);
    let mut offset: u64 = 0;
    let put = |w: &mut BufWriter<std::fs::File>, bytes: &[u8], offset: &mut u64| {
        w.write_all(bytes).map(|_| *offset += bytes.len() as u64)
    };
    let mut locations = Vec::with_capacity(chunks.len());
    let res: std::io::Result<()> = (|| {
        put(&mut w, MAGIC, &mut offset)?;
        let header_json = Zeroizing::new(serde_json::to_vec(header).map_err(std::io::Error::other)?);
        let sealed = master
            .derive(&ctx(Purpose::DocumentMeta, cid, doc_id, 0))
            .seal(&header_json)
            .map_err(std::io::Error::other)?;
        put(&mut w, &(sealed.len() as u32).to_le_bytes(), &mut offset)?;
        put(&mut w, &sealed, &mut offset)?;
        for (i, c) in chunks.iter().enumerate() {
            let i = i as u32;
            let text = master
                .derive(&ctx(Purpose::ChunkText, cid, doc_id, i))
                .seal(c.text.as_bytes())
                .map_err(std::io::Error::other)?;
            put(&mut w, &(text.len() as u32).to_le_bytes(), &mut offset)?;
            locations.push(ChunkLocation { offset, len: text.len() as u32 });
            put(&mut w, &text, &mut offset)?;
            let raw: Zeroizing<Vec<u8>> = Zeroizing::new(c.vector.iter().flat_map(|f| f.to_le_bytes()).collect());
            let vec =
                master.derive(&ctx(Purpose::ChunkVector, cid, doc_id, i)).seal(&raw).map_err(std::io::Error::other)?;
            put(&mut w, &(vec.len() as u32).to_le_bytes(), &mut offset)?;
            put(&mut w, &vec, &mut offset)?;
            let sparse = master
                .derive(&ctx(Purpose::ChunkSparse, cid, doc_id, i))
                .seal(&Zeroizing::new(c.sparse.encode()))
                .map_err(std::io::Error::other)?;
            put(&mut w, &(sparse.len() as u32).to_le_bytes(), &mut offset)?;
            put(&mut w, &sparse, &mut offset)?;
        }
        put(&mut w, END, &mut offset)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(StoreError::Io { action: "cannot write", path: tmp_path.display().to_string(), source: e });
    }
    Ok(Staged { tmp: tmp_path, locations, bytes: offset })
}

/// Reads a document file back: header opened, every vector opened (texts stay sealed on disk).
pub fn load(master: &MasterKey, cid: &str, doc_id: &str, path: &Path) -> Result<LoadedDocument, StoreError> {
    load_checked(master, cid, doc_id, path, false)
}

/// [`load`], and with `check_texts` every chunk's text is opened too (then wiped), so a file
/// that loads is whole: used for files received from peers before they are served.
pub fn load_checked(
    master: &MasterKey,
    cid: &str,
    doc_id: &str,
    path: &Path,
    check_texts: bool,
) -> Result<LoadedDocument, StoreError> {
    let mut scratch = Zeroizing::new(Vec::new());
    let bytes = std::fs::read(path).map_err(io_err("cannot read", path))?;
    let damaged = |reason: &str| StoreError::Damaged { path: path.display().to_string(), reason: reason.into() };
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<(usize, &[u8]), StoreError> {
        let end = pos.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| damaged("truncated"))?;
        let start = pos;
        pos = end;
        Ok((start, &bytes[start..end]))
    };
    let v1 = match take(8)?.1 {
        m if m == MAGIC => false,
        m if m == MAGIC_V1 => true,
        _ => return Err(damaged("not a PRAG document file")),
    };
    // Only a file of the first format needs it: its sparse vectors come from its texts.
    let term_key = v1.then(|| TermKey::of_collection(master, cid));
    let read_len = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let hlen = read_len(take(4)?.1);
    let sealed_header = take(hlen)?.1;
    let header_json = master
        .derive(&ctx(Purpose::DocumentMeta, cid, doc_id, 0))
        .open(sealed_header)
        .map_err(|_| StoreError::Integrity { what: format!("header of {}", path.display()) })?;
    let header: DocumentHeader =
        serde_json::from_slice(&header_json).map_err(|_| damaged("header is not valid JSON"))?;
    let mut chunks = Vec::with_capacity(header.chunks as usize);
    for i in 0..header.chunks {
        let tlen = read_len(take(4)?.1);
        let (toff, sealed_text) = take(tlen)?;
        let text_error = || StoreError::Integrity { what: format!("text of chunk {i} of {}", path.display()) };
        let mut text_len = 0;
        if check_texts || v1 {
            text_len = master
                .derive(&ctx(Purpose::ChunkText, cid, doc_id, i))
                .open_into(sealed_text, &mut scratch)
                .map_err(|_| text_error())?;
        }
        let vlen = read_len(take(4)?.1);
        let sealed_vec = take(vlen)?.1;
        let loc = ChunkLocation { offset: toff as u64, len: tlen as u32 };
        let vector = master
            .derive(&ctx(Purpose::ChunkVector, cid, doc_id, i))
            .open(sealed_vec)
            .map_err(|_| StoreError::Integrity { what: format!("vector of chunk {i} of {}", path.display()) })
            .map(|raw| raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
        let sparse = match &term_key {
            Some(key) => {
                let text = std::str::from_utf8(&scratch[..text_len]).map_err(|_| text_error())?;
                Ok(key.document_vector(text))
            }
            None => {
                let slen = read_len(take(4)?.1);
                let sealed_sparse = take(slen)?.1;
                let what =
                    || StoreError::Integrity { what: format!("sparse vector of chunk {i} of {}", path.display()) };
                master
                    .derive(&ctx(Purpose::ChunkSparse, cid, doc_id, i))
                    .open(sealed_sparse)
                    .map_err(|_| what())
                    .and_then(|raw| SparseVector::decode(&raw).map_err(|_| what()))
            }
        };
        chunks.push(vector.and_then(|vector| Ok(LoadedChunk { loc, vector, sparse: sparse? })));
    }
    if take(8)?.1 != END {
        return Err(damaged("missing end marker"));
    }
    Ok(LoadedDocument { header, bytes: bytes.len() as u64, chunks })
}

/// Reads and opens one chunk's text.
pub fn read_text(
    master: &MasterKey,
    cid: &str,
    doc_id: &str,
    chunk: u32,
    path: &PathBuf,
    loc: ChunkLocation,
) -> Result<Zeroizing<String>, StoreError> {
    let file = std::fs::File::open(path).map_err(io_err("cannot open", path))?;
    let mut sealed = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut sealed, loc.offset).map_err(io_err("cannot read", path))?;
    let what = || StoreError::Integrity { what: format!("text of chunk {chunk} of document {doc_id}") };
    let plain = master.derive(&ctx(Purpose::ChunkText, cid, doc_id, chunk)).open(&sealed).map_err(|_| what())?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| what())?;
    Ok(Zeroizing::new(text))
}
