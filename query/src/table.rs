//! One stream as a DataFusion table: its rows (`<stream>`) or its error rows
//! (`<stream>_errors`), read from the hot tier's generations.
//!
//! A scan pins the generations once (their tantivy searchers): whatever is committed,
//! sealed or removed while the query runs does not change its answer. Sources are a list
//! so the cold tier's segments can join as another kind of source.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream};
use tantivy::Searcher;
use tantivy::query::Query;
use crate::pushdown::{self, Pushdown};
use tierlog_hot::{ColumnKind, HotCatalog, KIND_ERROR, KIND_ROW, StreamSchema, arrow_schema, docs_of_kind, read_segment};

/// Rows read per batch from a segment.
const BATCH_ROWS: usize = 8192;

/// The virtual column saying which tier a row was read from.
pub const TIER_COLUMN: &str = "_tier";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Rows,
    Errors,
}

/// A stream's table over the hot tier.
pub struct StreamTable {
    stream: String,
    kind: TableKind,
    /// Stored columns, in table order; `_tier` follows them for row tables.
    columns: Vec<(String, ColumnKind)>,
    schema: SchemaRef,
    catalog: HotCatalog,
}

impl fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTable").field("stream", &self.stream).field("kind", &self.kind).finish()
    }
}

impl StreamTable {
    pub fn new(stream: &str, schema: &StreamSchema, kind: TableKind, catalog: HotCatalog) -> StreamTable {
        let columns = match kind {
            TableKind::Rows => schema.row_columns(),
            TableKind::Errors => StreamSchema::error_columns(),
        };
        let mut fields: Vec<Field> = arrow_schema(&columns).fields().iter().map(|f| f.as_ref().clone()).collect();
        if kind == TableKind::Rows {
            fields.push(Field::new(TIER_COLUMN, DataType::Utf8, false));
        }
        StreamTable { stream: stream.to_string(), kind, columns, schema: Arc::new(Schema::new(fields)), catalog }
    }
}

#[async_trait::async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| pushdown::support(f)).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all).clone();
        let schema = Arc::new(self.schema.project(&projection)?);
        let pushdown = Pushdown::from_filters(filters);
        // Pin every generation's committed segments now; skip those outside the time
        // bounds before reading anything.
        let mut segments = Vec::new();
        for generation in self.catalog.snapshot(&self.stream) {
            let searcher = generation.searcher();
            let queries = Arc::new(pushdown.parse(&searcher)?);
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                if pushdown.may_match_time(segment) {
                    segments.push(SegmentScan { searcher: searcher.clone(), ord, queries: Arc::clone(&queries) });
                }
            }
        }
        let read_columns: Vec<Option<(String, ColumnKind)>> =
            projection.iter().map(|i| self.columns.get(*i).cloned()).collect();
        let kind = if self.kind == TableKind::Rows { KIND_ROW } else { KIND_ERROR };
        Ok(Arc::new(HotScanExec::new(schema, segments, read_columns, kind, limit)))
    }
}

/// One pinned segment to read, and the full-text queries its rows must match.
#[derive(Debug, Clone)]
struct SegmentScan {
    searcher: Searcher,
    ord: usize,
    queries: Arc<Vec<Box<dyn Query>>>,
}

/// Reads pinned hot segments, one partition per segment.
#[derive(Debug)]
struct HotScanExec {
    schema: SchemaRef,
    segments: Vec<SegmentScan>,
    /// Per output column: the stored column to read, or `None` for `_tier`.
    columns: Vec<Option<(String, ColumnKind)>>,
    kind: u64,
    limit: Option<usize>,
    properties: Arc<PlanProperties>,
}

impl HotScanExec {
    fn new(
        schema: SchemaRef,
        segments: Vec<SegmentScan>,
        columns: Vec<Option<(String, ColumnKind)>>,
        kind: u64,
        limit: Option<usize>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(segments.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        HotScanExec { schema, segments, columns, kind, limit, properties }
    }

    /// The batches of one segment, read lazily, `BATCH_ROWS` documents at a time.
    fn segment_batches(&self, partition: usize) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + 'static> {
        let scan = self.segments.get(partition);
        let segment = scan.map(|s| s.searcher.segment_reader(s.ord as u32).clone());
        let mut docs = segment.as_ref().map(|s| docs_of_kind(s, self.kind)).unwrap_or_default();
        if let (Some(scan), Some(segment)) = (scan, &segment) {
            if !scan.queries.is_empty() {
                docs = pushdown::filter_docs(&scan.searcher, segment, &scan.queries, docs)?;
            }
        }
        if let Some(limit) = self.limit {
            docs.truncate(limit);
        }
        let stored: Vec<(String, ColumnKind)> = self.columns.iter().flatten().cloned().collect();
        let (columns, schema) = (self.columns.clone(), Arc::clone(&self.schema));
        let chunks: Vec<Vec<u32>> = docs.chunks(BATCH_ROWS).map(<[u32]>::to_vec).collect();
        Ok(chunks.into_iter().map(move |chunk| {
            let segment = segment.as_ref().expect("chunks exist only for a segment");
            let stored_arrays = if stored.is_empty() {
                Vec::new() // count(*): rows without columns
            } else {
                let batch = read_segment(segment, &chunk, &stored).map_err(|e| DataFusionError::External(Box::new(e)))?;
                batch.columns().to_vec()
            };
            // Place the stored columns and the constant `_tier` in projection order.
            let mut stored_iter = stored_arrays.iter();
            let arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|c| match c {
                    Some(_) => Arc::clone(stored_iter.next().expect("one array per stored column")),
                    None => Arc::new(StringArray::from(vec!["hot"; chunk.len()])) as ArrayRef,
                })
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &options).map_err(Into::into)
        }))
    }
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HotScanExec: segments={}, limit={:?}", self.segments.len(), self.limit)
    }
}

impl ExecutionPlan for HotScanExec {
    fn name(&self) -> &str {
        "HotScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let batches = self.segment_batches(partition)?;
        // Reading a segment is blocking work; each batch is produced on demand.
        let stream = futures::stream::iter(batches);
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream)))
    }
}
