/// Errors of the cold tier; each names the store URL or object key involved.
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    #[error("cannot open cold store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cold store {url}: {op} {key} failed: {source}")]
    Object {
        url: String,
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cold store {url}: {key} read back different bytes than were written")]
    Corrupt { url: String, key: String },
    #[error("cold store {url}: no answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("cold store {url}: {reason}")]
    Location { url: String, reason: String },
    #[error("stream '{stream}': Delta table {table}: {source}")]
    Table {
        stream: String,
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    #[error("stream '{stream}': segment {segment}: {reason}")]
    Segment { stream: String, segment: String, reason: String },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ColdError> = std::result::Result<T, E>;
