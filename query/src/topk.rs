//! The first `limit` rows by `_timestamp`, chosen while holding at most `limit` of them,
//! with the memory they take reserved from the query's pool, so a large `LIMIT` over a
//! large scan fails with the memory error instead of growing without bound.

use std::collections::BinaryHeap;

use datafusion::common::Result;
use datafusion::execution::memory_pool::MemoryReservation;

/// The first `limit` of `items` ordered by time (`descending` or not), then by `id`
/// (unique), sorted. Without a limit, all of them, sorted.
pub fn top_by_time<K: Ord + Copy>(
    items: impl Iterator<Item = (i64, K)>,
    limit: Option<usize>,
    descending: bool,
    reservation: &mut MemoryReservation,
) -> Result<Vec<(i64, K)>> {
    // One ascending rank for both orders (i128: negating i64::MIN must not overflow).
    let rank = |t: i64| if descending { -i128::from(t) } else { i128::from(t) };
    let entry = std::mem::size_of::<(i128, K)>();
    let mut reserved = 0usize;
    let mut grow = |len: usize, reservation: &mut MemoryReservation| -> Result<()> {
        if len > reserved {
            // In steps, so the pool is not asked once per row.
            let want = len.max(reserved * 2).max(1024);
            reservation.try_grow((want - reserved) * entry)?;
            reserved = want;
        }
        Ok(())
    };
    let mut heap: BinaryHeap<(i128, K)> = BinaryHeap::new();
    match limit {
        Some(0) => {}
        Some(limit) => {
            for (t, id) in items {
                let candidate = (rank(t), id);
                if heap.len() == limit {
                    if heap.peek().is_some_and(|worst| candidate >= *worst) {
                        continue;
                    }
                    heap.pop();
                }
                heap.push(candidate);
                grow(heap.len(), reservation)?;
            }
        }
        None => {
            for (t, id) in items {
                heap.push((rank(t), id));
                grow(heap.len(), reservation)?;
            }
        }
    }
    let unrank = |r: i128| (if descending { -r } else { r }) as i64;
    Ok(heap.into_sorted_vec().into_iter().map(|(r, id)| (unrank(r), id)).collect())
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

    #[test]
    fn keeps_the_first_by_time_then_id() {
        let items = [(5, 0u32), (1, 1), (9, 2), (5, 3), (i64::MIN, 4), (i64::MAX, 5)];
        let mut r = reservation(1 << 20);
        let desc = top_by_time(items.into_iter(), Some(3), true, &mut r).unwrap();
        assert_eq!(desc, [(i64::MAX, 5), (9, 2), (5, 0)]);
        let asc = top_by_time(items.into_iter(), Some(2), false, &mut r).unwrap();
        assert_eq!(asc, [(i64::MIN, 4), (1, 1)]);
        let all = top_by_time(items.into_iter(), None, false, &mut r).unwrap();
        assert_eq!(all.len(), 6);
        assert!(top_by_time(items.into_iter(), Some(0), false, &mut r).unwrap().is_empty());
    }

    #[test]
    fn a_limit_beyond_the_pool_fails_instead_of_growing() {
        let many = (0..100_000i64).map(|t| (t, t as u32));
        let mut small = reservation(64 << 10);
        let e = top_by_time(many.clone(), Some(1_000_000), true, &mut small).unwrap_err();
        assert!(e.to_string().contains("Resources exhausted"), "{e}");
        // A small limit holds only that many, whatever the input.
        let mut small = reservation(64 << 10);
        assert_eq!(top_by_time(many, Some(10), true, &mut small).unwrap()[0], (99_999, 99_999));
    }
}
