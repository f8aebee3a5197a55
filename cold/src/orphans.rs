//! The orphan sweep: objects under a table's root (its Parquet files, not its log) and
//! under its stream's bundle prefix that no segment references — live, or removed less
//! than `retention_grace` ago — are deleted. Orphans come from crashes between an upload
//! and its commit, from uploads whose commit lost to another node's, and from files
//! vacuum's lite mode missed (delta-rs#3644).
//!
//! An upload is referenced only once its commit lands, so nothing younger than
//! `min_age` is touched: the lifecycle passes a day (or `retention_grace`, if longer),
//! and a migration uploads its files again when they have waited an hour for their
//! commit (`migrate.rs`), so no pending commit names an object this sweep may delete.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bundle::bundle_key;
use crate::error::Result;
use crate::store::ColdStore;
use crate::table::{ColdTable, segment_id};

/// What the sweep found and deleted, as full object keys.
#[derive(Debug, Default)]
pub struct Orphans {
    pub deleted: Vec<String>,
    /// Unreferenced objects left because they are younger than `min_age`.
    pub young: usize,
}

/// Deletes the orphans of `table` (and of stream `bundles_of`'s bundles; error tables
/// have none), as described in the module doc.
pub async fn sweep_orphans(
    store: &ColdStore,
    table: &ColdTable,
    bundles_of: Option<&str>,
    grace: Duration,
    min_age: Duration,
    now: SystemTime,
) -> Result<Orphans> {
    let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let grace_start = ms(now.checked_sub(grace).unwrap_or(UNIX_EPOCH));
    let mut paths: Vec<String> = table.files()?;
    paths.extend(table.tombstones().await?.into_iter().filter(|(_, removed_ms)| *removed_ms >= grace_start).map(|(path, _)| path));
    let root = store.key(&format!("tables/{}", table.name()));
    let mut referenced: HashSet<String> = paths.iter().map(|p| format!("{root}/{p}")).collect();
    if let Some(stream) = bundles_of {
        referenced.extend(paths.iter().map(|p| bundle_key(store, stream, segment_id(p)).to_string()));
    }
    let mut prefixes = vec![root.clone()];
    if let Some(stream) = bundles_of {
        prefixes.push(store.key(&format!("index/{stream}")));
    }
    let log = format!("{root}/_delta_log/");
    let old_enough = ms(now.checked_sub(min_age).unwrap_or(UNIX_EPOCH));
    let mut orphans = Orphans::default();
    for prefix in prefixes {
        for object in store.list(&prefix).await? {
            let key = object.location.to_string();
            if key.starts_with(&log) || referenced.contains(&key) {
                continue;
            }
            if object.last_modified.timestamp_millis() > old_enough {
                orphans.young += 1;
                continue;
            }
            store.delete(&object.location).await?;
            orphans.deleted.push(key);
        }
    }
    Ok(orphans)
}
