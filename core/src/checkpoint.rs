//! The Kafka checkpoint: for each (topic, partition), the next offset to read.
//!
//! The hot tier writes it into each tantivy commit payload, so index data and checkpoint
//! are atomic; the cold tier keeps it as Delta `txn` versions. Restarting from it gives
//! exactly-once ingest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Next offset to read per topic and partition. Offsets only move forward: merging or
/// advancing keeps the larger value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    offsets: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Checkpoint {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next offset to read for `topic`/`partition`, if any row of it was recorded.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.offsets.get(topic)?.get(&partition).copied()
    }

    /// Records that everything before `next_offset` is consumed.
    pub fn advance(&mut self, topic: &str, partition: i32, next_offset: i64) {
        let slot = match self.offsets.get_mut(topic) {
            Some(partitions) => partitions.entry(partition).or_insert(next_offset),
            None => self.offsets.entry(topic.to_string()).or_default().entry(partition).or_insert(next_offset),
        };
        *slot = (*slot).max(next_offset);
    }

    /// Keeps, per partition, the larger of both offsets.
    pub fn merge(&mut self, other: &Checkpoint) {
        for (topic, partition, next) in other.iter() {
            self.advance(topic, partition, next);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> + '_ {
        self.offsets
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |(p, o)| (t.as_str(), *p, *o)))
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a checkpoint always serializes")
    }

    pub fn from_json(s: &str) -> Result<Checkpoint, serde_json::Error> {
        serde_json::from_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_only_move_forward() {
        let mut c = Checkpoint::new();
        c.advance("a", 0, 10);
        c.advance("a", 0, 5);
        c.advance("a", 1, 3);
        assert_eq!(c.next_offset("a", 0), Some(10));
        assert_eq!(c.next_offset("a", 1), Some(3));
        assert_eq!(c.next_offset("b", 0), None);
        let mut other = Checkpoint::new();
        other.advance("a", 1, 7);
        other.advance("b", 2, 1);
        c.merge(&other);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![("a", 0, 10), ("a", 1, 7), ("b", 2, 1)]);
        assert_eq!(Checkpoint::from_json(&c.to_json()).unwrap(), c);
        assert_eq!(c.to_json(), r#"{"offsets":{"a":{"0":10,"1":7},"b":{"2":1}}}"#);
    }
}
