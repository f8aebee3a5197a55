//! The cold half of a stream table's scan: the Parquet files of one pinned Delta version,
//! pruned by their `_timestamp` statistics before anything is read, the other filters
//! handed to the Parquet reader (statistics, page index, bloom filters), and `match()`
//! answered by each segment's index bundle as a row selection of its file.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{CachedParquetFileReaderFactory, ParquetRowSelection};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream};
use futures::{StreamExt, TryStreamExt};
use tantivy::DocId;
use tierlog_cold::{ColdReader, ColdSnapshot, SegmentFile};
use tierlog_core::units::ByteSize;

use crate::pushdown::{self, Pushdown, Tier};
use crate::table::TIER_COLUMN;

/// Where the engine finds the cold store: every data key is relative to it.
pub const COLD_STORE_URL: &str = "tierlog://cold";

/// What DataFusion reads of a Parquet file's end at once (`metadata_size_hint`).
const FOOTER_PREFETCH: u64 = 512 << 10;

/// Bundles fetched at once while planning a `match()` over cold segments.
const BUNDLES_IN_FLIGHT: usize = 4;

/// What a stream table's scan reads from its pinned cold version.
pub struct ColdScan<'a> {
    pub reader: &'a ColdReader,
    /// The cold table: the stream's name, or its error table's.
    pub table: &'a str,
    pub snapshot: &'a ColdSnapshot,
    /// The table's schema, `_tier` last.
    pub schema: &'a SchemaRef,
    pub projection: &'a [usize],
    pub filters: &'a [Expr],
    pub pushdown: &'a Pushdown,
    pub limit: Option<usize>,
}

impl ColdScan<'_> {
    /// The plan reading the snapshot's files that may hold matching rows; `None` when
    /// none can.
    pub async fn plan(&self, session: &dyn Session) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let total = self.snapshot.files.len();
        let in_time: Vec<&SegmentFile> = self.snapshot.files.iter().filter(|f| self.may_match_time(f)).collect();
        let by_time = total - in_time.len();
        let selected = if self.pushdown.text.is_empty() {
            in_time.into_iter().map(|f| (f, None)).collect()
        } else {
            let searches: Vec<_> = in_time.into_iter().map(|file| self.index_hits(file)).collect();
            futures::stream::iter(searches).buffered(BUNDLES_IN_FLIGHT).try_collect::<Vec<_>>().await?
        };
        let files: Vec<PartitionedFile> = selected
            .iter()
            .filter(|(_, hits)| hits.as_ref().is_none_or(|docs| !docs.is_empty()))
            .map(|(file, hits)| {
                let key = self.reader.data_key(self.table, file);
                let mut part =
                    PartitionedFile::new(key.to_string(), file.bytes).with_partition_values(vec![ScalarValue::Utf8(Some(Tier::Cold.name().into()))]);
                if let Some(docs) = hits {
                    part = part.with_extension(ParquetRowSelection::new(row_selection(docs, file.rows as usize)));
                }
                part
            })
            .collect();
        let without_hits = selected.len() - files.len();
        if files.is_empty() {
            return Ok(None);
        }
        let estimate = self.estimate(&selected);
        let read = files.len();
        let groups = files.into_iter().map(|f| FileGroup::new(vec![f])).collect();
        let file_schema = Arc::new(Schema::new(self.schema.fields()[..self.schema.fields().len() - 1].to_vec()));
        let tier = Arc::new(Field::new(TIER_COLUMN, DataType::Utf8, false));
        // Footers and page indexes parsed once per file and kept in DataFusion's bounded
        // metadata cache, apart from the data bytes (which the cold store caches).
        let store_url = ObjectStoreUrl::parse(COLD_STORE_URL)?;
        let runtime = session.runtime_env();
        let readers = CachedParquetFileReaderFactory::new(runtime.object_store(&store_url)?, runtime.cache_manager.get_file_metadata_cache());
        let mut source = ParquetSource::new(TableSchema::builder(file_schema).with_table_partition_cols(vec![tier]).build())
            .with_parquet_file_reader_factory(Arc::new(readers))
            .with_enable_page_index(true)
            .with_bloom_filter_on_read(true);
        if let Some(predicate) = self.predicate(session)? {
            source = source.with_predicate(predicate);
        }
        let config = FileScanConfigBuilder::new(store_url, Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(Some(self.projection.to_vec()))?
            .with_limit(self.limit)
            .build();
        let input: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        Ok(Some(Arc::new(ColdScanExec {
            table: self.table.to_string(),
            version: self.snapshot.version,
            counts: FileCounts { total, by_time, without_hits, read },
            estimate,
            input,
        })))
    }

    /// What reading `selected` (each file with its index hits, if searched) will fetch,
    /// from the add actions' layout tags: each file's tail (footer, page index, bloom
    /// filters), and of each column the query projects or filters on, the whole chunk,
    /// or with hits at most one page per hit. A file without a layout counts whole. With
    /// a limit the scan stops once it has read that many rows (DataFusion pushes a limit
    /// into the scan only when no filter is left above it), so later files are not
    /// counted.
    fn estimate(&self, selected: &[(&SegmentFile, Option<Vec<DocId>>)]) -> ColdEstimate {
        let mut columns: BTreeSet<String> =
            self.projection.iter().filter_map(|&i| self.schema.fields().get(i)).map(|f| f.name().clone()).collect();
        for filter in self.filters.iter().filter(|f| !pushdown::is_text_query(f)) {
            columns.extend(filter.column_refs().into_iter().map(|c| c.name.clone()));
        }
        columns.remove(TIER_COLUMN);
        let mut estimate = ColdEstimate::default();
        let mut rows = 0;
        for (file, hits) in selected {
            if hits.as_ref().is_some_and(Vec::is_empty) {
                continue;
            }
            if self.limit.is_some_and(|limit| rows >= limit as u64) {
                break;
            }
            rows += hits.as_ref().map_or(file.rows, |docs| docs.len() as u64);
            let (bytes, gets) = match &file.layout {
                None => {
                    estimate.without_layout += 1;
                    (file.bytes, 3)
                }
                Some(layout) => {
                    let chunks: u64 = columns
                        .iter()
                        .filter_map(|c| layout.columns.get(c))
                        .map(|&(bytes, pages)| match hits {
                            Some(docs) => bytes.min((docs.len() as u64).min(pages) * bytes.div_ceil(pages.max(1))),
                            None => bytes,
                        })
                        .sum();
                    // DataFusion reads the last `metadata_size_hint` bytes (512 KiB) with
                    // the footer in one request, and then column data a row group at a
                    // time; a file within the hint is read in that one request.
                    let row_groups = file.rows.div_ceil(tierlog_cold::ROW_GROUP_ROWS as u64).max(1);
                    let data_gets = if chunks > 0 && file.bytes > FOOTER_PREFETCH { row_groups } else { 0 };
                    (layout.tail + chunks, 1 + data_gets)
                }
            };
            estimate.files.push(file.id.clone());
            estimate.bytes += bytes;
            estimate.gets += gets;
        }
        estimate
    }

    /// Whether a file's `_timestamp` statistics overlap the query's bounds (a file
    /// without statistics may hold anything).
    fn may_match_time(&self, file: &SegmentFile) -> bool {
        let Some((lo, hi)) = file.time_range_us else { return true };
        let bounds = self.pushdown.time;
        bounds.min_us.is_none_or(|min| hi >= min) && bounds.max_us.is_none_or(|max| lo <= max)
    }

    /// The rows of `file` that the index finds for the full-text queries (and what it
    /// can answer of the other filters), sorted: doc id == Parquet row.
    async fn index_hits<'f>(&self, file: &'f SegmentFile) -> Result<(&'f SegmentFile, Option<Vec<DocId>>)> {
        let bundle = self.reader.bundle(self.table, file).await.map_err(|e| DataFusionError::External(Box::new(e)))?;
        let queries = self.pushdown.parse_warmable(&bundle.searcher())?;
        let mut terms = Vec::new();
        for query in &queries {
            query.query_terms(&mut |term, positions| terms.push((term.clone(), positions)));
        }
        let search = |searcher: &tantivy::Searcher| pushdown::matching_docs(searcher, searcher.segment_reader(0), &queries);
        let mut docs = bundle
            .search(&terms, search)
            .await
            .map_err(|e| DataFusionError::External(format!("cold segment {} of {}: {e}", file.id, self.table).into()))??;
        docs.dedup();
        Ok((file, Some(docs)))
    }

    /// The filters the Parquet reader can prune with: all but the full-text ones, which
    /// only the index answers.
    fn predicate(&self, session: &dyn Session) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        let prunable: Vec<Expr> = self.filters.iter().filter(|f| !pushdown::is_text_query(f)).cloned().collect();
        let Some(expr) = conjunction(prunable) else { return Ok(None) };
        let schema = DFSchema::try_from(self.schema.as_ref().clone())?;
        session.create_physical_expr(expr, &schema).map(Some)
    }
}

/// A file-wide selection of the rows `docs` (sorted, distinct) out of `rows`.
fn row_selection(docs: &[DocId], rows: usize) -> RowSelection {
    let mut selectors = Vec::new();
    let mut next = 0;
    let mut i = 0;
    while i < docs.len() {
        let start = docs[i] as usize;
        let mut end = start + 1;
        i += 1;
        while i < docs.len() && docs[i] as usize == end {
            end += 1;
            i += 1;
        }
        if start > next {
            selectors.push(RowSelector::skip(start - next));
        }
        selectors.push(RowSelector::select(end - start));
        next = end;
    }
    if rows > next {
        selectors.push(RowSelector::skip(rows - next));
    }
    RowSelection::from(selectors)
}

/// What the cold part of a scan will fetch from the store, estimated while planning,
/// before any Parquet byte is read. The caches may hold some of it: then less is fetched.
#[derive(Debug, Clone, Default)]
pub struct ColdEstimate {
    /// The segments it reads (those without index hits are left out).
    pub files: Vec<String>,
    pub bytes: u64,
    pub gets: u64,
    /// Files written before layout tags, counted whole.
    pub without_layout: usize,
}

impl ColdEstimate {
    /// The estimates of every cold scan in `plan`, with their tables.
    pub fn of_plan(plan: &Arc<dyn ExecutionPlan>) -> Vec<(String, ColdEstimate)> {
        let mut out = Vec::new();
        for_each_node(plan, &mut |node| {
            if let Some(scan) = node.downcast_ref::<ColdScanExec>() {
                out.push((scan.table.clone(), scan.estimate.clone()));
            }
        });
        out
    }
}

/// Calls `f` on every node of `plan`, depth first.
pub(crate) fn for_each_node(plan: &Arc<dyn ExecutionPlan>, f: &mut dyn FnMut(&dyn ExecutionPlan)) {
    f(plan.as_ref());
    for child in plan.children() {
        for_each_node(child, f);
    }
}

#[derive(Debug, Clone, Copy)]
struct FileCounts {
    total: usize,
    by_time: usize,
    without_hits: usize,
    read: usize,
}

/// The Parquet scan of a pinned cold version, saying in plans what was pruned.
#[derive(Debug)]
struct ColdScanExec {
    table: String,
    version: Option<u64>,
    counts: FileCounts,
    estimate: ColdEstimate,
    input: Arc<dyn ExecutionPlan>,
}

impl DisplayAs for ColdScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FileCounts { total, by_time, without_hits, read } = self.counts;
        write!(f, "ColdScanExec: table={}, version={}, files={read} of {total}", self.table, self.version.map_or(-1, |v| v as i64))?;
        write!(f, " ({by_time} pruned by _timestamp statistics")?;
        if without_hits > 0 {
            write!(f, ", {without_hits} without index hits")?;
        }
        let ColdEstimate { files, bytes, gets, without_layout } = &self.estimate;
        write!(f, "), estimate: {} in {gets} GETs", ByteSize(*bytes))?;
        if *without_layout > 0 {
            write!(f, " ({without_layout} files counted whole: written before layout tags)")?;
        }
        const LISTED: usize = 20;
        write!(f, ", segments=[{}", files.iter().take(LISTED).cloned().collect::<Vec<_>>().join(", "))?;
        if files.len() > LISTED {
            write!(f, ", … {} more", files.len() - LISTED)?;
        }
        write!(f, "]")
    }
}

impl ExecutionPlan for ColdScanExec {
    fn name(&self) -> &str {
        "ColdScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(&self, _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [_] = children.as_slice() else {
            return Err(DataFusionError::Internal(format!("ColdScanExec takes one child, not {}", children.len())));
        };
        let input = children.remove(0);
        Ok(Arc::new(ColdScanExec {
            table: self.table.clone(),
            version: self.version,
            counts: self.counts,
            estimate: self.estimate.clone(),
            input,
        }))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(selection: &RowSelection) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = 0;
        for s in selection.iter() {
            if !s.skip {
                out.extend(at..at + s.row_count);
            }
            at += s.row_count;
        }
        out
    }

    #[test]
    fn selections_cover_exactly_the_hits() {
        for (docs, rows) in [(vec![], 5), (vec![0, 1, 2], 3), (vec![1, 3, 4, 9], 10), (vec![0], 1), (vec![7], 8)] {
            let selection = row_selection(&docs, rows);
            assert_eq!(rows_of(&selection), docs.iter().map(|&d| d as usize).collect::<Vec<_>>(), "{docs:?} of {rows}");
            assert_eq!(selection.iter().map(|s| s.row_count).sum::<usize>(), rows, "the selection spans the file");
        }
    }
}
