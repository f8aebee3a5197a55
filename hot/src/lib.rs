//! tierlog-hot: the hot tier — tantivy generations on local disk (DESIGN.md §4).
//!
//! [`StreamSchema`] derives a stream's index schema from its config; [`HotStream`] writes
//! a stream's active generation, commits with the Kafka checkpoint in the commit payload
//! and rolls generations over; [`HotCatalog`] is what readers see: every generation with a
//! reader that reloads on commit; [`read_segment`] turns committed documents into Arrow
//! record batches.

mod catalog;
mod error;
mod generation;
mod reader;
mod schema;
mod stream;
mod upgrade;

pub use catalog::{GenerationHandle, GenerationInfo, HotCatalog};
pub use error::{HotError, Result};
pub use generation::{GenerationId, GenerationMeta, GenerationState};
pub use reader::{ColumnKind, TableColumn, TableKind, arrow_schema, docs_of_kind, read_segment};
pub use schema::{Column, KIND_ERROR, KIND_ROW, RowOrigin, StreamSchema};
pub use stream::HotStream;
