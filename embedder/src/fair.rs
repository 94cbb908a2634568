//! Who goes next: the fair order in which waiting texts enter model batches.
//!
//! Callers name a *tenant* (for the node: the signing key a request came from). Tenants take turns:
//! each batch is filled by going round the tenants that have texts waiting, each giving an equal
//! share, starting after the tenant that started the previous batch; a tenant that had nothing
//! waiting starts the next batch. Within a tenant, its requests
//! take turns the same way, so a one-line query is not stuck behind its own tenant's upload
//! either. A request whose caller went away (its answer channel closed) is dropped before any more
//! of its texts are batched.
//!
//! Pure bookkeeping, no model and no threads: the runtime asks it for the next batch when a model
//! worker is free.

use std::collections::VecDeque;

/// Something that yields texts one at a time.
pub trait Work {
    type Item;
    /// The next item, if any remain.
    fn next_item(&mut self) -> Option<Self::Item>;
    /// What the next item is expected to cost in a batch (for texts: an estimate of its tokens).
    fn next_cost(&self) -> usize;
    /// Whether any item remains.
    fn has_items(&self) -> bool;
    /// Whether the caller no longer wants the result.
    fn cancelled(&self) -> bool;
}

/// Waiting work, by tenant, in turn order.
pub struct FairQueue<W> {
    tenants: VecDeque<(String, VecDeque<W>)>,
}

impl<W> Default for FairQueue<W> {
    fn default() -> Self {
        FairQueue { tenants: VecDeque::new() }
    }
}

impl<W: Work> FairQueue<W> {
    /// Adds work for `tenant`. A tenant with nothing waiting goes to the front of the turn order:
    /// it has had no share yet, and a newcomer is usually a small request (a query) whose wait is
    /// what a user feels.
    pub fn push(&mut self, tenant: &str, work: W) {
        match self.tenants.iter_mut().find(|(t, _)| t == tenant) {
            // Within a tenant the same holds for its requests.
            Some((_, queue)) => queue.push_front(work),
            None => self.tenants.push_front((tenant.to_string(), VecDeque::from([work]))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// Drops cancelled and finished work, and tenants left with none. Returns the cancelled work.
    pub fn prune(&mut self) -> Vec<W> {
        let mut cancelled = Vec::new();
        for (_, queue) in self.tenants.iter_mut() {
            let mut kept = VecDeque::with_capacity(queue.len());
            for w in queue.drain(..) {
                if w.cancelled() {
                    cancelled.push(w);
                } else if w.has_items() {
                    kept.push_back(w);
                }
            }
            *queue = kept;
        }
        self.tenants.retain(|(_, q)| !q.is_empty());
        cancelled
    }

    /// Up to `max` items, shared equally between the tenants waiting, and no more than fit in
    /// `budget` padded cost (the costliest item × the number of items; the first item always
    /// goes). The next call starts with the tenant after this call's first.
    pub fn next_batch(&mut self, max: usize, budget: usize) -> Vec<W::Item> {
        self.prune();
        let mut out = Vec::with_capacity(max);
        if self.tenants.is_empty() || max == 0 {
            return out;
        }
        let mut fit = Fit { longest: 0, first: 0, budget, full: false };
        // Rounds of equal shares until the batch is full or nothing is left: a tenant with less
        // than its share leaves the rest to the others.
        while out.len() < max && !fit.full && !self.tenants.is_empty() {
            let share = (max - out.len()).div_ceil(self.tenants.len()).max(1);
            for (_, queue) in self.tenants.iter_mut() {
                let take = share.min(max - out.len());
                take_from_tenant(queue, take, &mut out, &mut fit);
                if out.len() >= max || fit.full {
                    break;
                }
            }
            self.tenants.retain(|(_, q)| q.iter().any(Work::has_items));
            for (_, q) in self.tenants.iter_mut() {
                q.retain(Work::has_items);
            }
        }
        self.tenants.rotate_left(1.min(self.tenants.len()));
        out
    }
}

/// The padded cost of the batch being filled.
struct Fit {
    longest: usize,
    /// The cost of the batch's first item.
    first: usize,
    budget: usize,
    /// An item did not fit: the batch is closed.
    full: bool,
}

impl Fit {
    /// Whether an item of `cost` fits beside the `count` already taken. Besides the budget, an
    /// item more than twice as costly as the batch's first closes the batch: a short text (a
    /// query) that starts a batch is not made to wait for long ones padded beside it.
    fn admit(&mut self, cost: usize, count: usize) -> bool {
        let cost = cost.max(1);
        if count == 0 {
            self.first = cost;
        }
        let longest = self.longest.max(cost);
        if count > 0 && (longest.saturating_mul(count + 1) > self.budget || cost > self.first.saturating_mul(2)) {
            self.full = true;
            return false;
        }
        self.longest = longest;
        true
    }
}

/// Up to `n` items from one tenant's requests, shared between them in turn; the request that
/// gave first goes to the back.
fn take_from_tenant<W: Work>(queue: &mut VecDeque<W>, n: usize, out: &mut Vec<W::Item>, fit: &mut Fit) {
    let mut taken = 0;
    while taken < n && !fit.full && queue.iter().any(Work::has_items) {
        let share = (n - taken).div_ceil(queue.len()).max(1);
        for w in queue.iter_mut() {
            let mut k = 0;
            while k < share && taken < n {
                if !w.has_items() || !fit.admit(w.next_cost(), out.len()) {
                    break;
                }
                match w.next_item() {
                    Some(item) => {
                        out.push(item);
                        taken += 1;
                        k += 1;
                    }
                    None => break,
                }
            }
            if taken >= n || fit.full {
                break;
            }
        }
    }
    if queue.len() > 1 {
        queue.rotate_left(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Texts {
        name: &'static str,
        left: VecDeque<usize>,
        cancelled: bool,
    }

    impl Texts {
        fn new(name: &'static str, n: usize) -> Self {
            Texts { name, left: (0..n).collect(), cancelled: false }
        }
    }

    impl Work for Texts {
        type Item = (&'static str, usize);
        fn next_item(&mut self) -> Option<Self::Item> {
            self.left.pop_front().map(|i| (self.name, i))
        }
        fn has_items(&self) -> bool {
            !self.left.is_empty()
        }
        fn next_cost(&self) -> usize {
            if self.name == "long" { 200 } else { 10 }
        }
        fn cancelled(&self) -> bool {
            self.cancelled
        }
    }

    fn names(batch: &[(&'static str, usize)]) -> Vec<&'static str> {
        batch.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn a_query_behind_a_big_upload_is_in_the_very_next_batch() {
        let mut q = FairQueue::default();
        q.push("alice", Texts::new("upload", 2500));
        let first = q.next_batch(10, usize::MAX);
        assert_eq!(names(&first), vec!["upload"; 10]);
        q.push("bob", Texts::new("query", 1));
        let second = q.next_batch(10, usize::MAX);
        assert!(names(&second).contains(&"query"), "{second:?}");
        assert_eq!(second.len(), 10, "the upload fills the rest");
    }

    #[test]
    fn tenants_share_a_batch_equally_and_take_turns_starting_it() {
        let mut q = FairQueue::default();
        q.push("a", Texts::new("a", 100));
        q.push("b", Texts::new("b", 100));
        q.push("c", Texts::new("c", 100));
        let batch = q.next_batch(9, usize::MAX);
        let count = |n| names(&batch).iter().filter(|x| **x == n).count();
        assert_eq!((count("a"), count("b"), count("c")), (3, 3, 3));
        let firsts: Vec<&str> = (0..3).map(|_| names(&q.next_batch(1, usize::MAX))[0]).collect();
        let mut distinct = firsts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "each batch starts with the next tenant: {firsts:?}");
    }

    #[test]
    fn within_a_tenant_a_query_is_not_stuck_behind_its_own_upload() {
        let mut q = FairQueue::default();
        q.push("alice", Texts::new("upload", 1000));
        let _ = q.next_batch(8, usize::MAX);
        q.push("alice", Texts::new("query", 1));
        assert!(names(&q.next_batch(8, usize::MAX)).contains(&"query"));
    }

    #[test]
    fn order_within_a_request_is_kept_and_every_item_comes_out_once() {
        let mut q = FairQueue::default();
        q.push("a", Texts::new("x", 25));
        q.push("b", Texts::new("y", 7));
        let mut all = Vec::new();
        while !q.is_empty() {
            all.extend(q.next_batch(4, usize::MAX));
        }
        let xs: Vec<usize> = all.iter().filter(|(n, _)| *n == "x").map(|(_, i)| *i).collect();
        assert_eq!(xs, (0..25).collect::<Vec<_>>());
        assert_eq!(all.len(), 32);
    }

    #[test]
    fn a_newcomer_starts_the_next_batch_even_when_the_batch_fills_by_budget() {
        let mut q = FairQueue::default();
        q.push("alice", Texts::new("long", 500));
        let _ = q.next_batch(32, 2048);
        q.push("bob", Texts::new("query", 1));
        assert_eq!(names(&q.next_batch(32, 2048)), vec!["query"], "alone: not padded to the long texts");
        assert_eq!(names(&q.next_batch(32, 2048)), vec!["long"; 10]);
    }

    #[test]
    fn a_batch_stops_at_its_padded_budget() {
        let mut q = FairQueue::default();
        q.push("a", Texts::new("long", 100));
        assert_eq!(q.next_batch(32, 2048).len(), 10, "10 × 200 fits 2048, 11 × 200 does not");
        let mut q = FairQueue::default();
        q.push("a", Texts::new("short", 100));
        assert_eq!(q.next_batch(32, 2048).len(), 32, "short texts fill the batch by count");
        let mut q = FairQueue::default();
        q.push("a", Texts::new("long", 3));
        assert_eq!(q.next_batch(32, 50).len(), 1, "an item larger than the budget still goes alone");
    }

    #[test]
    fn cancelled_work_is_dropped_before_it_is_batched() {
        let mut q = FairQueue::default();
        let mut t = Texts::new("gone", 50);
        t.cancelled = true;
        q.push("a", t);
        q.push("b", Texts::new("live", 3));
        let batch = q.next_batch(10, usize::MAX);
        assert_eq!(names(&batch), vec!["live"; 3]);
        assert!(q.is_empty());
    }
}
