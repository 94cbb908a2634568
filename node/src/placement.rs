//! Where shards live: documents map to shards by their (keyed) id; each shard lives on the `R`
//! nodes with the highest rendezvous score among the admitted nodes. Rendezvous (highest random
//! weight) hashing moves only the shards whose owners joined or left.

use sha2::{Digest, Sha256};

/// The shard of a document: its id is already a keyed hash, so its first bytes are uniform.
pub(crate) fn shard_of(doc_id: &str, shards: u32) -> u32 {
    let h = Sha256::digest(doc_id.as_bytes());
    let x = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    (x % u64::from(shards.max(1))) as u32
}

fn score(cid: &str, shard: u32, peer: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"prag-placement-v1\n");
    h.update((cid.len() as u32).to_be_bytes());
    h.update(cid.as_bytes());
    h.update(shard.to_be_bytes());
    h.update(peer.as_bytes());
    h.finalize().into()
}

/// The owners of `shard` of collection `cid`: the `replicas` candidates that score highest, best
/// first (fewer when there are fewer candidates).
pub(crate) fn owners<'a>(
    cid: &str,
    shard: u32,
    replicas: usize,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut scored: Vec<([u8; 32], &str)> = candidates.into_iter().map(|p| (score(cid, shard, p), p)).collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(replicas).map(|(_, p)| p.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_spread_and_stable() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(&format!("{i:032x}"), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(shard_of("abc", 4), shard_of("abc", 4));
    }

    #[test]
    fn rendezvous_moves_only_what_it_must() {
        let peers = ["p1", "p2", "p3", "p4"];
        let mut moved = 0;
        for shard in 0..64 {
            let all = owners("c", shard, 2, peers);
            assert_eq!(all.len(), 2);
            assert_ne!(all[0], all[1]);
            // Same answer whatever the order of the candidates.
            assert_eq!(all, owners("c", shard, 2, peers.iter().rev().copied()));
            // p4 leaves: shards it did not own keep both owners.
            let without = owners("c", shard, 2, ["p1", "p2", "p3"]);
            if !all.contains(&"p4".to_string()) {
                assert_eq!(all, without);
            } else {
                moved += 1;
                assert!(without.iter().any(|p| all.contains(p)), "the surviving owner stays");
            }
        }
        assert!(moved > 0 && moved < 64);
        assert_eq!(owners("c", 0, 5, ["p1", "p2"]).len(), 2);
    }
}
