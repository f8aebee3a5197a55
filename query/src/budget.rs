//! The cold byte budget of a query (`[query] max_cold_bytes`, or the user's own
//! `max_cold_bytes`): after planning, and before any Parquet byte is fetched, the
//! estimates of every cold scan in the plan are added up; a query over the budget is
//! refused with what it would read and how to narrow it. Both protocols run every
//! statement through [`check`] (`QueryEngine::start`).

use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::physical_plan::ExecutionPlan;
use tierlog_core::units::ByteSize;

use crate::cold::ColdEstimate;

/// A session's budget, in its config; the setting named in refusals.
#[derive(Debug, Clone)]
pub struct ColdBudget {
    pub bytes: u64,
    pub setting: String,
}

/// A query that would read more cold bytes than its budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "the query would read about {estimate} of cold data in {gets} requests ({files} files of {tables}), over the budget of {limit} \
     ({setting}): narrow the _timestamp range, add a match() condition, or select fewer columns; \
     EXPLAIN shows the files it would read"
)]
pub struct OverBudget {
    estimate: ByteSize,
    gets: u64,
    files: usize,
    tables: String,
    limit: ByteSize,
    setting: String,
}

/// Refuses `plan` when its cold scans together are estimated over `budget`.
pub fn check(plan: &Arc<dyn ExecutionPlan>, budget: &ColdBudget) -> Result<(), DataFusionError> {
    let scans = ColdEstimate::of_plan(plan);
    let bytes: u64 = scans.iter().map(|(_, e)| e.bytes).sum();
    if bytes <= budget.bytes {
        return Ok(());
    }
    let mut tables: Vec<&str> = scans.iter().map(|(t, _)| t.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    Err(DataFusionError::External(Box::new(OverBudget {
        estimate: ByteSize(bytes),
        gets: scans.iter().map(|(_, e)| e.gets).sum(),
        files: scans.iter().map(|(_, e)| e.files.len()).sum(),
        tables: tables.join(", "),
        limit: ByteSize(budget.bytes),
        setting: budget.setting.clone(),
    })))
}
