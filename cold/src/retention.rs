//! Retention (DESIGN.md §5): a segment whose newest row is older than the stream's
//! `retention` leaves the table in one commit (a `DELETE` in its history, so every
//! Delta reader sees it go at once); `retention_grace` later its Parquet file (Delta's
//! vacuum) and its bundle are deleted, so that a query that pinned an older version
//! still finds its files. Hot generations past retention are deleted by the lifecycle
//! manager without being migrated.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tierlog_core::failpoint;

use crate::bundle::bundle_key;
use crate::error::Result;
use crate::store::ColdStore;
use crate::table::{Backoff, COMMIT_ATTEMPTS, ColdTable, SegmentFile, segment_id};

/// Whether rows whose newest `_timestamp` is `newest_us` are past `retention` at `now`.
/// Empty data (`None`) never expires: it holds nothing to keep or remove.
pub(crate) fn is_expired(newest_us: Option<i64>, retention: Duration, now: SystemTime) -> bool {
    newest_us.is_some_and(|us| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64) + retention <= now)
}

/// What a retention commit removed.
#[derive(Debug)]
pub(crate) struct Expired {
    pub version: u64,
    pub segments: Vec<String>,
    pub rows: u64,
}

/// Removes every live segment past `retention` in one commit, deciding again on the
/// newer snapshot when another commit wins the race. `None` when nothing is expired,
/// or when other commits kept winning (the next pass tries again).
pub(crate) async fn expire_segments(table: &mut ColdTable, stream: &str, retention: Duration, now: SystemTime) -> Result<Option<Expired>> {
    let expired_in = |table: &ColdTable| -> Result<Vec<SegmentFile>> {
        Ok(table.segment_files()?.into_iter().filter(|f| is_expired(f.newest_us(), retention, now)).collect())
    };
    if expired_in(table)?.is_empty() {
        return Ok(None);
    }
    table.refresh().await?;
    let cutoff = now.checked_sub(retention).unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let predicate = format!("_timestamp < '{}'", rfc3339_us(cutoff));
    let mut backoff = Backoff::new();
    loop {
        let expired = expired_in(table)?;
        if expired.is_empty() {
            return Ok(None);
        }
        match table.remove_segments(&expired, predicate.clone()).await? {
            Some(version) => {
                let rows = expired.iter().map(|f| f.rows).sum();
                return Ok(Some(Expired { version, segments: expired.into_iter().map(|f| f.id).collect(), rows }));
            }
            None if backoff.attempts < COMMIT_ATTEMPTS => backoff.wait(stream, "retention").await,
            None => return Ok(None),
        }
    }
}

/// Deletes what commits removed more than `grace` before `now` and `done` does not hold
/// yet: the data files through vacuum, then the bundles (of stream `bundles_of`; error
/// tables have none). Returns the data files (paths relative to the table root) whose
/// objects are now gone. Safe to run again after a crash: deleting an object already
/// gone is not an error.
pub(crate) async fn sweep(
    store: &ColdStore,
    table: &mut ColdTable,
    bundles_of: Option<&str>,
    grace: Duration,
    now: SystemTime,
    done: &HashSet<String>,
) -> Result<Vec<String>> {
    // Other handles commit removals too (compaction, other nodes).
    table.refresh().await?;
    let before_ms = now.checked_sub(grace).unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let due: Vec<String> = table.removed_before(before_ms).await?.into_iter().filter(|p| !done.contains(p)).collect();
    if due.is_empty() {
        return Ok(due);
    }
    table.vacuum(grace).await?;
    failpoint::hit("during_retention");
    if let Some(stream) = bundles_of {
        for path in &due {
            store.delete(&bundle_key(store, stream, segment_id(path))).await?;
        }
    }
    Ok(due)
}

fn rfc3339_us(us: i64) -> String {
    arrow::temporal_conversions::timestamp_us_to_datetime(us).map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_from_the_newest_row() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let day = Duration::from_secs(100);
        assert!(is_expired(Some(900_000_000), day, now), "exactly at the boundary");
        assert!(!is_expired(Some(900_000_001), day, now));
        assert!(is_expired(Some(0), day, now));
        assert!(!is_expired(None, day, now), "empty data never expires");
    }

    #[test]
    fn the_delete_predicate_names_the_cutoff() {
        assert_eq!(rfc3339_us(1_500_000_000_123_456), "2017-07-14T02:40:00.123456Z");
    }
}
