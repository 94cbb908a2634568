//! The stack commitment, defined to match what the contract checks (atoma.md §6, §10), so an
//! honest attested stack settles. Hash: BLAKE2b with a 32-byte digest (Sui's `blake2b256`).
//!
//! - per request: `leaf = H(H(request) ‖ H(response))`;
//! - the stack root R: a binary Merkle tree over the leaves in request order, parent
//!   `H(left ‖ right)`, an odd last node promoted unchanged, one leaf its own root;
//! - participant i's slot: `H(u8(i) ‖ R)`, i = 0 for the serving node, 1..=K for the attesters
//!   in the order the contract requested them;
//! - the proof: `H(slot_0 ‖ … ‖ slot_K)`, K being the stack's extra-nodes count.
//!
//! Every participant submits the same proof and its own slot; the contract compares proofs
//! and, once all slots are in, hashes them and compares with the proof. A slot can only be
//! made by someone who knows R: copying the public proof is not enough.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

type Blake2b256 = Blake2b<U32>;

pub fn blake2b256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// One request's leaf.
pub fn request_leaf(request: &[u8], response: &[u8]) -> [u8; 32] {
    blake2b256(&[&blake2b256(&[request]), &blake2b256(&[response])])
}

/// The Merkle root of `leaves` (None when there are none).
pub fn merkle_root(leaves: &[[u8; 32]]) -> Option<[u8; 32]> {
    if leaves.is_empty() {
        return None;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = parent_level(&level);
    }
    level.first().copied()
}

/// The level above `level`: pairs hashed, an odd last node promoted unchanged.
pub fn parent_level(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => blake2b256(&[l, r]),
            [odd] => *odd,
            _ => [0; 32],
        })
        .collect()
}

/// Participant `index`'s slot.
pub fn slot(index: u8, root: &[u8; 32]) -> [u8; 32] {
    blake2b256(&[&[index], root])
}

/// The proof for a stack whose settlement has `extra_nodes` attester slots.
pub fn stack_proof(root: &[u8; 32], extra_nodes: u8) -> [u8; 32] {
    let slots: Vec<[u8; 32]> = (0..=extra_nodes).map(|i| slot(i, root)).collect();
    proof_of_slots(&slots)
}

/// `H(slot_0 ‖ … ‖ slot_K)`: the contract's final check.
pub fn proof_of_slots(slots: &[[u8; 32]]) -> [u8; 32] {
    let parts: Vec<&[u8]> = slots.iter().map(|s| s.as_slice()).collect();
    blake2b256(&parts)
}

/// Parses a hex field of exactly 32 bytes.
pub fn parse32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_promotes_the_odd_node_and_the_proof_covers_every_slot() {
        let l: Vec<[u8; 32]> = (0..3u8).map(|i| request_leaf(&[i], b"answer")).collect();
        assert_eq!(merkle_root(&l[..1]), Some(l[0]));
        let left = blake2b256(&[&l[0], &l[1]]);
        assert_eq!(merkle_root(&l), Some(blake2b256(&[&left, &l[2]])));
        assert_eq!(merkle_root(&[]), None);
        let r = merkle_root(&l).expect("root");
        let p = stack_proof(&r, 2);
        assert_eq!(p, proof_of_slots(&[slot(0, &r), slot(1, &r), slot(2, &r)]));
        assert_ne!(p, stack_proof(&r, 1));
        // Blake2b-256 of the empty string (RFC 7693 parameters, 32-byte digest).
        assert_eq!(hex::encode(blake2b256(&[])), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
        assert!(parse32(&hex::encode(r)).is_some() && parse32("00").is_none() && parse32(&"zz".repeat(32)).is_none());
    }
}
