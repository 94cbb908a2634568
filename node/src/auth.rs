//! Request authentication on the node: signature and freshness (shared rules in
//! `prag_proto::auth`) plus the memory of recently used nonces that refuses replays.
//!
//! The memory is keyed by a hash of the signer's **canonical** key and the nonce, so re-spelling
//! the key header does not make a captured request new. An entry lives until the request's own
//! timestamp leaves the freshness window, after which the request is refused as stale anyway. The
//! memory is bounded: when it is full of entries that may still be replayed, new requests are
//! refused (`Busy`) rather than forgetting a nonce early. Requests signed before the node started
//! are refused, since a restarted node has forgotten the nonces it saw.

use std::collections::{HashSet, VecDeque};

use parking_lot::Mutex;
use prag_proto::auth::{AuthError, MAX_SKEW_SECS, SignatureHeaders, VerifiedRequest, verify_request};
use sha2::{Digest, Sha256};

/// Most remembered nonces by default (about 64 bytes each).
pub(crate) const DEFAULT_CAPACITY: usize = 1_000_000;

/// (canonical key, nonce) pairs that may still be replayed.
#[derive(Debug)]
pub struct NonceCache {
    inner: Mutex<Seen>,
    capacity: usize,
    /// Unix seconds when this node started: earlier-signed requests are refused.
    not_before: u64,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<[u8; 32]>,
    /// (expiry, entry) in insertion order; expiries are not sorted, so expiry sweeps the front
    /// while it is due and a late-expiring front entry only delays others by at most the window.
    order: VecDeque<(u64, [u8; 32])>,
}

impl Default for NonceCache {
    fn default() -> Self {
        NonceCache::new(DEFAULT_CAPACITY, 0)
    }
}

impl NonceCache {
    pub fn new(capacity: usize, not_before: u64) -> Self {
        NonceCache { inner: Mutex::new(Seen::default()), capacity: capacity.max(1), not_before }
    }

    fn entry(pubkey_hex: &str, nonce: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((pubkey_hex.len() as u32).to_be_bytes());
        h.update(pubkey_hex.as_bytes());
        h.update(nonce.as_bytes());
        h.finalize().into()
    }

    /// Records the nonce of a request signed at `timestamp` by the key whose canonical spelling
    /// is `pubkey_hex`; `Err(Replayed)` when that key already used it.
    pub fn check_and_insert(&self, pubkey_hex: &str, nonce: &str, timestamp: u64, now: u64) -> Result<(), AuthError> {
        if timestamp < self.not_before {
            return Err(AuthError::BeforeStart);
        }
        let entry = Self::entry(pubkey_hex, nonce);
        let mut seen = self.inner.lock();
        while let Some(&(expiry, e)) = seen.order.front() {
            if expiry >= now {
                break;
            }
            seen.order.pop_front();
            seen.set.remove(&e);
        }
        if seen.set.contains(&entry) {
            return Err(AuthError::Replayed);
        }
        if seen.set.len() >= self.capacity {
            return Err(AuthError::Busy);
        }
        seen.set.insert(entry);
        // A request is fresh while |now - timestamp| <= window: remember it until then.
        seen.order.push_back((timestamp.saturating_add(MAX_SKEW_SECS), entry));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<AuthError> for crate::error::Error {
    fn from(e: AuthError) -> Self {
        use crate::error::ErrorKind as K;
        let kind = match e {
            AuthError::Missing(_) => K::Unsigned,
            AuthError::Malformed(_) => K::MalformedSignature,
            AuthError::Stale { .. } | AuthError::BeforeStart => K::Stale,
            AuthError::Replayed => K::Replayed,
            AuthError::BadSignature => K::BadSignature,
            AuthError::BodyMismatch => K::BodyMismatch,
            AuthError::WrongAudience => K::WrongAudience,
            AuthError::Busy => K::Busy,
        };
        crate::error::Error::new(kind, e.to_string())
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Verifies a request's head completely: signature, freshness, audience, then replay. The body is
/// checked against the signed hash when it is read.
pub(crate) fn authenticate(
    nonces: &NonceCache,
    headers: &SignatureHeaders,
    method: &str,
    path_and_query: &str,
    node_id: &str,
) -> Result<VerifiedRequest, AuthError> {
    let now = unix_now();
    let verified = verify_request(headers, method, path_and_query, now, node_id)?;
    nonces.check_and_insert(&verified.pubkey_hex, &headers.nonce, headers.timestamp, now)?;
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_is_refused() {
        let c = NonceCache::default();
        assert!(c.check_and_insert("k", "n1", 10, 10).is_ok());
        assert_eq!(c.check_and_insert("k", "n1", 10, 11), Err(AuthError::Replayed));
        assert!(c.check_and_insert("k2", "n1", 11, 11).is_ok());
    }

    #[test]
    fn entries_expire_with_their_window_and_a_full_cache_refuses_instead_of_forgetting() {
        let c = NonceCache::new(2, 0);
        assert!(c.check_and_insert("k", "a", 100, 100).is_ok());
        assert!(c.check_and_insert("k", "b", 100, 100).is_ok());
        // Full of entries that can still be replayed: refuse, do not evict.
        assert_eq!(c.check_and_insert("k", "c", 100, 120), Err(AuthError::Busy));
        assert_eq!(c.check_and_insert("k", "a", 100, 159), Err(AuthError::Replayed));
        // Past 100 + window, the old ones can no longer be replayed (stale), so they go.
        assert!(c.check_and_insert("k", "c", 161, 161).is_ok());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn requests_signed_before_the_start_are_refused() {
        let c = NonceCache::new(10, 1000);
        assert_eq!(c.check_and_insert("k", "a", 999, 1001), Err(AuthError::BeforeStart));
        assert!(c.check_and_insert("k", "a", 1000, 1001).is_ok());
    }
}
