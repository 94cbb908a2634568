//! Per-caller and node-wide budgets that keep one caller from taking what others need: bytes of
//! request bodies in flight, and slots of scarce work (document extraction).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// At most `per_key` concurrent holders per key; keys with no holder are forgotten.
pub(crate) struct KeyedSlots {
    per_key: usize,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl KeyedSlots {
    pub(crate) fn new(per_key: usize) -> Self {
        KeyedSlots { per_key: per_key.max(1), slots: Mutex::new(HashMap::new()) }
    }

    /// Waits for one of `key`'s slots.
    pub(crate) async fn acquire(&self, key: &str) -> KeyedSlotGuard<'_> {
        let sem = Arc::clone(
            self.slots
                .lock()
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_key))),
        );
        // The semaphore is never closed, so acquiring cannot fail; if it ever did, run unguarded
        // rather than fail the request.
        let permit = sem.acquire_owned().await.ok();
        KeyedSlotGuard { slots: self, key: key.to_string(), permit }
    }

    fn release(&self, key: &str) {
        let mut slots = self.slots.lock();
        // Only the map holds it: nobody is waiting or holding.
        if slots.get(key).is_some_and(|s| Arc::strong_count(s) == 1) {
            slots.remove(key);
        }
    }

    #[cfg(test)]
    pub(crate) fn keys(&self) -> usize {
        self.slots.lock().len()
    }
}

/// A slot of [`KeyedSlots`]; released on drop.
pub(crate) struct KeyedSlotGuard<'a> {
    slots: &'a KeyedSlots,
    key: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for KeyedSlotGuard<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.slots.release(&self.key);
    }
}

/// Bytes of request bodies being read or worked on, per caller and in all.
pub struct InflightBudget {
    per_key: u64,
    total: u64,
    state: Mutex<Inflight>,
}

#[derive(Default)]
struct Inflight {
    total: u64,
    by_key: HashMap<String, u64>,
}

/// Why bytes were not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("this key already has {held} bytes of requests in flight; at most {limit} are allowed at once")]
    Key { held: u64, limit: u64 },
    #[error("the node is busy with {held} bytes of requests in flight; try again shortly")]
    Node { held: u64 },
}

impl From<BudgetError> for crate::error::Error {
    fn from(e: BudgetError) -> Self {
        let kind = match e {
            BudgetError::Key { .. } => crate::error::ErrorKind::Quota,
            BudgetError::Node { .. } => crate::error::ErrorKind::Busy,
        };
        crate::error::Error::new(kind, e.to_string())
    }
}

/// Bytes granted by [`InflightBudget::try_take`]; given back on drop.
pub struct Grant {
    budget: Arc<InflightBudget>,
    key: String,
    bytes: u64,
}

impl Drop for Grant {
    fn drop(&mut self) {
        let mut s = self.budget.state.lock();
        s.total = s.total.saturating_sub(self.bytes);
        if let Some(held) = s.by_key.get_mut(&self.key) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                s.by_key.remove(&self.key);
            }
        }
    }
}

impl InflightBudget {
    pub fn new(per_key: u64, total: u64) -> Arc<Self> {
        Arc::new(InflightBudget { per_key, total, state: Mutex::new(Inflight::default()) })
    }

    /// Grants `bytes` to `key` now, or says which limit is in the way. A request larger than a
    /// limit on its own is granted only when nothing else holds that limit (its size is checked
    /// against the route's own limit elsewhere).
    pub fn try_take(self: &Arc<Self>, key: &str, bytes: u64) -> Result<Grant, BudgetError> {
        let mut s = self.state.lock();
        let held = s.by_key.get(key).copied().unwrap_or(0);
        if held > 0 && held.saturating_add(bytes) > self.per_key {
            return Err(BudgetError::Key { held, limit: self.per_key });
        }
        if s.total > 0 && s.total.saturating_add(bytes) > self.total {
            return Err(BudgetError::Node { held: s.total });
        }
        s.total = s.total.saturating_add(bytes);
        *s.by_key.entry(key.to_string()).or_default() += bytes;
        Ok(Grant { budget: Arc::clone(self), key: key.to_string(), bytes })
    }

    pub fn held(&self) -> u64 {
        self.state.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_cannot_take_more_than_its_share_and_grants_come_back() {
        let b = InflightBudget::new(100, 150);
        let g1 = b.try_take("a", 60).unwrap();
        assert_eq!(b.try_take("a", 60).err(), Some(BudgetError::Key { held: 60, limit: 100 }));
        let g2 = b.try_take("b", 80).unwrap();
        assert_eq!(b.try_take("c", 20).err(), Some(BudgetError::Node { held: 140 }));
        drop(g1);
        assert!(b.try_take("c", 20).is_ok());
        drop(g2);
        assert_eq!(b.held(), 0);
        // Alone, a request bigger than the per-key share still goes (the route limit bounds it).
        assert!(b.try_take("a", 120).is_ok());
    }

    #[tokio::test]
    async fn keyed_slots_allow_one_per_key_and_forget_idle_keys() {
        let slots = KeyedSlots::new(1);
        let a = slots.acquire("a").await;
        let b = slots.acquire("b").await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), slots.acquire("a")).await;
        assert!(waiting.is_err(), "a second slot for the same key waits");
        drop(a);
        drop(b);
        assert_eq!(slots.keys(), 0);
        let _again = slots.acquire("a").await;
    }
}
