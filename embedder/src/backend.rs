//! The model behind an interface: a padded batch of token ids in, one normalised vector per text out.
//! Workers in [`crate::runtime`] own a backend and know nothing about which one it is.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::device::device_name;
use crate::error::{EmbedError, Result};
use crate::model_dir::{ModelDir, WEIGHTS, read_file};
use crate::models::bert::Bert;
use crate::pooling::Pooling;

/// Token ids of several texts, padded to the longest one.
#[derive(Debug, Clone)]
pub struct PaddedBatch {
    pub batch: usize,
    pub seq: usize,
    /// `batch × seq` token ids, row-major; padding holds the pad id.
    pub ids: Vec<u32>,
    /// `batch × seq`, 1.0 for real tokens, 0.0 for padding.
    pub mask: Vec<f32>,
}

impl PaddedBatch {
    pub fn from_sequences(seqs: &[&[u32]], pad_id: u32) -> Self {
        let batch = seqs.len();
        let seq = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id; batch * seq];
        let mut mask = vec![0f32; batch * seq];
        for (row, s) in seqs.iter().enumerate() {
            ids[row * seq..row * seq + s.len()].copy_from_slice(s);
            mask[row * seq..row * seq + s.len()].fill(1.0);
        }
        PaddedBatch { batch, seq, ids, mask }
    }

    /// The batch packed: every text's real tokens one text after another, and the row where each
    /// text starts followed by the total (`batch + 1` entries). A text's tokens are the prefix of
    /// its row that the mask marks real.
    pub fn packed(&self) -> (Vec<u32>, Vec<usize>) {
        let mut ids = Vec::with_capacity(self.ids.len());
        let mut offsets = Vec::with_capacity(self.batch + 1);
        offsets.push(0);
        for (row, mask) in self.ids.chunks_exact(self.seq.max(1)).zip(self.mask.chunks_exact(self.seq.max(1))) {
            let len = mask.iter().take_while(|&&m| m > 0.5).count();
            ids.extend_from_slice(&row[..len]);
            offsets.push(ids.len());
        }
        (ids, offsets)
    }

    /// Real (unpadded) tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m > 0.5).count()
    }
}

/// Something that turns padded batches into sentence embeddings.
pub trait Backend: Send + Sync {
    fn embed(&self, batch: &PaddedBatch) -> Result<Vec<Vec<f32>>>;
    fn device(&self) -> String;
    fn dtype(&self) -> String;
    fn dimension(&self) -> usize;
}

/// candle BERT on CPU or CUDA.
pub struct CandleBackend {
    model: Bert,
    pooling: Pooling,
    dimension: usize,
}

impl CandleBackend {
    /// `int8`: the linear layers in 8-bit integers (f32 on the CPU only).
    pub fn load(model_dir: &ModelDir, device: &Device, dtype: DType, int8: bool) -> Result<Self> {
        let path = model_dir.path(WEIGHTS);
        let bytes = read_file(&path)?;
        let invalid = |reason: String| EmbedError::InvalidFile { path: path.clone(), reason };
        // Load in f32 and convert on the device: safetensors files are usually f32 and candle
        // converts while copying.
        let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, device)
            .map_err(|e| invalid(format!("not a readable safetensors file: {e}")))?;
        let model = Bert::load(vb, &model_dir.config, int8)
            .map_err(|e| invalid(format!("weights do not match config.json: {e}")))?;
        Ok(CandleBackend { model, pooling: model_dir.pooling, dimension: model_dir.config.hidden_size })
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }
}

impl Backend for CandleBackend {
    fn embed(&self, b: &PaddedBatch) -> Result<Vec<Vec<f32>>> {
        let rows = if self.model.packs() {
            let (ids, offsets) = b.packed();
            let hidden = self.model.forward_packed(&ids, &offsets)?.flatten_all()?.to_vec1::<f32>()?;
            self.pooling.pool_packed_and_normalize(&hidden, self.dimension, &offsets)
        } else {
            let device = self.model.device();
            let ids = Tensor::from_slice(&b.ids, (b.batch, b.seq), device)?;
            let mask = Tensor::from_slice(&b.mask, (b.batch, b.seq), device)?;
            let hidden = self.model.forward(&ids, &mask)?;
            self.pooling.pool_and_normalize(&hidden, &mask)?.to_vec2::<f32>()?
        };
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            return Err(EmbedError::Compute(format!(
                "the model produced a non-finite value in {} on {}",
                self.dtype(),
                self.device()
            )));
        }
        Ok(rows)
    }

    fn device(&self) -> String {
        device_name(self.model.device())
    }

    fn dtype(&self) -> String {
        if self.model.is_int8() {
            return "int8".into();
        }
        format!("{:?}", self.model.dtype()).to_lowercase()
    }

    fn dimension(&self) -> usize {
        self.dimension
    }
}
