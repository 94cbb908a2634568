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
    /// The same over a packed batch (see `Bert::forward_packed`): `hidden` holds `dim` values per
    /// token, texts one after another, `offsets` where each text starts and then the total. A text
    /// with no tokens gets a zero vector.
    pub fn pool_packed_and_normalize(self, hidden: &[f32], dim: usize, offsets: &[usize]) -> Vec<Vec<f32>> {
        offsets
            .windows(2)
            .map(|w| {
                let rows = hidden.get(w[0] * dim..w[1] * dim).unwrap_or(&[]);
                let count = rows.len() / dim.max(1);
                let mut v = vec![0f32; dim];
                if count == 0 {
                    return v;
                }
                match self {
                    Pooling::Cls => v.copy_from_slice(&rows[..dim]),
                    Pooling::Mean | Pooling::MeanSqrtLen => {
                        for row in rows.chunks_exact(dim) {
                            v.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
                        }
                        let divisor = if self == Pooling::Mean { count as f32 } else { (count as f32).sqrt() };
                        v.iter_mut().for_each(|a| *a /= divisor);
                    }
                    Pooling::Max => {
                        v.copy_from_slice(&rows[..dim]);
                        for row in rows.chunks_exact(dim).skip(1) {
                            v.iter_mut().zip(row).for_each(|(a, &x)| *a = a.max(x));
                        }
                    }
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|a| *a /= norm);
                v
            })
            .collect()
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Packed pooling gives what padded pooling gives, for every kind of pooling.
    #[test]
    fn packed_pooling_matches_padded_pooling() {
        let (dim, lengths) = (5usize, [3usize, 1, 4]);
        let seq = 4;
        let value = |t: usize, r: usize, d: usize| ((t * 131 + r * 17 + d * 7) % 23) as f32 / 7.0 - 1.5;
        let mut padded = vec![0f32; lengths.len() * seq * dim];
        let mut mask = vec![0f32; lengths.len() * seq];
        let (mut packed, mut offsets) = (Vec::new(), vec![0]);
        for (t, &len) in lengths.iter().enumerate() {
            for r in 0..len {
                for d in 0..dim {
                    padded[(t * seq + r) * dim + d] = value(t, r, d);
                    packed.push(value(t, r, d));
                }
                mask[t * seq + r] = 1.0;
            }
            offsets.push(offsets.last().unwrap() + len);
        }
        let hidden = Tensor::from_vec(padded, (lengths.len(), seq, dim), &Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (lengths.len(), seq), &Device::Cpu).unwrap();
        for pooling in [Pooling::Mean, Pooling::Cls, Pooling::Max, Pooling::MeanSqrtLen] {
            let want = pooling.pool_and_normalize(&hidden, &mask).unwrap().to_vec2::<f32>().unwrap();
            let got = pooling.pool_packed_and_normalize(&packed, dim, &offsets);
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!((g - w).abs() < 1e-6, "{pooling}: {g} vs {w}");
            }
        }
        assert_eq!(Pooling::Mean.pool_packed_and_normalize(&[], dim, &[0, 0]), vec![vec![0f32; dim]]);
    }
}
