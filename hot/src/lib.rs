//! tierlog-hot: the hot tier — tantivy generations on local disk: schema from the stream
//! config, writer, commits carrying the Kafka checkpoint, rollover, and readers that
//! return Arrow record batches (DESIGN.md §4). Lands with the ingest issue.
