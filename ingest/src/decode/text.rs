//! `text`: the UTF-8 payload is the `message` column; the time is the Kafka record time.

use tantivy::TantivyDocument;
use tierlog_hot::{RowOrigin, StreamSchema};

use super::{DecodeError, utf8};

pub(super) fn decode(
    schema: &StreamSchema,
    origin: &RowOrigin<'_>,
    payload: &[u8],
    out: &mut Vec<TantivyDocument>,
) -> Result<(), DecodeError> {
    let text = utf8(payload)?;
    let mut doc = schema.row(origin, 0, origin.kafka_time_us);
    doc.add_text(schema.columns[0].field, text);
    out.push(doc);
    Ok(())
}
