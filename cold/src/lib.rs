//! tierlog-cold: the cold tier on object storage — the object store itself (`file://` or
//! `s3://`), the Parquet + index-bundle writer, the Delta table, the reader queries pin
//! versions and fetch bundles through (with its on-disk cache), and the lifecycle
//! manager (DESIGN.md §5); every request to the store is counted (`metered.rs`).

mod bundle;
mod bundle_reader;
mod cache;
mod cached_store;
mod compaction;
mod error;
mod explain;
mod lifecycle;
mod metered;
mod migrate;
mod offsets;
mod orphans;
mod reader;
mod retention;
mod segment;
mod store;
mod table;

pub use bundle::{PackedBundle, build_bundle};
pub use bundle_reader::{Bundle, RangeSource};
pub use compaction::{Compacted, Merge, MergeReason, compact, plan_merges};
pub use error::{ColdError, Result};
pub use explain::{Entry, Explainer, Failures, StreamPlan};
pub use lifecycle::Lifecycle;
pub use migrate::{Migrated, cold_schema, migrate_generation};
pub use offsets::OffsetRuns;
pub use orphans::{Orphans, sweep_orphans};
pub use reader::{ColdReader, ColdSnapshot};
pub use segment::{FileLayout, ParquetFile, ROW_GROUP_ROWS, sort_by_timestamp, write_parquet};
pub use store::{ColdStore, MULTIPART_ABOVE};
pub use table::{ColdTable, Committed, INDEX_TAG, NewSegment, SegmentFile, register_log_stores};
