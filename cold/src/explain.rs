//! `tierlog lifecycle explain` and `GET /api/v1/lifecycle`: for each hot generation and
//! cold segment of a stream, its state, age, rows and bytes, and what the lifecycle does
//! to it next, when, and which policy key decides it. Read from the same places the
//! lifecycle manager reads (the hot catalog, the Delta snapshot), never from a copy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tierlog_core::config::StreamConfig;
use tierlog_hot::{GenerationState, HotCatalog, StreamSchema, TableKind};

use crate::compaction::{MergeReason, plan_merges};
use crate::error::Result;
use crate::migrate::cold_schema;
use crate::store::ColdStore;
use crate::table::ColdTable;

/// The last failure of a generation's migration, by stream and generation id, as the
/// lifecycle manager records it.
#[derive(Debug, Clone, Default)]
pub struct Failures(Arc<Mutex<HashMap<(String, String), String>>>);

impl Failures {
    pub fn set(&self, stream: &str, segment: &str, error: Option<String>) {
        let mut map = self.0.lock().expect("failures lock poisoned");
        let key = (stream.to_string(), segment.to_string());
        match error {
            Some(e) => map.insert(key, e),
            None => map.remove(&key),
        };
    }

    fn get(&self, stream: &str, segment: &str) -> Option<String> {
        self.0.lock().expect("failures lock poisoned").get(&(stream.to_string(), segment.to_string())).cloned()
    }
}

/// One hot generation or cold segment and its next step.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub tier: &'static str,
    /// Its table: the stream's, or for error rows `<stream>_errors`.
    pub table: String,
    pub id: String,
    pub state: &'static str,
    pub rows: u64,
    pub bytes: u64,
    /// Seconds since it was created (hot) or since its newest row (cold).
    pub age_s: u64,
    pub next: String,
    /// When `next` is due, RFC 3339 (UTC); `None` when nothing is scheduled.
    pub at: Option<String>,
    /// The policy key (and its value) that decides `next`, or what it waits for.
    pub why: String,
    /// The last failure of this step, when it is being tried again.
    pub error: Option<String>,
}

/// What the lifecycle will do to one stream's data.
#[derive(Debug, Clone, Serialize)]
pub struct StreamPlan {
    pub stream: String,
    pub cold_version: Option<u64>,
    pub entries: Vec<Entry>,
}

/// Everything `explain` needs, cheap to clone into the HTTP state.
#[derive(Clone)]
pub struct Explainer {
    pub store: ColdStore,
    pub catalog: HotCatalog,
    pub streams: Vec<StreamConfig>,
    pub failures: Failures,
}

impl Explainer {
    /// The plan of every stream `allowed` lets through (all of them, or one by name).
    pub async fn explain(&self, allowed: impl Fn(&str) -> bool) -> Result<Vec<StreamPlan>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for stream in self.streams.iter().filter(|s| allowed(&s.name)) {
            out.push(self.stream_plan(stream, now).await?);
        }
        Ok(out)
    }

    async fn stream_plan(&self, stream: &StreamConfig, now: SystemTime) -> Result<StreamPlan> {
        let policy = &stream.policy;
        let table = ColdTable::open(&self.store, &stream.name, &cold_schema(&StreamSchema::new(stream), TableKind::Rows)).await?;
        let cold_files = table.segment_files()?;
        let added_ms: HashMap<&str, i64> = cold_files.iter().flat_map(|f| f.generations().map(|g| (g, f.added_ms))).collect();
        let mut entries = Vec::new();
        for generation in self.catalog.snapshot(&stream.name) {
            let info = generation.info();
            let meta = &generation.meta;
            let id = meta.id.to_string();
            let (state, next, at, why) = match meta.state {
                GenerationState::Active => (
                    "active",
                    "roll over".to_string(),
                    Some(ms(meta.created_ms) + policy.rollover_max_age.0),
                    format!(
                        "policy.rollover_max_age = {} (sooner at rollover_max_docs = {} or rollover_max_bytes = {})",
                        policy.rollover_max_age, policy.rollover_max_docs, policy.rollover_max_bytes
                    ),
                ),
                GenerationState::Sealed if added_ms.contains_key(id.as_str()) => (
                    "migrated",
                    "delete from hot".to_string(),
                    Some(ms(added_ms[id.as_str()]) + policy.hot_grace.0),
                    format!("policy.hot_grace = {} after its cold commit", policy.hot_grace),
                ),
                GenerationState::Sealed => (
                    "sealed",
                    "migrate to cold".to_string(),
                    Some(ms(meta.sealed_ms.unwrap_or(meta.created_ms)) + policy.hot_for.0),
                    format!("policy.hot_for = {} after rollover", policy.hot_for),
                ),
                GenerationState::Unknown => (
                    "unknown",
                    "nothing (read-only)".to_string(),
                    None,
                    "generation.json is unreadable or from a newer version".to_string(),
                ),
            };
            // Retention comes first when it is due sooner.
            let expires = info.time_range_us.map(|(_, hi)| UNIX_EPOCH + Duration::from_micros(hi.max(0) as u64) + policy.retention.0);
            let (next, at, why) = match (meta.state, expires) {
                (GenerationState::Sealed, Some(t)) if at.is_none_or(|at| t < at) => {
                    ("delete (retention)".to_string(), Some(t), format!("policy.retention = {} after its newest row", policy.retention))
                }
                _ => (next, at, why),
            };
            entries.push(Entry {
                tier: "hot",
                table: stream.name.clone(),
                state,
                rows: info.num_docs,
                bytes: info.num_bytes,
                age_s: age(now, ms(meta.created_ms)),
                next,
                at: at.map(rfc3339),
                why,
                error: self.failures.get(&stream.name, &id),
                id,
            });
        }
        // Read only if it exists: explaining changes nothing.
        let errors_name = TableKind::Errors.table_name(&stream.name);
        let error_files = match ColdTable::open_existing(&self.store, &errors_name).await? {
            Some(errors) => errors.segment_files()?,
            None => Vec::new(),
        };
        // Each segment a merge will take: when, with how many others, and why.
        let (target, after) = (policy.compaction_target_size.0, policy.compact_after.0);
        let merges: HashMap<String, (i64, usize, String)> = [&cold_files, &error_files]
            .into_iter()
            .flat_map(|files| plan_merges(files, target, after))
            .flat_map(|m| {
                let why = match m.reason {
                    MergeReason::TargetReached => format!("policy.compaction_target_size = {} reached together", policy.compaction_target_size),
                    MergeReason::Quiet => format!("policy.compact_after = {} after the hour's last new segment", policy.compact_after),
                    MergeReason::OldBundle => "its bundle predates format 2".to_string(),
                };
                let (due, n) = (m.due_ms, m.sources.len());
                m.sources.into_iter().map(move |s| (s.id, (due, n, why.clone())))
            })
            .collect();
        let cold = cold_files.into_iter().map(|f| (&stream.name, f)).chain(error_files.into_iter().map(|f| (&errors_name, f)));
        for (table, file) in cold {
            let newest = file.newest_us().map(|us| UNIX_EPOCH + Duration::from_micros(us.max(0) as u64));
            let expires = newest.map(|t| t + policy.retention.0);
            let (next, at, why) = match merges.get(&file.id) {
                Some((due, n, why)) if expires.is_none_or(|t| ms(*due) < t) => {
                    let next = match n - 1 {
                        0 => "rebuild its bundle".to_string(),
                        1 => "merge with 1 other segment of its hour".to_string(),
                        others => format!("merge with {others} other segments of its hour"),
                    };
                    (next, Some(ms(*due).max(now)), why.clone())
                }
                _ => ("remove (retention)".to_string(), expires, format!("policy.retention = {} after its newest row", policy.retention)),
            };
            entries.push(Entry {
                tier: "cold",
                table: table.clone(),
                id: file.id,
                state: "live",
                rows: file.rows,
                bytes: file.bytes,
                age_s: newest.map_or(0, |t| age(now, t)),
                next,
                at: at.map(rfc3339),
                why,
                error: None,
            });
        }
        Ok(StreamPlan { stream: stream.name.clone(), cold_version: table.version(), entries })
    }
}

fn ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn age(now: SystemTime, since: SystemTime) -> u64 {
    now.duration_since(since).map_or(0, |d| d.as_secs())
}

fn rfc3339(t: SystemTime) -> String {
    let us = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    arrow::temporal_conversions::timestamp_us_to_datetime(us).map_or_else(String::new, |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}
