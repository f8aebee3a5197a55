//! tierlog-cold: the cold tier on object storage — the object store itself (`file://` or
//! `s3://`), and, as they land, the Parquet + index-bundle writer, the Delta table, the
//! remote index reader with its caches, and the lifecycle manager (DESIGN.md §5).

mod error;
mod store;

pub use error::{ColdError, Result};
pub use store::ColdStore;
