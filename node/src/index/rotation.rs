//! The secret rotation applied to vectors before they leave the node for a remote index.
//!
//! An orthogonal matrix `Q` keeps every inner product and norm (`<Qu, Qv> = <u, v>`), so cosine
//! scores and rankings on the server equal those on the plain vectors, while the server never
//! holds the coordinates the public model produced. `Q` is drawn from the Haar distribution:
//! Gram–Schmidt (twice, for numerical orthogonality) of a Gaussian matrix whose entries come from
//! ChaCha20 seeded with a per-collection key derived from the node's master key. Same key, same
//! `Q`, on every start and every node version; another collection or node gets another `Q`.
//!
//! What this does and does not hide is spelled out in the README ("Remote index").

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

/// A secret orthogonal `dim × dim` matrix. Its entries are key material: zeroized on drop, never
/// printed.
pub struct SecretRotation {
    dim: usize,
    /// Row-major.
    rows: Zeroizing<Vec<f32>>,
}

impl std::fmt::Debug for SecretRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretRotation({}×{}, ..)", self.dim, self.dim)
    }
}

impl SecretRotation {
    /// Derives the rotation for `dim`-dimensional vectors from a 32-byte secret seed.
    pub fn derive(seed: &[u8; 32], dim: usize) -> Self {
        let mut rng = ChaCha20Rng::from_seed(*seed);
        // Columns of a Gaussian matrix, column-major so each column is contiguous.
        let mut cols = Zeroizing::new(vec![0f64; dim * dim]);
        let mut i = 0;
        while i < cols.len() {
            let (a, b) = gaussian_pair(&mut rng);
            cols[i] = a;
            if i + 1 < cols.len() {
                cols[i + 1] = b;
            }
            i += 2;
        }
        for j in 0..dim {
            // Twice-iterated modified Gram–Schmidt: orthogonal to working precision.
            for _pass in 0..2 {
                for p in 0..j {
                    let (done, rest) = cols.split_at_mut(j * dim);
                    let q = &done[p * dim..(p + 1) * dim];
                    let v = &mut rest[..dim];
                    let dot: f64 = q.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(q).for_each(|(x, qi)| *x -= dot * qi);
                }
            }
            let v = &mut cols[j * dim..(j + 1) * dim];
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            // A Gaussian column is in the span of the others with probability zero; guard anyway.
            let norm = if norm > 0.0 { norm } else { 1.0 };
            v.iter_mut().for_each(|x| *x /= norm);
        }
        // Rows of Qᵀ are the columns of Q: applying Qᵀ is as good a rotation as Q.
        let rows = Zeroizing::new(cols.iter().map(|&x| x as f32).collect::<Vec<f32>>());
        SecretRotation { dim, rows }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The rotated copy of `v`. A vector of another length is returned unchanged in length but is
    /// a caller bug; the index will reject its dimension.
    pub fn apply(&self, v: &[f32]) -> Vec<f32> {
        if v.len() != self.dim {
            return v.to_vec();
        }
        self.rows.chunks_exact(self.dim).map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum()).collect()
    }
}

/// Two independent standard normal samples (Box–Muller) from 53-bit uniforms.
fn gaussian_pair(rng: &mut ChaCha20Rng) -> (f64, f64) {
    let uniform = |rng: &mut ChaCha20Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(rng), uniform(rng));
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    (r * t.cos(), r * t.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn random_unit(rng: &mut ChaCha20Rng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| gaussian_pair(rng).0 as f32).collect();
        let n = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    #[test]
    fn keeps_inner_products_and_hides_coordinates() {
        let dim = 384;
        let r = SecretRotation::derive(&[7u8; 32], dim);
        let mut rng = ChaCha20Rng::from_seed([1u8; 32]);
        let vs: Vec<Vec<f32>> = (0..20).map(|_| random_unit(&mut rng, dim)).collect();
        let rotated: Vec<Vec<f32>> = vs.iter().map(|v| r.apply(v)).collect();
        for (a, ra) in vs.iter().zip(&rotated) {
            assert!((dot(ra, ra) - 1.0).abs() < 1e-5, "norm kept");
            // Not the identity, nor a sign flip: the coordinates move.
            assert!(dot(a, ra).abs() < 0.5, "rotated vector is far from the original");
            for (b, rb) in vs.iter().zip(&rotated) {
                assert!((dot(a, b) - dot(ra, rb)).abs() < 1e-5, "inner product kept");
            }
        }
    }

    #[test]
    fn same_seed_same_rotation_other_seed_other_rotation() {
        let v: Vec<f32> = (0..64).map(|i| (i as f32).sin()).collect();
        let a = SecretRotation::derive(&[3u8; 32], 64).apply(&v);
        let b = SecretRotation::derive(&[3u8; 32], 64).apply(&v);
        let c = SecretRotation::derive(&[4u8; 32], 64).apply(&v);
        assert_eq!(a, b);
        let diff: f32 = a.iter().zip(&c).map(|(x, y)| (x - y).abs()).sum();
        assert!(diff > 1.0, "a different key gives a different rotation");
    }
}
