//! A sentence-transformers model directory on disk: which files it must hold and what they say.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{EmbedError, Result};
use crate::pooling::Pooling;

/// The files of a model directory, read and checked, ready to build a model from.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub config: BertConfig,
    pub pooling: Pooling,
    /// Longest input in tokens, special tokens included (`sentence_bert_config.json`).
    pub max_seq_length: usize,
}

/// The fields of a BERT `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

pub const CONFIG: &str = "config.json";
pub const WEIGHTS: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";
pub const POOLING: &str = "1_Pooling/config.json";
pub const SBERT_CONFIG: &str = "sentence_bert_config.json";

impl ModelDir {
    /// Reads and checks the configuration files of `dir`. The weights and tokenizer are opened
    /// later, by the model and tokenizer loaders, which report their own file errors.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(EmbedError::ModelDirMissing { dir: dir.to_path_buf() });
        }
        for required in [CONFIG, WEIGHTS, TOKENIZER] {
            let path = dir.join(required);
            if !path.is_file() {
                return Err(EmbedError::MissingFile { path });
            }
        }
        let config: BertConfig = read_json(&dir.join(CONFIG))?;
        check_config(&dir.join(CONFIG), &config)?;

        let pooling = match read_optional_json::<PoolingConfig>(&dir.join(POOLING))? {
            Some(p) => pooling_from(&dir.join(POOLING), &p)?,
            None => Pooling::Mean,
        };
        let sbert = read_optional_json::<SentenceBertConfig>(&dir.join(SBERT_CONFIG))?;
        let max_seq_length = sbert
            .and_then(|s| s.max_seq_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        if max_seq_length < 2 {
            return Err(EmbedError::InvalidFile {
                path: dir.join(SBERT_CONFIG),
                reason: format!("max_seq_length {max_seq_length} leaves no room for text"),
            });
        }
        Ok(ModelDir { dir: dir.to_path_buf(), config, pooling, max_seq_length })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A short name for logs and status: the directory's last component.
    pub fn name(&self) -> String {
        self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.dir.display().to_string())
    }
}

fn check_config(path: &Path, c: &BertConfig) -> Result<()> {
    let bad = |reason: String| Err(EmbedError::InvalidFile { path: path.to_path_buf(), reason });
    if let Some(t) = &c.model_type
        && t != "bert"
    {
        return Err(EmbedError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!("model_type {t:?}; this embedder runs BERT models"),
        });
    }
    if c.hidden_size == 0 || c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
        return bad(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            c.hidden_size, c.num_attention_heads
        ));
    }
    if c.num_hidden_layers == 0 || c.intermediate_size == 0 || c.vocab_size == 0 {
        return bad("num_hidden_layers, intermediate_size and vocab_size must be positive".into());
    }
    if !matches!(c.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu") {
        return Err(EmbedError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!("hidden_act {:?}", c.hidden_act),
        });
    }
    if let Some(p) = &c.position_embedding_type
        && p != "absolute"
    {
        return Err(EmbedError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!("position_embedding_type {p:?}; only absolute is supported"),
        });
    }
    Ok(())
}

fn pooling_from(path: &Path, p: &PoolingConfig) -> Result<Pooling> {
    let chosen: Vec<Pooling> = [
        (p.pooling_mode_mean_tokens, Pooling::Mean),
        (p.pooling_mode_cls_token, Pooling::Cls),
        (p.pooling_mode_max_tokens, Pooling::Max),
        (p.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
    ]
    .into_iter()
    .filter_map(|(on, mode)| on.then_some(mode))
    .collect();
    match chosen.as_slice() {
        [one] => Ok(*one),
        [] => Err(EmbedError::InvalidFile { path: path.to_path_buf(), reason: "no pooling mode is enabled".into() }),
        _ => Err(EmbedError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: "several pooling modes at once (concatenated pooling) are not supported".into(),
        }),
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EmbedError::Io { path: path.to_path_buf(), source })
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EmbedError::InvalidFile { path: path.to_path_buf(), reason: e.to_string() })
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    if path.is_file() { read_json(path).map(Some) } else { Ok(None) }
}
