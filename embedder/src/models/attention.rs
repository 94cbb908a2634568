//! Self-attention over a packed batch on the CPU, read straight from the fused QKV projection.
//!
//! The padded path (candle ops, used on other devices and dtypes) copies Q, K and V out of the
//! projection into per-head tensors, adds a `[batch, heads, seq, seq]` mask, runs softmax over the
//! padding too and copies the context back. Here the batch is *packed*: the rows of each text
//! follow each other with no padding (`offsets` says where each starts), and for each text and
//! head this kernel reads its Q, K and V columns in place, scores only the text's own tokens and
//! writes the context into the head's columns of the output. Per call it allocates nothing but
//! three scratch buffers (K transposed, V gathered, one row of scores), reused across texts and
//! heads.
//!
//! A text's result depends only on that text, never on what else is in the batch, so batching
//! cannot change an embedding (the embedder's agreement test holds that to 1e-5).
//!
//! Loops are written so that LLVM vectorises them with the CPU's widest instructions: the whole
//! kernel runs inside `pulp::Arch::dispatch`, compiled once per instruction set (AVX-512, AVX2+FMA,
//! scalar) and chosen at run time; `exp` is a polynomial because libm's is not vectorised.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, bail};

/// Scores computed per step of the query-key product (four AVX-512 or eight AVX2 registers).
const TILE: usize = 64;

/// The attention of a packed batch: the input is `[rows, 3·hidden]` (Q with 1/√d folded in, then
/// K, then V; heads side by side in each), the output `[rows, hidden]`.
#[derive(Debug, Clone)]
pub struct PackedAttention<'a> {
    /// Row where each text starts, then the total number of rows (`texts + 1` entries).
    pub offsets: &'a [usize],
    pub heads: usize,
    pub head_dim: usize,
}

impl CustomOp1 for PackedAttention<'_> {
    fn name(&self) -> &'static str {
        "packed-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((start, end))) => &v[start..end],
            _ => bail!("packed-attention: the input must be contiguous f32"),
        };
        let hidden = self.heads * self.head_dim;
        let rows = self.offsets.last().copied().unwrap_or(0);
        if self.head_dim == 0 || qkv.len() != rows * 3 * hidden || self.offsets.windows(2).any(|w| w[0] > w[1]) {
            bail!("packed-attention: {} values do not hold {rows} rows of Q, K and V of width {hidden}", qkv.len());
        }
        let mut out = vec![0f32; rows * hidden];
        let kernel = Kernel { qkv, out: &mut out, offsets: self.offsets, heads: self.heads, head_dim: self.head_dim };
        if fma_is_native() {
            pulp::Arch::new().dispatch(kernel.fused::<true>());
        } else {
            pulp::Arch::new().dispatch(kernel.fused::<false>());
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, hidden))))
    }
}

/// Whether `f32::mul_add` is one instruction here; where it is not it is a slow library call, and
/// the kernel multiplies and adds instead.
fn fma_is_native() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// `a·b + c`, fused where `FMA`.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// The kernel's arguments; run through `pulp::Arch::dispatch` so that its body (inlined into
/// `with_simd`) is compiled for the instruction set found at run time.
struct Kernel<'a> {
    qkv: &'a [f32],
    out: &'a mut [f32],
    offsets: &'a [usize],
    heads: usize,
    head_dim: usize,
}

impl<'a> Kernel<'a> {
    fn fused<const FMA: bool>(self) -> Fused<'a, FMA> {
        Fused(self)
    }
}

struct Fused<'a, const FMA: bool>(Kernel<'a>);

impl<const FMA: bool> pulp::WithSimd for Fused<'_, FMA> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Kernel { qkv, out, offsets, heads, head_dim } = self.0;
        attend::<S, FMA>(simd, qkv, out, offsets, heads, head_dim);
    }
}

/// Every text and head. Loops index slices rather than chain iterator adapters: inside the
/// dispatched function the adapters were left as calls and cost more than the arithmetic.
#[inline(always)]
fn attend<S: pulp::Simd, const FMA: bool>(
    simd: S,
    qkv: &[f32],
    out: &mut [f32],
    offsets: &[usize],
    heads: usize,
    hd: usize,
) {
    let hidden = heads * hd;
    let stride = 3 * hidden;
    let (mut kt, mut vh, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for w in offsets.windows(2) {
        let (start, len) = (w[0], w[1] - w[0]);
        let padded = len.next_multiple_of(TILE);
        kt.clear();
        kt.resize(hd * padded, 0f32);
        scores.clear();
        scores.resize(padded, 0f32);
        for h in 0..heads {
            // This head's K, transposed (kt[d][j] = K[j][d]), so a query's scores are a sum of
            // contiguous rows; columns past `len` stay zero. Its V, gathered into contiguous rows.
            vh.clear();
            for j in 0..len {
                let k = &qkv[(start + j) * stride + hidden + h * hd..][..hd];
                for d in 0..hd {
                    kt[d * padded + j] = k[d];
                }
                vh.extend_from_slice(&qkv[(start + j) * stride + 2 * hidden + h * hd..][..hd]);
            }
            for i in 0..len {
                let q = &qkv[(start + i) * stride + h * hd..][..hd];
                query_key_scores::<FMA>(q, &kt, padded, &mut scores);
                softmax_in_place(&mut scores[..len]);
                let (p, ctx) = (&scores[..len], &mut out[(start + i) * hidden + h * hd..][..hd]);
                // The common head widths get the context row in registers.
                match hd {
                    32 => context_row::<S, 32, FMA>(simd, p, &vh, ctx),
                    64 => context_row::<S, 64, FMA>(simd, p, &vh, ctx),
                    _ => context_row_in_memory::<FMA>(p, &vh, ctx),
                }
            }
        }
    }
}

/// `ctx = Σ_j p[j]·V[j]` over `vh`'s contiguous rows of `HD`, the row kept in vector registers
/// (explicit vectors: left to itself LLVM kept it on the stack).
#[inline(always)]
fn context_row<S: pulp::Simd, const HD: usize, const FMA: bool>(simd: S, p: &[f32], vh: &[f32], ctx: &mut [f32]) {
    const MAX_VECTORS: usize = 8;
    let lanes = S::F32_LANES;
    if !HD.is_multiple_of(lanes) || HD / lanes > MAX_VECTORS || vh.len() < p.len() * HD || ctx.len() != HD {
        return context_row_in_memory::<FMA>(p, vh, ctx);
    }
    let n = HD / lanes;
    let mut acc = [simd.splat_f32s(0.0); MAX_VECTORS];
    for (j, &pj) in p.iter().enumerate() {
        let pv = simd.splat_f32s(pj);
        let (row, _) = S::as_simd_f32s(&vh[j * HD..j * HD + HD]);
        for t in 0..n {
            acc[t] = if FMA {
                simd.mul_add_f32s(pv, row[t], acc[t])
            } else {
                simd.add_f32s(simd.mul_f32s(pv, row[t]), acc[t])
            };
        }
    }
    let (out, _) = S::as_mut_simd_f32s(ctx);
    for t in 0..n {
        out[t] = acc[t];
    }
}

/// `ctx = Σ_j p[j]·V[j]` for any head width (`ctx.len()`), the row in memory.
#[inline(always)]
fn context_row_in_memory<const FMA: bool>(p: &[f32], vh: &[f32], ctx: &mut [f32]) {
    let hd = ctx.len();
    ctx.fill(0.0);
    for (j, &pj) in p.iter().enumerate() {
        let v = &vh[j * hd..j * hd + hd];
        for d in 0..hd {
            ctx[d] = madd::<FMA>(pj, v[d], ctx[d]);
        }
    }
}

/// `scores[j] = Σ_d q[d]·kt[d][j]` for every column of `kt` (`q.len()` rows of `padded`, a
/// multiple of `TILE`), one tile of scores in registers at a time.
#[inline(always)]
fn query_key_scores<const FMA: bool>(q: &[f32], kt: &[f32], padded: usize, scores: &mut [f32]) {
    for tile in 0..padded / TILE {
        let mut acc = [0f32; TILE];
        for (d, &qd) in q.iter().enumerate() {
            if let Some(row) = kt[d * padded + tile * TILE..].first_chunk::<TILE>() {
                for t in 0..TILE {
                    acc[t] = madd::<FMA>(qd, row[t], acc[t]);
                }
            }
        }
        if let Some(out) = scores[tile * TILE..].first_chunk_mut::<TILE>() {
            *out = acc;
        }
    }
}

/// Lanes of the partial maxima and sums (an AVX-512 register of f32).
const LANES: usize = 16;

/// `x ← softmax(x)`, with partial maxima and sums kept per lane so the loops vectorise.
#[inline(always)]
pub(crate) fn softmax_in_place(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let full = n - n % LANES;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for base in (0..full).step_by(LANES) {
        if let Some(c) = x[base..].first_chunk::<LANES>() {
            for t in 0..LANES {
                lanes[t] = if c[t] > lanes[t] { c[t] } else { lanes[t] };
            }
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &v in lanes.iter().chain(&x[full..]) {
        max = if v > max { v } else { max };
    }
    let mut sums = [0f32; LANES];
    for base in (0..full).step_by(LANES) {
        if let Some(c) = x[base..].first_chunk_mut::<LANES>() {
            for t in 0..LANES {
                c[t] = exp(c[t] - max);
                sums[t] += c[t];
            }
        }
    }
    let mut sum = 0f32;
    for v in &mut x[full..] {
        *v = exp(*v - max);
        sum += *v;
    }
    for s in sums {
        sum += s;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `eˣ` to about 2e-7 relative error for x ≤ 0 (and any x up to 88): `2ᵏ · eʳ` with
/// `k = ⌊x·log₂e⌉` and `r = x − k·ln 2` (in two parts, Cody–Waite), `eʳ` by its Taylor polynomial
/// of degree 6 on |r| ≤ ln2/2. Below −87.3 it returns ~1e-38 rather than a subnormal or 0, which
/// a softmax cannot tell apart.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let k = (x * LOG2E + 0.5).floor();
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
    }

    #[test]
    fn softmax_matches_the_definition() {
        for len in [1usize, 2, 15, 16, 17, 63, 64, 65, 207] {
            let mut x: Vec<f32> = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let total: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
            let want: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp() / total).collect();
            softmax_in_place(&mut x);
            for (g, w) in x.iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-6, "len {len}: {g} vs {w}");
            }
        }
    }

    /// Plain attention for one text, in f64, from the same packed layout.
    fn reference(qkv: &[f32], start: usize, len: usize, heads: usize, hd: usize) -> Vec<f64> {
        let hidden = heads * hd;
        let at =
            |row: usize, part: usize, h: usize, d: usize| qkv[row * 3 * hidden + part * hidden + h * hd + d] as f64;
        let mut out = vec![0f64; len * hidden];
        for h in 0..heads {
            for i in 0..len {
                let s: Vec<f64> =
                    (0..len).map(|j| (0..hd).map(|d| at(start + i, 0, h, d) * at(start + j, 1, h, d)).sum()).collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    out[i * hidden + h * hd + d] = (0..len).map(|j| e[j] / z * at(start + j, 2, h, d)).sum();
                }
            }
        }
        out
    }

    fn run(lengths: &[usize], heads: usize, hd: usize) {
        let mut offsets = vec![0];
        for l in lengths {
            offsets.push(offsets.last().unwrap() + l);
        }
        let rows = *offsets.last().unwrap();
        let qkv: Vec<f32> =
            (0..rows * 3 * heads * hd).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0).collect();
        let t = candle_core::Tensor::from_vec(qkv.clone(), (rows, 3 * heads * hd), &candle_core::Device::Cpu).unwrap();
        let out = t
            .apply_op1_no_bwd(&PackedAttention { offsets: &offsets, heads, head_dim: hd })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (n, w) in offsets.windows(2).enumerate() {
            let want = reference(&qkv, w[0], w[1] - w[0], heads, hd);
            let got = &out[w[0] * heads * hd..w[1] * heads * hd];
            for (g, r) in got.iter().zip(&want) {
                assert!((*g as f64 - r).abs() < 2e-5, "text {n} (hd {hd}): {g} vs {r}");
            }
        }
    }

    #[test]
    fn matches_plain_attention_for_every_text_of_a_packed_batch() {
        run(&[5, 1, 70, 33], 3, 32);
        run(&[2, 65], 2, 64);
        run(&[9, 4], 2, 12);
    }

    #[test]
    fn a_text_gets_the_same_values_alone_and_in_a_batch() {
        let (heads, hd, len) = (2, 32, 40);
        let qkv: Vec<f32> = (0..(len + 7) * 3 * heads * hd).map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5).collect();
        let dev = candle_core::Device::Cpu;
        let first = len * 3 * heads * hd;
        let alone = candle_core::Tensor::from_vec(qkv[..first].to_vec(), (len, 3 * heads * hd), &dev).unwrap();
        let both = candle_core::Tensor::from_vec(qkv, (len + 7, 3 * heads * hd), &dev).unwrap();
        let a = alone.apply_op1_no_bwd(&PackedAttention { offsets: &[0, len], heads, head_dim: hd }).unwrap();
        let b = both.apply_op1_no_bwd(&PackedAttention { offsets: &[0, len, len + 7], heads, head_dim: hd }).unwrap();
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a[..], b[..a.len()]);
    }

    #[test]
    fn refuses_inputs_that_do_not_fit() {
        let t = candle_core::Tensor::zeros((4, 6), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        assert!(t.apply_op1_no_bwd(&PackedAttention { offsets: &[0, 5], heads: 1, head_dim: 2 }).is_err());
        assert!(t.apply_op1_no_bwd(&PackedAttention { offsets: &[0, 3, 2, 4], heads: 1, head_dim: 2 }).is_err());
    }
}
