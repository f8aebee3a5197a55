//! The first `limit` rows by `_timestamp`, chosen while holding at most `limit` of them,
//! with the memory they take reserved from the query's pool, so a large `LIMIT` over a
//! large scan fails with the memory error instead of growing without bound.

use std::collections::BinaryHeap;

use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;

/// The first `limit` items ordered by time (descending or not), then by `id` (unique),
/// fed one at a time: at most `limit` are held (all of them without a limit), and the
/// memory they take is reserved as the heap grows.
pub struct TopK<K> {
    heap: BinaryHeap<(i128, K)>,
    limit: Option<usize>,
    descending: bool,
    reservation: MemoryReservation,
    /// Entries the reservation covers.
    reserved: usize,
}

impl<K: Ord + Copy> TopK<K> {
    pub fn new(limit: Option<usize>, descending: bool, reservation: MemoryReservation) -> TopK<K> {
        TopK { heap: BinaryHeap::new(), limit, descending, reservation, reserved: 0 }
    }

    /// One ascending rank for both orders (i128: negating i64::MIN must not overflow).
    fn rank(&self, t: i64) -> i128 {
        if self.descending { -i128::from(t) } else { i128::from(t) }
    }

    pub fn push(&mut self, t: i64, id: K) -> Result<()> {
        let candidate = (self.rank(t), id);
        match self.limit {
            Some(0) => return Ok(()),
            Some(limit) if self.heap.len() == limit => {
                if self.heap.peek().is_some_and(|worst| candidate >= *worst) {
                    return Ok(());
                }
                self.heap.pop();
            }
            _ => {}
        }
        self.heap.push(candidate);
        if self.heap.len() > self.reserved {
            // In steps, so the pool is not asked once per row.
            let want = self.heap.len().max(self.reserved * 2).max(1024);
            self.reservation.try_grow((want - self.reserved) * std::mem::size_of::<(i128, K)>())?;
            self.reserved = want;
        }
        Ok(())
    }

    /// The kept items, best first, and the reservation that covers them.
    pub fn into_sorted(self) -> (Vec<(i64, K)>, MemoryReservation) {
        let descending = self.descending;
        let unrank = |r: i128| (if descending { -r } else { r }) as i64;
        let sorted = self.heap.into_sorted_vec().into_iter().map(|(r, id)| (unrank(r), id)).collect();
        (sorted, self.reservation)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};

    use super::*;

    fn reservation(bytes: usize) -> MemoryReservation {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(bytes));
        MemoryConsumer::new("test").register(&pool)
    }

    fn top<K: Ord + Copy>(items: impl Iterator<Item = (i64, K)>, limit: Option<usize>, descending: bool, bytes: usize) -> Result<Vec<(i64, K)>> {
        let mut top = TopK::new(limit, descending, reservation(bytes));
        for (t, id) in items {
            top.push(t, id)?;
        }
        Ok(top.into_sorted().0)
    }

    #[test]
    fn keeps_the_first_by_time_then_id() {
        let items = [(5, 0u32), (1, 1), (9, 2), (5, 3), (i64::MIN, 4), (i64::MAX, 5)];
        let desc = top(items.into_iter(), Some(3), true, 1 << 20).unwrap();
        assert_eq!(desc, [(i64::MAX, 5), (9, 2), (5, 0)]);
        let asc = top(items.into_iter(), Some(2), false, 1 << 20).unwrap();
        assert_eq!(asc, [(i64::MIN, 4), (1, 1)]);
        let all = top(items.into_iter(), None, false, 1 << 20).unwrap();
        assert_eq!(all.len(), 6);
        assert!(top(items.into_iter(), Some(0), false, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn a_limit_beyond_the_pool_fails_instead_of_growing() {
        let many = (0..100_000i64).map(|t| (t, t as u32));
        let e = top(many.clone(), Some(1_000_000), true, 64 << 10).unwrap_err();
        assert!(e.to_string().contains("Resources exhausted"), "{e}");
        // A small limit holds only that many, whatever the input.
        assert_eq!(top(many, Some(10), true, 64 << 10).unwrap()[0], (99_999, 99_999));
    }
}
