//! The dot product of deterministic retrieval: one fixed order of floating-point operations,
//! whatever the CPU, the thread count or the index state, so that honest replicas scoring the
//! same committed vector over the same snapshot get the same bits.
//!
//! The order: eight lanes, lane `j` accumulating `a[i]·b[i]` for every `i ≡ j (mod 8)` in
//! increasing `i` (a multiply rounded to `f32`, then an add rounded to `f32`; never a fused
//! multiply-add, which rounds once and would give other bits), then the lanes summed as
//! `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`. The AVX path runs exactly these operations eight at a
//! time; the portable path runs them one at a time. IEEE 754 makes each operation exact to the
//! bit, so both paths agree on every input (a test checks it). `PRAG_PORTABLE_KERNELS=1` forces
//! the portable path.

use std::sync::OnceLock;

const LANES: usize = 8;

fn reduce(l: &[f32; LANES]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// The portable path: plain `f32` operations in the fixed order.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut lanes = [0f32; LANES];
    for i in 0..n {
        let p = a[i] * b[i];
        lanes[i % LANES] += p;
    }
    reduce(&lanes)
}

// The one use of `unsafe` here: AVX intrinsics, on a CPU that was checked to have them.
#[allow(unsafe_code)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn dot_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{_mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps};
    let n = a.len().min(b.len());
    let full = n / LANES * LANES;
    let mut lanes = [0f32; LANES];
    // SAFETY: every load reads 8 floats at `i < full ≤ len`, in bounds of both slices; the store
    // writes 8 floats into an 8-float array. AVX is enabled for this function and callers check
    // it is present at run time.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i < full {
            let p = _mm256_mul_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)));
            acc = _mm256_add_ps(acc, p);
            i += LANES;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
    }
    for i in full..n {
        let p = a[i] * b[i];
        lanes[i % LANES] += p;
    }
    reduce(&lanes)
}

/// Whether the portable path is forced (`PRAG_PORTABLE_KERNELS=1`) or the CPU has no AVX.
pub fn portable_forced() -> bool {
    static FORCED: OnceLock<bool> = OnceLock::new();
    *FORCED.get_or_init(|| {
        let env = std::env::var("PRAG_PORTABLE_KERNELS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        #[cfg(target_arch = "x86_64")]
        let simd = std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let simd = false;
        env || !simd
    })
}

/// The deterministic dot product, on the fastest path this CPU allows.
#[allow(unsafe_code)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if !portable_forced() {
        // SAFETY: `portable_forced` is false only when AVX was detected at run time.
        return unsafe { dot_avx(a, b) };
    }
    dot_portable(a, b)
}

/// The SIMD path, when this CPU has one (for the agreement test and the benchmark).
#[allow(unsafe_code)]
pub fn dot_simd(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX was just detected.
        return Some(unsafe { dot_avx(a, b) });
    }
    let _ = (a, b);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simd_and_portable_paths_agree_bit_for_bit() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Values over many magnitudes, both signs, so that rounding differs by order.
            let m = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            m * 10f32.powi(((x >> 8) % 7) as i32 - 3)
        };
        for len in [0usize, 1, 7, 8, 9, 383, 384, 385, 1024] {
            for _ in 0..50 {
                let a: Vec<f32> = (0..len).map(|_| next()).collect();
                let b: Vec<f32> = (0..len).map(|_| next()).collect();
                let p = dot_portable(&a, &b);
                if let Some(s) = dot_simd(&a, &b) {
                    assert_eq!(p.to_bits(), s.to_bits(), "len {len}: {p} vs {s}");
                }
                assert_eq!(dot(&a, &b).to_bits(), p.to_bits());
            }
        }
    }
}
