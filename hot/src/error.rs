use std::path::{Path, PathBuf};

/// Errors of the hot tier; each names the stream or the path involved.
#[derive(Debug, thiserror::Error)]
pub enum HotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("reading the hot tier: {0}")]
    Read(String),
    #[error("stream '{stream}', generation {generation}: {source}")]
    Index {
        stream: String,
        generation: String,
        #[source]
        source: tantivy::TantivyError,
    },
}

impl HotError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> HotError {
        HotError::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = HotError> = std::result::Result<T, E>;
