//! One stream as a DataFusion table: its rows (`<stream>`) or its error rows
//! (`<stream>_errors`), read from the hot tier's generations and the cold tier's table.
//!
//! A scan pins, once, the hot generations (their tantivy searchers) and then one version
//! of the cold table: whatever is committed, migrated or removed while the query runs
//! does not change its answer. A generation whose segment is in the pinned version is
//! read from cold only. Hot goes first: a generation is deleted only after its segment
//! is committed, so a generation missing from the hot pin is in the later cold one.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::sort_pushdown::SortOrderPushdownResult;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, SendableRecordBatchStream};
use tantivy::{DocId, Searcher, SegmentReader};
use tantivy::query::Query;
use crate::cold::ColdScan;
use crate::pushdown::{self, Pushdown, Tier};
use crate::topk::TopK;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use tierlog_cold::ColdReader;
use tierlog_hot::{HotCatalog, StreamSchema, TableColumn, TableKind, arrow_schema, docs_of_kind, read_segment};

const TIMESTAMP: &str = "_timestamp";

/// Rows read per batch from a segment.
const BATCH_ROWS: usize = 32768;

/// The virtual column saying which tier a row was read from.
pub const TIER_COLUMN: &str = "_tier";

/// A stream's table over both tiers.
pub struct StreamTable {
    stream: String,
    kind: TableKind,
    /// Stored columns, in table order; `_tier` follows them.
    columns: Vec<TableColumn>,
    schema: SchemaRef,
    catalog: HotCatalog,
    /// The cold tier, when the node has one.
    cold: Option<Arc<ColdReader>>,
}

impl fmt::Debug for StreamTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTable").field("stream", &self.stream).field("kind", &self.kind).finish()
    }
}

impl StreamTable {
    pub fn new(stream: &str, schema: &StreamSchema, kind: TableKind, catalog: HotCatalog, cold: Option<Arc<ColdReader>>) -> StreamTable {
        let columns = kind.columns(schema);
        let mut fields: Vec<Field> = arrow_schema(&columns).fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(TIER_COLUMN, DataType::Utf8, false));
        StreamTable { stream: stream.to_string(), kind, columns, schema: Arc::new(Schema::new(fields)), catalog, cold }
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
        Ok(filters.iter().map(|f| pushdown::support(f, &self.columns)).collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all).clone();
        let schema = Arc::new(self.schema.project(&projection)?);
        let pushdown = Pushdown::from_filters(filters, &self.columns);
        pushdown.check_syntax()?;
        // Pin every generation's committed segments now, then the cold version (see the
        // module doc for why in this order).
        let generations = self.catalog.snapshot(&self.stream);
        let cold_table = self.kind.table_name(&self.stream);
        let cold = match &self.cold {
            Some(reader) => Some((reader, reader.pin(&cold_table).await.map_err(|e| DataFusionError::External(Box::new(e)))?)),
            None => None,
        };
        if let Some(wait) = tierlog_core::failpoint::pause("after_cold_pin") {
            tokio::time::sleep(wait).await;
        }
        let in_cold: HashSet<&str> = cold.iter().flat_map(|(_, snapshot)| snapshot.files.iter().flat_map(|f| f.generations())).collect();
        // Skip hot segments outside the time bounds before reading anything.
        let mut segments = Vec::new();
        let wants = |tier: Tier| pushdown.tier.is_none_or(|t| t == tier);
        let hot = if wants(Tier::Hot) { generations.as_slice() } else { &[] };
        for generation in hot.iter().filter(|g| !in_cold.contains(g.meta.id.to_string().as_str())) {
            let id: Arc<str> = Arc::from(generation.meta.id.as_str());
            let searcher = generation.searcher();
            let queries = Arc::new(pushdown.parse(&searcher)?);
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                if pushdown.may_match_time(segment) {
                    segments.push(SegmentScan { generation: Arc::clone(&id), searcher: searcher.clone(), ord, queries: Arc::clone(&queries) });
                }
            }
        }
        let read_columns: Vec<Option<TableColumn>> =
            projection.iter().map(|i| self.columns.get(*i).cloned()).collect();
        let kind = self.kind.doc_kind();
        // The cold tier is pinned even for `_tier = 'hot'`: it says which hot
        // generations are already cold (in their grace period) and so not hot rows.
        let cold_plan = match &cold {
            Some((reader, snapshot)) if wants(Tier::Cold) => {
                let scan = ColdScan { reader, table: &cold_table, snapshot, schema: &self.schema, projection: &projection, filters, pushdown: &pushdown, limit };
                scan.plan(state).await?
            }
            _ => None,
        };
        let hot_plan: Arc<dyn ExecutionPlan> = Arc::new(HotScanExec::new(schema, segments.clone(), read_columns, kind, limit));
        match cold_plan {
            None => Ok(hot_plan),
            Some(cold_plan) if segments.is_empty() => Ok(cold_plan),
            Some(cold_plan) => UnionExec::try_new(vec![hot_plan, cold_plan]),
        }
    }
}

/// One pinned segment to read, and the full-text queries its rows must match.
#[derive(Debug, Clone)]
struct SegmentScan {
    /// Its generation's id, for plans.
    generation: Arc<str>,
    searcher: Searcher,
    ord: usize,
    queries: Arc<Vec<Box<dyn Query>>>,
}

/// The rows of each segment among the top `limit` of a scan, and the memory they hold.
#[derive(Debug)]
struct TopRows {
    per_segment: Vec<Vec<DocId>>,
    _reservation: MemoryReservation,
}

/// Reads pinned hot segments, one partition per segment.
#[derive(Debug, Clone)]
struct HotScanExec {
    schema: SchemaRef,
    segments: Vec<SegmentScan>,
    /// Per output column: the stored column to read, or `None` for `_tier`.
    columns: Vec<Option<TableColumn>>,
    kind: u64,
    /// At most this many rows per segment: the first ones, or with `order` the top ones.
    limit: Option<usize>,
    /// `ORDER BY _timestamp` pushed down: each segment emits its rows in this order,
    /// choosing the top `limit` from the fast field before reading any other column.
    order: Option<PhysicalSortExpr>,
    /// With `order` and `limit`: per segment, its share of the top `limit` rows of the
    /// whole scan, chosen once by the first partition to run, so that only those rows'
    /// other columns are read.
    top: Arc<OnceLock<std::result::Result<TopRows, Arc<DataFusionError>>>>,
    properties: Arc<PlanProperties>,
}

impl HotScanExec {
    fn new(
        schema: SchemaRef,
        segments: Vec<SegmentScan>,
        columns: Vec<Option<TableColumn>>,
        kind: u64,
        limit: Option<usize>,
    ) -> Self {
        let properties = Self::properties_for(&schema, segments.len(), None);
        HotScanExec { schema, segments, columns, kind, limit, order: None, top: Arc::default(), properties }
    }

    fn properties_for(schema: &SchemaRef, segments: usize, order: Option<&PhysicalSortExpr>) -> Arc<PlanProperties> {
        let equivalence = match order {
            Some(order) => EquivalenceProperties::new_with_orderings(Arc::clone(schema), [[order.clone()]]),
            None => EquivalenceProperties::new(Arc::clone(schema)),
        };
        Arc::new(PlanProperties::new(
            equivalence,
            Partitioning::UnknownPartitioning(segments.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ))
    }

    /// The documents of a segment that the table kind and the pushed-down queries keep.
    fn matching(&self, scan: &SegmentScan, segment: &SegmentReader) -> Result<Vec<DocId>> {
        if scan.queries.is_empty() {
            return Ok(docs_of_kind(segment, self.kind, None));
        }
        let hits = pushdown::matching_docs(&scan.searcher, segment, &scan.queries)?;
        Ok(docs_of_kind(segment, self.kind, Some(hits)))
    }

    /// The documents of a segment that match, their memory reserved from the pool.
    fn matching_reserved(&self, scan: &SegmentScan, segment: &SegmentReader, reservation: &mut MemoryReservation) -> Result<Vec<DocId>> {
        let docs = self.matching(scan, segment)?;
        reservation.try_grow(docs.capacity() * std::mem::size_of::<DocId>())?;
        Ok(docs)
    }

    /// Feeds `docs` of `segment`, keyed by `_timestamp`, to `top` with `id` of each.
    fn feed<K: Ord + Copy>(segment: &SegmentReader, docs: &[DocId], top: &mut TopK<K>, id: impl Fn(DocId) -> K) -> Result<()> {
        let column = segment.fast_fields().date(TIMESTAMP).ok();
        for &d in docs {
            let t = column.as_ref().and_then(|c| c.first(d)).map_or(i64::MIN, |t| t.into_timestamp_micros());
            top.push(t, id(d))?;
        }
        Ok(())
    }

    /// Per segment, its rows among the top `limit` of all segments, in order: one heap
    /// for the whole scan, so at most `limit` candidates are held, reserved.
    fn global_top(&self, order: &PhysicalSortExpr, reservation: &mut MemoryReservation) -> Result<TopRows> {
        let mut top = TopK::new(self.limit, order.options.descending, reservation.new_empty());
        for (i, scan) in self.segments.iter().enumerate() {
            let segment = scan.searcher.segment_reader(scan.ord as u32);
            let docs = self.matching_reserved(scan, segment, reservation)?;
            Self::feed(segment, &docs, &mut top, |d| (i, d))?;
            reservation.shrink(docs.capacity() * std::mem::size_of::<DocId>());
        }
        let (candidates, reservation) = top.into_sorted();
        let mut per_segment = vec![Vec::new(); self.segments.len()];
        for (_, (i, d)) in candidates {
            per_segment[i].push(d);
        }
        Ok(TopRows { per_segment, _reservation: reservation })
    }

    /// The batches of one segment, read lazily, `BATCH_ROWS` documents at a time. The
    /// document lists and the batch being read hold memory reserved from the pool.
    fn segment_batches(
        &self,
        partition: usize,
        context: &TaskContext,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + 'static> {
        let mut reservation = MemoryConsumer::new(format!("HotScanExec[{partition}]")).register(context.memory_pool());
        let scan = self.segments.get(partition);
        let segment = scan.map(|s| s.searcher.segment_reader(s.ord as u32).clone());
        let docs = match (scan, &segment, &self.order) {
            (Some(_), Some(_), Some(order)) if self.limit.is_some() => {
                // The chosen rows stay reserved as long as the plan holds them.
                let top = self.top.get_or_init(|| {
                    let mut reservation = MemoryConsumer::new("HotScanExec top-k").register(context.memory_pool());
                    self.global_top(order, &mut reservation).map_err(Arc::new)
                });
                let top = top.as_ref().map_err(|e| DataFusionError::Shared(Arc::clone(e)))?;
                top.per_segment[partition].clone()
            }
            (Some(scan), Some(segment), Some(order)) => {
                let docs = self.matching_reserved(scan, segment, &mut reservation)?;
                let mut top = TopK::new(self.limit, order.options.descending, reservation.new_empty());
                Self::feed(segment, &docs, &mut top, |d| d)?;
                top.into_sorted().0.into_iter().map(|(_, d)| d).collect()
            }
            (Some(scan), Some(segment), None) => {
                let mut docs = self.matching_reserved(scan, segment, &mut reservation)?;
                docs.truncate(self.limit.unwrap_or(usize::MAX));
                docs
            }
            _ => Vec::new(),
        };
        reservation.resize(docs.capacity() * std::mem::size_of::<DocId>());
        let stored: Vec<TableColumn> = self.columns.iter().flatten().cloned().collect();
        let (columns, schema) = (self.columns.clone(), Arc::clone(&self.schema));
        let docs = Arc::new(docs);
        let docs_bytes = reservation.size();
        Ok((0..docs.len()).step_by(BATCH_ROWS).map(move |start| {
            let chunk = &docs[start..docs.len().min(start + BATCH_ROWS)];
            // The batch being read counts until the next one replaces it.
            reservation.resize(docs_bytes);
            let segment = segment.as_ref().expect("chunks exist only for a segment");
            let stored_arrays = if stored.is_empty() {
                Vec::new() // count(*): rows without columns
            } else {
                let batch = read_segment(segment, chunk, &stored).map_err(|e| DataFusionError::External(Box::new(e)))?;
                batch.columns().to_vec()
            };
            // Place the stored columns and the constant `_tier` in projection order.
            let mut stored_iter = stored_arrays.iter();
            let arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|c| match c {
                    Some(_) => Arc::clone(stored_iter.next().expect("one array per stored column")),
                    None => Arc::new(StringArray::from(vec![Tier::Hot.name(); chunk.len()])) as ArrayRef,
                })
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(chunk.len()));
            let batch = RecordBatch::try_new_with_options(Arc::clone(&schema), arrays, &options)?;
            reservation.try_grow(batch.get_array_memory_size())?;
            Ok(batch)
        }))
    }
}

impl HotScanExec {
    /// The generations it reads, in order, each once.
    fn generations(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for segment in &self.segments {
            if out.last().is_none_or(|g| **g != *segment.generation) {
                out.push(segment.generation.to_string());
            }
        }
        out
    }
}

/// The hot generations every hot scan in `plan` reads.
pub(crate) fn hot_generations(plan: &Arc<dyn ExecutionPlan>) -> Vec<String> {
    let mut out = Vec::new();
    crate::cold::for_each_node(plan, &mut |node| {
        if let Some(scan) = node.downcast_ref::<HotScanExec>() {
            out.extend(scan.generations());
        }
    });
    out
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HotScanExec: segments={}, generations=[{}], limit={:?}", self.segments.len(), self.generations().join(", "), self.limit)?;
        if let Some(order) = &self.order {
            write!(f, ", order={order}")?;
        }
        Ok(())
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

    /// `ORDER BY _timestamp [ASC|DESC]`: every segment sorts by the fast field, so the
    /// sort above becomes a merge, and with a limit only the top rows are read.
    fn try_pushdown_sort(&self, order: &[PhysicalSortExpr]) -> Result<SortOrderPushdownResult<Arc<dyn ExecutionPlan>>> {
        let [wanted] = order else { return Ok(SortOrderPushdownResult::Unsupported) };
        let on_timestamp = wanted
            .expr
            .downcast_ref::<PhysicalColumn>()
            .is_some_and(|c| c.name() == TIMESTAMP && self.schema.fields().get(c.index()).is_some_and(|f| f.name() == TIMESTAMP));
        if !on_timestamp || self.order.is_some() {
            return Ok(SortOrderPushdownResult::Unsupported);
        }
        let mut sorted = self.clone();
        sorted.order = Some(wanted.clone());
        sorted.top = Arc::default();
        sorted.properties = Self::properties_for(&self.schema, self.segments.len(), Some(wanted));
        Ok(SortOrderPushdownResult::Exact { inner: Arc::new(sorted) })
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        let mut limited = self.clone();
        limited.top = Arc::default();
        limited.limit = match (self.limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Some(Arc::new(limited))
    }

    fn fetch(&self) -> Option<usize> {
        self.limit
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let batches = self.segment_batches(partition, &context)?;
        // Reading a segment is blocking work; each batch is produced on demand.
        let stream = futures::stream::iter(batches);
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream)))
    }
}
