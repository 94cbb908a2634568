//! Request authentication on the node: signature and freshness (shared rules in
//! `prag_proto::auth`) plus the memory of recently used nonces that refuses replays.

use std::collections::HashMap;

use k256::ecdsa::VerifyingKey;
use parking_lot::Mutex;
use prag_proto::auth::{AuthError, MAX_SKEW_SECS, SignatureHeaders, verify_request};

/// Most remembered nonces; past this, expired entries are dropped, then the oldest half.
const MAX_ENTRIES: usize = 1_000_000;

/// (public key, nonce) pairs seen within the freshness window.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, String), u64>>,
}

impl NonceCache {
    /// Records the nonce; `Err(Replayed)` when it was already used by that key.
    pub fn check_and_insert(&self, pubkey: &str, nonce: &str, now: u64) -> Result<(), AuthError> {
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_ENTRIES {
            // A request older than twice the window is refused as stale anyway.
            seen.retain(|_, t| now.saturating_sub(*t) <= 2 * MAX_SKEW_SECS);
            if seen.len() >= MAX_ENTRIES {
                let mut times: Vec<u64> = seen.values().copied().collect();
                times.sort_unstable();
                let cutoff = times[times.len() / 2];
                seen.retain(|_, t| *t > cutoff);
            }
        }
        match seen.entry((pubkey.to_string(), nonce.to_string())) {
            std::collections::hash_map::Entry::Occupied(_) => Err(AuthError::Replayed),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(now);
                Ok(())
            }
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Verifies a request completely: signature, freshness, then replay.
pub fn authenticate(
    nonces: &NonceCache,
    headers: Option<SignatureHeaders>,
    missing: &'static str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<VerifyingKey, AuthError> {
    let h = headers.ok_or(AuthError::Missing(missing))?;
    let now = unix_now();
    let key = verify_request(&h, method, path_and_query, body, now)?;
    nonces.check_and_insert(&h.pubkey, &h.nonce, now)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_refused() {
        let c = NonceCache::default();
        assert!(c.check_and_insert("k", "n1", 10).is_ok());
        assert_eq!(c.check_and_insert("k", "n1", 11), Err(AuthError::Replayed));
        assert!(c.check_and_insert("k2", "n1", 11).is_ok());
    }
}
