//! Linear layers in 8-bit integers on the CPU (`--dtype int8`).
//!
//! Weights are quantized once at load, symmetric per output channel (`w ≈ sw[j]·q`, q in
//! −127..=127); activations per row at each call, asymmetric (`x ≈ sx[r]·(q − zp[r])`, q in 0..=255),
//! which is what `VPDPBUSD` multiplies: unsigned bytes by signed bytes, four products summed into
//! each 32-bit lane. So
//!
//! `y[r][j] = sx[r]·sw[j]·(Σₖ qx[r][k]·qw[j][k] − zp[r]·Σₖ qw[j][k])`
//!
//! with the column sums `Σₖ qw[j][k]` kept from load. The integer sum is exact (|products| ≤
//! 255·127, so even 1536 of them fit in 32 bits without saturation), so every kernel — AVX-512 VNNI
//! or portable — gives the same bits, and a text's result depends on that text alone.
//!
//! Per-row activation scales (ONNX Runtime's dynamic quantization uses one per tensor) keep one
//! long or outlying text from coarsening every other text in the batch.
//!
//! Layout of the packed weights: panels of 16 output columns; in a panel, for each group of four
//! inputs, 16 lanes × 4 bytes = one 64-byte vector, so the kernel's inner step is one load per
//! panel and one 4-byte broadcast per row. Inputs are padded to a multiple of four with zero
//! weights, so whatever sits in an activation row's padding contributes nothing.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, bail};

/// Output columns per packed panel (one 512-bit vector of i32 lanes).
const LANES: usize = 16;
/// Rows per kernel call (× [`PANELS`] panels: 24 accumulators in 32 registers).
const ROWS: usize = 6;
/// Panels per kernel call.
const PANELS: usize = 4;

/// A weight matrix `[outputs, inputs]` quantized and packed for [`QuantizedLinear`].
#[derive(Debug, Clone)]
pub struct QuantizedWeight {
    outputs: usize,
    inputs: usize,
    /// `inputs` rounded up to a multiple of 4.
    padded_inputs: usize,
    /// `panels × padded_inputs/4 × 16 × 4` bytes.
    packed: Vec<i8>,
    /// Per output column, `outputs` rounded up to a multiple of 16 (zeros past the end).
    scales: Vec<f32>,
    column_sums: Vec<i32>,
}

impl QuantizedWeight {
    /// Quantizes a row-major `[outputs, inputs]` f32 matrix (a linear layer's `weight`).
    pub fn quantize(weight: &[f32], outputs: usize, inputs: usize) -> Result<Self, String> {
        if outputs == 0 || inputs == 0 || weight.len() != outputs * inputs {
            return Err(format!("{} weights are not a {outputs}×{inputs} matrix", weight.len()));
        }
        if let Some(bad) = weight.iter().find(|w| !w.is_finite()) {
            return Err(format!("weight {bad} is not finite"));
        }
        let padded_inputs = inputs.div_ceil(4) * 4;
        let panels = outputs.div_ceil(LANES);
        let mut scales = vec![0f32; panels * LANES];
        let mut column_sums = vec![0i32; panels * LANES];
        let mut quantized = vec![0i8; outputs * padded_inputs];
        for (j, row) in weight.chunks_exact(inputs).enumerate() {
            let amax = row.iter().fold(0f32, |m, w| m.max(w.abs()));
            let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
            let q = &mut quantized[j * padded_inputs..j * padded_inputs + inputs];
            for (q, &w) in q.iter_mut().zip(row) {
                *q = (w / scale).round().clamp(-127.0, 127.0) as i8;
            }
            scales[j] = scale;
            column_sums[j] = q.iter().map(|&q| i32::from(q)).sum();
        }
        let groups = padded_inputs / 4;
        let mut packed = vec![0i8; panels * groups * LANES * 4];
        for j in 0..outputs {
            let (panel, lane) = (j / LANES, j % LANES);
            for g in 0..groups {
                let at = ((panel * groups + g) * LANES + lane) * 4;
                packed[at..at + 4]
                    .copy_from_slice(&quantized[j * padded_inputs + g * 4..j * padded_inputs + g * 4 + 4]);
            }
        }
        Ok(QuantizedWeight { outputs, inputs, padded_inputs, packed, scales, column_sums })
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    fn groups(&self) -> usize {
        self.padded_inputs / 4
    }

    fn panels(&self) -> usize {
        self.outputs.div_ceil(LANES)
    }

    /// `x @ Wᵀ` for row-major `x` (`rows × inputs`); returns `rows × outputs`.
    pub fn matmul(&self, x: &[f32]) -> Result<Vec<f32>, String> {
        if x.len() % self.inputs != 0 {
            return Err(format!("{} activations are not rows of {}", x.len(), self.inputs));
        }
        let rows = QuantizedRows::quantize(x, self.inputs, self.padded_inputs);
        let mut out = vec![0f32; rows.rows * self.outputs];
        self.multiply(&rows, &mut out, vnni_available());
        Ok(out)
    }

    /// The integer product and its scaling, with the AVX-512 VNNI kernel where `vnni`.
    fn multiply(&self, x: &QuantizedRows, out: &mut [f32], vnni: bool) {
        #[cfg(target_arch = "x86_64")]
        if vnni {
            vnni::multiply(self, x, out);
            return;
        }
        let _ = vnni;
        self.multiply_portable(x, out);
    }

    /// Plain loops over the same packed layout, for CPUs without VNNI and as the reference the
    /// vector kernel must equal bit for bit.
    fn multiply_portable(&self, x: &QuantizedRows, out: &mut [f32]) {
        let groups = self.groups();
        let mut acc = [0i32; LANES];
        for r in 0..x.rows {
            let row = &x.values[r * self.padded_inputs..(r + 1) * self.padded_inputs];
            for panel in 0..self.panels() {
                acc.fill(0);
                let weights = &self.packed[panel * groups * LANES * 4..(panel + 1) * groups * LANES * 4];
                for (g, w) in weights.chunks_exact(LANES * 4).enumerate() {
                    let a = &row[g * 4..g * 4 + 4];
                    for (lane, w) in w.chunks_exact(4).enumerate() {
                        acc[lane] += (0..4).map(|b| i32::from(a[b]) * i32::from(w[b])).sum::<i32>();
                    }
                }
                let first = panel * LANES;
                for (lane, &sum) in acc.iter().enumerate().take(self.outputs.saturating_sub(first).min(LANES)) {
                    let j = first + lane;
                    out[r * self.outputs + j] = x.dequantize(r, sum, self.column_sums[j], self.scales[j]);
                }
            }
        }
    }
}

/// Activations quantized per row, rows padded to the weight's padded width.
struct QuantizedRows {
    rows: usize,
    values: Vec<u8>,
    zero_points: Vec<i32>,
    scales: Vec<f32>,
}

impl QuantizedRows {
    fn quantize(x: &[f32], inputs: usize, padded_inputs: usize) -> Self {
        let rows = x.len() / inputs;
        let mut values = vec![0u8; rows * padded_inputs];
        let mut zero_points = Vec::with_capacity(rows);
        let mut scales = Vec::with_capacity(rows);
        for (r, row) in x.chunks_exact(inputs).enumerate() {
            // The range always holds 0, so 0 (and ReLU/GELU's many near-zeros) is exact.
            let (lo, hi) = row.iter().fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let range = hi - lo;
            let scale = if range > 0.0 && range.is_finite() { range / 255.0 } else { 1.0 };
            let zero = (-lo / scale).round().clamp(0.0, 255.0);
            let inverse = 1.0 / scale;
            for (q, &v) in values[r * padded_inputs..r * padded_inputs + inputs].iter_mut().zip(row) {
                // +0.5 then truncation rounds (the value is ≥ 0 after the clamp); NaN becomes 0.
                *q = (v * inverse + zero + 0.5).clamp(0.0, 255.0) as u8;
            }
            zero_points.push(zero as i32);
            scales.push(scale);
        }
        QuantizedRows { rows, values, zero_points, scales }
    }

    /// The f32 value of row `r`'s integer sum in a column with weight sum `column_sum` and scale
    /// `weight_scale`. The vector kernel does exactly these operations in this order.
    #[inline(always)]
    fn dequantize(&self, r: usize, sum: i32, column_sum: i32, weight_scale: f32) -> f32 {
        let centred = sum.wrapping_sub(self.zero_points[r].wrapping_mul(column_sum));
        centred as f32 * (self.scales[r] * weight_scale)
    }
}

/// Whether this CPU runs the AVX-512 VNNI kernel.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod vnni {
    use std::arch::x86_64::*;

    use super::{LANES, PANELS, QuantizedRows, QuantizedWeight, ROWS};

    /// Every block of 6 rows × 4 panels. Only called where `vnni_available()`. Edges are
    /// computed into padding (rows of zeros, panels of zero weights) so that one kernel shape,
    /// with every accumulator in a register, covers everything; the padding is then dropped.
    pub(super) fn multiply(w: &QuantizedWeight, x: &QuantizedRows, out: &mut [f32]) {
        let rows = x.rows.div_ceil(ROWS) * ROWS;
        let groups_of_panels = w.panels().div_ceil(PANELS);
        let columns = groups_of_panels * PANELS * LANES;
        let exact = columns == w.outputs && rows == x.rows;
        let padded;
        let x = if rows == x.rows {
            x
        } else {
            padded = x.padded_to(rows, w.padded_inputs);
            &padded
        };
        let packed = w.packed_to(groups_of_panels * PANELS);
        let mut wide = if exact { None } else { Some(vec![0f32; rows * columns]) };
        let target: &mut [f32] = match wide.as_mut() {
            Some(v) => v,
            None => out,
        };
        assert_eq!(target.len(), rows * columns);
        assert_eq!(x.values.len(), rows * w.padded_inputs);
        assert_eq!(packed.weights.len(), groups_of_panels * PANELS * w.groups() * LANES * 4);
        assert!(packed.scales.len() == columns && packed.column_sums.len() == columns);
        for r0 in (0..rows).step_by(ROWS) {
            for p0 in (0..groups_of_panels * PANELS).step_by(PANELS) {
                // SAFETY: the CPU has AVX-512 F/BW/VNNI (the caller checked `vnni_available`),
                // and the asserts above with these loops' bounds keep every access in range.
                unsafe { tile(&packed, w.groups(), w.padded_inputs, x, target, columns, r0, p0) }
            }
        }
        if let Some(wide) = wide {
            for (dst, src) in out.chunks_exact_mut(w.outputs).zip(wide.chunks_exact(columns)) {
                dst.copy_from_slice(&src[..w.outputs]);
            }
        }
    }

    /// Rows `r0..r0+6` × panels `p0..p0+4`: 24 accumulators in registers across the whole input,
    /// then scaled and stored.
    ///
    /// SAFETY (caller): AVX-512 F/BW/VNNI present; `r0 + 6 ≤ x.rows`, `p0 + 4 ≤` the panels of
    /// `packed`, `x.values` holds `x.rows × padded_inputs` bytes, `packed` `groups·64` bytes per
    /// panel and 16 scales and sums per panel, `out` `x.rows × columns` floats with
    /// `columns = panels·16`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        packed: &Packed<'_>,
        groups: usize,
        padded_inputs: usize,
        x: &QuantizedRows,
        out: &mut [f32],
        columns: usize,
        r0: usize,
        p0: usize,
    ) {
        let panel_bytes = groups * LANES * 4;
        let a = x.values.as_ptr();
        let b = packed.weights.as_ptr();
        let mut acc = [_mm512_setzero_si512(); ROWS * PANELS];
        for g in 0..groups {
            // SAFETY: see the function's contract (all four reads are in panels p0..p0+4).
            let (w0, w1, w2, w3) = unsafe {
                let at = b.add(p0 * panel_bytes + g * LANES * 4);
                (
                    _mm512_loadu_si512(at.cast()),
                    _mm512_loadu_si512(at.add(panel_bytes).cast()),
                    _mm512_loadu_si512(at.add(2 * panel_bytes).cast()),
                    _mm512_loadu_si512(at.add(3 * panel_bytes).cast()),
                )
            };
            macro_rules! row {
                ($r:literal) => {{
                    // SAFETY: row r0+$r < x.rows, bytes g·4..g·4+4 < padded_inputs.
                    let four = unsafe { a.add((r0 + $r) * padded_inputs + g * 4).cast::<i32>().read_unaligned() };
                    let v = _mm512_set1_epi32(four);
                    acc[$r * 4] = _mm512_dpbusd_epi32(acc[$r * 4], v, w0);
                    acc[$r * 4 + 1] = _mm512_dpbusd_epi32(acc[$r * 4 + 1], v, w1);
                    acc[$r * 4 + 2] = _mm512_dpbusd_epi32(acc[$r * 4 + 2], v, w2);
                    acc[$r * 4 + 3] = _mm512_dpbusd_epi32(acc[$r * 4 + 3], v, w3);
                }};
            }
            row!(0);
            row!(1);
            row!(2);
            row!(3);
            row!(4);
            row!(5);
        }
        let o = out.as_mut_ptr();
        for r in 0..ROWS {
            let row = r0 + r;
            let zero = _mm512_set1_epi32(x.zero_points[row]);
            let row_scale = _mm512_set1_ps(x.scales[row]);
            for p in 0..PANELS {
                let first = (p0 + p) * LANES;
                // SAFETY: `first + 16 ≤ columns`, the length of `scales` and `column_sums`.
                let (column_sums, scales) = unsafe {
                    (
                        _mm512_loadu_si512(packed.column_sums.as_ptr().add(first).cast()),
                        _mm512_loadu_ps(packed.scales.as_ptr().add(first)),
                    )
                };
                // Same operations, same order as `QuantizedRows::dequantize`.
                let centred = _mm512_sub_epi32(acc[r * 4 + p], _mm512_mullo_epi32(zero, column_sums));
                let value = _mm512_mul_ps(_mm512_cvtepi32_ps(centred), _mm512_mul_ps(row_scale, scales));
                // SAFETY: row < x.rows and first + 16 ≤ columns.
                unsafe { _mm512_storeu_ps(o.add(row * columns + first), value) };
            }
        }
    }

    /// The weight's panels, extended with zero panels to a multiple of four when needed.
    pub(super) struct Packed<'a> {
        weights: std::borrow::Cow<'a, [i8]>,
        scales: std::borrow::Cow<'a, [f32]>,
        column_sums: std::borrow::Cow<'a, [i32]>,
    }

    impl QuantizedWeight {
        fn packed_to(&self, panels: usize) -> Packed<'_> {
            use std::borrow::Cow;
            if panels == self.panels() {
                return Packed {
                    weights: Cow::Borrowed(&self.packed),
                    scales: Cow::Borrowed(&self.scales),
                    column_sums: Cow::Borrowed(&self.column_sums),
                };
            }
            let mut weights = self.packed.clone();
            weights.resize(panels * self.groups() * LANES * 4, 0);
            let mut scales = self.scales.clone();
            scales.resize(panels * LANES, 0.0);
            let mut column_sums = self.column_sums.clone();
            column_sums.resize(panels * LANES, 0);
            Packed { weights: Cow::Owned(weights), scales: Cow::Owned(scales), column_sums: Cow::Owned(column_sums) }
        }
    }

    impl QuantizedRows {
        fn padded_to(&self, rows: usize, padded_inputs: usize) -> QuantizedRows {
            let mut values = self.values.clone();
            values.resize(rows * padded_inputs, 0);
            let mut zero_points = self.zero_points.clone();
            zero_points.resize(rows, 0);
            let mut scales = self.scales.clone();
            scales.resize(rows, 0.0);
            QuantizedRows { rows, values, zero_points, scales }
        }
    }
}

/// `x @ Wᵀ` as a candle op on a contiguous f32 `[rows, inputs]` tensor.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedLinear<'a>(pub &'a QuantizedWeight);

impl CustomOp1 for QuantizedLinear<'_> {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((start, end))) => &v[start..end],
            _ => bail!("int8-linear: the input must be contiguous f32"),
        };
        let (rows, inputs) = l.shape().dims2()?;
        if inputs != self.0.inputs {
            bail!("int8-linear: input width {inputs}, the weight takes {}", self.0.inputs);
        }
        let out = self.0.matmul(x).map_err(|e| candle_core::Error::Msg(format!("int8-linear: {e}")))?;
        Ok((CpuStorage::F32(out), Shape::from((rows, self.0.outputs))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in about ±1 with some outliers, like trained weights and activations.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                if i % 97 == 0 { u * 8.0 } else { u }
            })
            .collect()
    }

    fn reference(w: &[f32], x: &[f32], inputs: usize) -> Vec<f32> {
        x.chunks_exact(inputs)
            .flat_map(|row| {
                w.chunks_exact(inputs)
                    .map(move |col| row.iter().zip(col).map(|(a, b)| f64::from(a * b)).sum::<f64>() as f32)
            })
            .collect()
    }

    #[test]
    fn close_to_f32_for_every_edge_of_the_tiling() {
        // Rows and outputs that leave partial row blocks, partial panel groups and a partial
        // panel; inputs that are not a multiple of four.
        for (rows, outputs, inputs) in [(1, 16, 4), (7, 40, 33), (13, 1152, 384), (6, 64, 1536), (5, 3, 2)] {
            let w = values(outputs * inputs, 1);
            let x = values(rows * inputs, 2);
            let q = QuantizedWeight::quantize(&w, outputs, inputs).unwrap();
            let got = q.matmul(&x).unwrap();
            let want = reference(&w, &x, inputs);
            assert_eq!(got.len(), want.len());
            let norm = want.iter().map(|v| v * v).sum::<f32>().sqrt();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            // About 2.5% here: the 8× outliers widen each row's step. A wrong index or lane is ~100%.
            assert!(err / norm < 0.05, "{rows}×{outputs}×{inputs}: relative error {}", err / norm);
        }
    }

    #[test]
    fn vector_kernel_equals_portable_bit_for_bit() {
        if !vnni_available() {
            return;
        }
        for (rows, outputs, inputs) in [(1, 16, 4), (7, 40, 33), (19, 1152, 384), (11, 384, 1536), (5, 3, 2)] {
            let q = QuantizedWeight::quantize(&values(outputs * inputs, 3), outputs, inputs).unwrap();
            let x = QuantizedRows::quantize(&values(rows * inputs, 4), inputs, q.padded_inputs);
            let (mut vector, mut portable) = (vec![0f32; rows * outputs], vec![0f32; rows * outputs]);
            q.multiply(&x, &mut vector, true);
            q.multiply_portable(&x, &mut portable);
            assert!(vector.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows}×{outputs}×{inputs}");
        }
    }

    #[test]
    fn a_row_does_not_depend_on_the_others() {
        let (outputs, inputs) = (48, 64);
        let q = QuantizedWeight::quantize(&values(outputs * inputs, 5), outputs, inputs).unwrap();
        let batch = values(9 * inputs, 6);
        let together = q.matmul(&batch).unwrap();
        for (r, row) in batch.chunks_exact(inputs).enumerate() {
            let alone = q.matmul(row).unwrap();
            assert_eq!(alone, together[r * outputs..(r + 1) * outputs]);
        }
    }

    #[test]
    fn zero_rows_and_zero_weights_give_zeros() {
        let q = QuantizedWeight::quantize(&[0.0; 32], 4, 8).unwrap();
        assert_eq!(q.matmul(&values(16, 7)).unwrap(), vec![0.0; 8]);
        let q = QuantizedWeight::quantize(&values(32, 8), 4, 8).unwrap();
        assert_eq!(q.matmul(&[0.0; 8]).unwrap(), vec![0.0; 4]);
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        assert!(QuantizedWeight::quantize(&[1.0; 5], 2, 3).is_err());
        assert!(QuantizedWeight::quantize(&[], 0, 3).is_err());
        assert!(QuantizedWeight::quantize(&[f32::NAN, 1.0], 1, 2).is_err());
        let q = QuantizedWeight::quantize(&[1.0; 6], 2, 3).unwrap();
        assert!(q.matmul(&[1.0; 4]).is_err());
        assert!(q.matmul(&[]).unwrap().is_empty());
    }

    #[test]
    fn non_finite_activations_do_not_panic() {
        let q = QuantizedWeight::quantize(&values(32, 9), 4, 8).unwrap();
        let mut x = values(8, 10);
        x[3] = f32::NAN;
        x[5] = f32::INFINITY;
        assert_eq!(q.matmul(&x).unwrap().len(), 4);
    }
}
