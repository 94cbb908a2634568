//! Turning per-token hidden states into one sentence vector, then L2-normalising it.

use candle_core::{D, DType, Tensor};

use crate::error::Result;

/// How token vectors become one sentence vector (`1_Pooling/config.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over real (unpadded) tokens.
    Mean,
    /// The first token's (`[CLS]`) vector.
    Cls,
    /// Element-wise max over real tokens.
    Max,
    /// Sum over real tokens divided by the square root of their count.
    MeanSqrtLen,
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        })
    }
}

impl Pooling {
    /// `hidden`: `[batch, seq, dim]` in any float dtype; `mask`: `[batch, seq]` f32 of 0/1.
    /// Returns `[batch, dim]` f32, L2-normalised. Pooling runs in f32 whatever the model's dtype.
    pub fn pool_and_normalize(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let hidden = hidden.to_dtype(DType::F32)?;
        let mask3 = mask.unsqueeze(D::Minus1)?; // [b, s, 1]
        let pooled = match self {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let summed = hidden.broadcast_mul(&mask3)?.sum(1)?; // [b, d]
                let counts = mask.sum_keepdim(1)?.clamp(1e-9f32, f32::MAX)?; // [b, 1]
                let divisor = if self == Pooling::Mean { counts } else { counts.sqrt()? };
                summed.broadcast_div(&divisor)?
            }
            Pooling::Max => {
                // Padding positions get a very negative value so they never win the max.
                let penalty = ((mask3.ones_like()? - &mask3)? * -1e9f64)?;
                hidden.broadcast_add(&penalty)?.max(1)?
            }
        };
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        Ok(pooled.broadcast_div(&norm)?)
    }
}
