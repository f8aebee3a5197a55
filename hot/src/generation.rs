//! Generations: one tantivy index each, `data/hot/<stream>/<generation-id>/`.
//!
//! A generation is *active* while it takes writes and *sealed* once rolled over; both are
//! readable. Its id sorts by creation time and is unique across nodes, and later becomes
//! its cold segment id. `generation.json` beside the index files holds what the index
//! cannot: the id's parts and the state. Everything else (docs, time range, checkpoint)
//! is read from the index itself, so it can never disagree with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{HotError, Result};

/// `YYYYMMDDTHHMMSSmmmZ-<node>-<random>`: sorts by creation time, unique across nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GenerationId(String);

impl GenerationId {
    pub fn new(node_id: &str, now: SystemTime) -> GenerationId {
        let ms = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        let (date, time) = civil_from_unix_ms(ms);
        GenerationId(format!("{date}T{time}Z-{node_id}-{:08x}", rand::random::<u32>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a folder name; `None` for names that are not generation ids.
    pub fn parse(s: &str) -> Option<GenerationId> {
        let looks_right = s.len() > 20 && s.as_bytes()[8] == b'T' && s.as_bytes()[18] == b'Z';
        looks_right.then(|| GenerationId(s.to_string()))
    }
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationState {
    /// Takes writes.
    Active,
    /// Rolled over: read-only, waiting to migrate to the cold tier.
    Sealed,
    /// Not this version's to change: `generation.json` is unreadable, or names a state
    /// that a newer version wrote. Its committed rows are read; this version never
    /// writes, seals, migrates or removes it.
    Unknown,
}

impl<'de> Deserialize<'de> for GenerationState {
    /// A state this version does not know is `Unknown`, not an error: a newer version
    /// may add states, and an older one must then keep its hands off, not delete.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Ok(match String::deserialize(deserializer)?.as_str() {
            "active" => GenerationState::Active,
            "sealed" => GenerationState::Sealed,
            _ => GenerationState::Unknown,
        })
    }
}

/// The sidecar file of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationMeta {
    pub id: GenerationId,
    pub state: GenerationState,
    /// Creation time, ms since the epoch (rollover by age counts from it).
    pub created_ms: i64,
    #[serde(default)]
    pub sealed_ms: Option<i64>,
}

const META_FILE: &str = "generation.json";

impl GenerationMeta {
    pub fn read(dir: &Path) -> Result<GenerationMeta> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| HotError::io(&path, source))?;
        serde_json::from_str(&text).map_err(|e| HotError::Corrupt { path, reason: e.to_string() })
    }

    /// Writes atomically and durably: a crash leaves the old file or the new one, never
    /// half, and the rename itself survives a power cut (the folder is synced too).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(META_FILE);
        if self.state == GenerationState::Unknown {
            return Err(HotError::Corrupt { path, reason: "refusing to overwrite a generation this version does not know".into() });
        }
        let tmp = dir.join(format!("{META_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("meta serializes");
        std::fs::write(&tmp, text).map_err(|source| HotError::io(&tmp, source))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|source| HotError::io(&tmp, source))?;
        std::fs::rename(&tmp, &path).map_err(|source| HotError::io(&path, source))?;
        std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|source| HotError::io(dir, source))?;
        Ok(())
    }

    /// Whether the folder has no `generation.json` at all (as opposed to an unreadable one).
    pub fn is_missing(dir: &Path) -> bool {
        matches!(std::fs::symlink_metadata(dir.join(META_FILE)), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The folder of generation `id` of a stream.
pub fn generation_dir(stream_dir: &Path, id: &GenerationId) -> PathBuf {
    stream_dir.join(id.as_str())
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

/// ("YYYYMMDD", "HHMMSSmmm") in UTC, from Howard Hinnant's days-from-civil inverse.
fn civil_from_unix_ms(ms: i64) -> (String, String) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, min, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    (format!("{y:04}{m:02}{d:02}"), format!("{h:02}{min:02}{s:02}{milli:03}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn states_of_a_newer_version_are_unknown_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), r#"{"id":"20261124T213000123Z-n-1","state":"uploaded","created_ms":1}"#).unwrap();
        let meta = GenerationMeta::read(dir.path()).unwrap();
        assert_eq!(meta.state, GenerationState::Unknown);
        assert!(meta.write(dir.path()).is_err());
        assert!(std::fs::read_to_string(dir.path().join(META_FILE)).unwrap().contains("uploaded"), "the file is kept as it was");
    }

    #[test]
    fn ids_sort_by_creation_time() {
        // 2026-11-24T21:30:00.123Z
        let t = UNIX_EPOCH + Duration::from_millis(1_795_555_800_123);
        let a = GenerationId::new("node-1", t);
        assert!(a.as_str().starts_with("20261124T213000123Z-node-1-"), "{a}");
        let b = GenerationId::new("node-0", t + Duration::from_millis(1));
        assert!(a < b);
        assert_eq!(GenerationId::parse(a.as_str()), Some(a));
        assert_eq!(GenerationId::parse("lost+found"), None);
        assert_eq!(civil_from_unix_ms(0), ("19700101".into(), "000000000".into()));
        assert_eq!(civil_from_unix_ms(951_782_400_000).0, "20000229");
    }
}
