//! Which Kafka offsets a segment holds: its `tierlog.offsets` tag, per topic and
//! partition the runs of consecutive offsets of its rows, e.g.
//! `{"logs": {"0": [[0, 499], [800, 999]]}}`. Runs, not one `[first, last]`, because a
//! generation can skip offsets another node indexed (a partition that moved away and
//! came back), and migration must not take those for duplicates.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

type Partition = (String, i32);

/// Offsets held, as sorted, disjoint, inclusive runs per partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetRuns {
    runs: BTreeMap<Partition, Vec<(i64, i64)>>,
}

impl OffsetRuns {
    /// The offsets of `batch`'s rows (`_topic`, `_partition`, `_offset`).
    pub fn of_rows(batch: &RecordBatch) -> OffsetRuns {
        let mut offsets: BTreeMap<Partition, Vec<i64>> = BTreeMap::new();
        if let Some((topics, partitions, values)) = columns(batch) {
            for row in 0..batch.num_rows() {
                let key = (topics.value(row).to_string(), partitions.value(row));
                offsets.entry(key).or_default().push(values.value(row));
            }
        }
        let mut out = OffsetRuns::default();
        for (key, mut values) in offsets {
            values.sort_unstable();
            let runs = out.runs.entry(key).or_default();
            for offset in values {
                match runs.last_mut() {
                    Some((_, hi)) if offset <= *hi + 1 => *hi = (*hi).max(offset),
                    _ => runs.push((offset, offset)),
                }
            }
        }
        out
    }

    /// Adds the runs of a `tierlog.offsets` tag; a tag it cannot read is an error, so
    /// that migration never writes rows it cannot tell are new.
    pub fn add_tag(&mut self, tag: &str) -> Result<(), String> {
        let parsed: Value = serde_json::from_str(tag).map_err(|e| format!("unreadable tierlog.offsets tag {tag:?}: {e}"))?;
        let bad = || format!("unexpected tierlog.offsets tag {tag:?}");
        for (topic, partitions) in parsed.as_object().ok_or_else(bad)? {
            for (partition, runs) in partitions.as_object().ok_or_else(bad)? {
                let partition: i32 = partition.parse().map_err(|_| bad())?;
                // `[first, last]`, as the first segments were tagged, or a list of runs.
                let runs: Vec<&Value> = match runs.as_array().ok_or_else(bad)? {
                    pair if pair.first().is_some_and(Value::is_i64) => vec![runs],
                    list => list.iter().collect(),
                };
                let slot = self.runs.entry((topic.clone(), partition)).or_default();
                for run in runs {
                    let pair = run.as_array().filter(|p| p.len() == 2).ok_or_else(bad)?;
                    let (lo, hi) = (pair[0].as_i64().ok_or_else(bad)?, pair[1].as_i64().ok_or_else(bad)?);
                    slot.push((lo, hi));
                }
                slot.sort_unstable();
            }
        }
        Ok(())
    }

    /// The partitions with offsets held.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32)> + '_ {
        self.runs.keys().map(|(topic, partition)| (topic.as_str(), *partition))
    }

    pub fn holds(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let Some(runs) = self.runs.get(&(topic.to_string(), partition)) else { return false };
        // Runs from several segments may overlap; the last one starting at or before the
        // offset is not enough, so look back while runs could still reach it.
        let end = runs.partition_point(|(lo, _)| *lo <= offset);
        runs[..end].iter().rev().any(|(_, hi)| *hi >= offset)
    }

    /// A keep-mask over `batch`: false for the rows whose offsets are held here.
    pub fn unheld(&self, batch: &RecordBatch) -> BooleanArray {
        match columns(batch) {
            Some((topics, partitions, offsets)) if !self.runs.is_empty() => {
                (0..batch.num_rows()).map(|row| Some(!self.holds(topics.value(row), partitions.value(row), offsets.value(row)))).collect()
            }
            _ => BooleanArray::from(vec![true; batch.num_rows()]),
        }
    }

    /// As a `tierlog.offsets` tag.
    pub fn to_tag(&self) -> String {
        let mut topics: Map<String, Value> = Map::new();
        for ((topic, partition), runs) in &self.runs {
            let partitions = topics.entry(topic.clone()).or_insert_with(|| json!({}));
            partitions[partition.to_string()] = runs.iter().map(|(lo, hi)| json!([lo, hi])).collect();
        }
        Value::Object(topics).to_string()
    }
}

type Columns<'a> = (&'a arrow::array::StringArray, &'a arrow::array::Int32Array, &'a arrow::array::Int64Array);

fn columns(batch: &RecordBatch) -> Option<Columns<'_>> {
    let topics = batch.column_by_name("_topic")?.as_string_opt::<i32>()?;
    let partitions = batch.column_by_name("_partition")?.as_primitive_opt::<Int32Type>()?;
    let offsets = batch.column_by_name("_offset")?.as_primitive_opt::<Int64Type>()?;
    (topics.null_count() == 0 && partitions.null_count() == 0 && offsets.null_count() == 0).then_some((topics, partitions, offsets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_survive_gaps_and_old_tags() {
        let mut held = OffsetRuns::default();
        held.add_tag(r#"{"t":{"0":[[0,499],[800,999]],"1":[5,9]}}"#).unwrap();
        for (partition, offset, want) in [
            (0, 0, true),
            (0, 499, true),
            (0, 500, false),
            (0, 799, false),
            (0, 800, true),
            (0, 1000, false),
            (1, 7, true),
            (1, 10, false),
            (2, 0, false),
        ] {
            assert_eq!(held.holds("t", partition, offset), want, "{partition}/{offset}");
        }
        assert_eq!(held.to_tag(), r#"{"t":{"0":[[0,499],[800,999]],"1":[[5,9]]}}"#);
        assert!(held.add_tag(r#"{"t":{"0":"x"}}"#).is_err(), "a tag it cannot read is an error");
    }
}
