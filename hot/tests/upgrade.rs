//! A generation written before tantivy's `quickwit` feature (FST term dictionaries) opens,
//! is rewritten with SSTable dictionaries from its own documents, and answers searches
//! as its input says; a rewrite a crash interrupted is completed at the next open.

use std::path::Path;

use tantivy::collector::Count;
use tantivy::query::QueryParser;
use tierlog_core::config::Config;
use tierlog_hot::{HotCatalog, HotStream};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fst-index");
const TOPIC: &str = "fixture-fst";
const GENERATION: &str = "20261203T145725813Z-fixture-1f44e414";
const OLD_SEGMENT: &str = "45a554b93a134347b1e305f2e211a659";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What the fixture's input says: every line, the rows (JSON objects with a time), and
/// the rows whose message holds `word`.
struct Expected {
    lines: u64,
    rows: u64,
    messages: Vec<String>,
}

impl Expected {
    fn read() -> Expected {
        let input = std::fs::read_to_string(Path::new(FIXTURE).join("input.ndjson")).unwrap();
        let lines: Vec<&str> = input.lines().filter(|l| !l.is_empty()).collect();
        let messages: Vec<String> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["ts"].as_str().is_some_and(|ts| ts.starts_with("2026-")))
            .map(|v| v["message"].as_str().unwrap_or_default().to_string())
            .collect();
        Expected { lines: lines.len() as u64, rows: messages.len() as u64, messages }
    }

    fn with_word(&self, word: &str) -> usize {
        self.messages.iter().filter(|m| m.split_whitespace().any(|w| w == word)).count()
    }
}

fn open(data_dir: &Path) -> (HotStream, HotCatalog) {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("stream.toml")).unwrap();
    let config = Config::parse(&text, "stream.toml", Path::new("/"), &|_| None).unwrap().streams.remove(0);
    let catalog = HotCatalog::new();
    let stream = HotStream::open(data_dir, "fixture", &config, catalog.clone()).unwrap();
    (stream, catalog)
}

fn check_answers(stream: &HotStream, catalog: &HotCatalog, expected: &Expected) {
    assert_eq!(stream.committed().next_offset(TOPIC, 0), Some(expected.lines as i64), "the checkpoint survives the rewrite");
    let generations = catalog.snapshot("fixture");
    assert_eq!(generations.len(), 1);
    assert_eq!(generations[0].num_docs(), expected.lines, "every row and error row is kept");
    let searcher = generations[0].searcher();
    let schema = stream.schema();
    let message = schema.schema().get_field("message").unwrap();
    let parser = QueryParser::for_index(searcher.index(), vec![message]);
    for word in ["zanzibar", "disk", "timeout"] {
        let found = searcher.search(&parser.parse_query(word).unwrap(), &Count).unwrap();
        assert_eq!(found, expected.with_word(word), "rows matching {word}");
        assert!(found > 0, "{word} is in the input");
    }
    let kind = schema.schema().get_field("_kind").unwrap();
    let rows = QueryParser::for_index(searcher.index(), vec![kind]).parse_query(&format!("_kind:{}", tierlog_hot::KIND_ROW)).unwrap();
    assert_eq!(searcher.search(&rows, &Count).unwrap() as u64, expected.rows, "rows by _kind");
}

fn leftovers(stream_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(stream_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn an_fst_generation_is_rewritten_and_answers_as_its_input_says() {
    let expected = Expected::read();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURE).join("hot"), &dir.path().join("hot"));
    let (mut stream, catalog) = open(dir.path());
    check_answers(&stream, &catalog, &expected);
    let stream_dir = dir.path().join("hot/fixture");
    assert_eq!(leftovers(&stream_dir), vec![GENERATION.to_string()], "no folder of the rewrite is left");
    assert!(!stream_dir.join(GENERATION).join(format!("{OLD_SEGMENT}.term")).exists(), "the FST segment was replaced");

    // The rewritten generation is the active one again and takes writes.
    let schema = stream.schema().clone();
    let origin = tierlog_hot::RowOrigin { topic: TOPIC, partition: 0, offset: expected.lines as i64, key: None, kafka_time_us: 0, ingest_time_us: 0 };
    stream.add(schema.row(&origin, 0, 1_000_000), 10).unwrap();
    stream.advance(TOPIC, 0, expected.lines as i64 + 1);
    stream.commit().unwrap().unwrap();
    drop(stream);
    let (stream, catalog) = open(dir.path());
    assert_eq!(stream.committed().next_offset(TOPIC, 0), Some(expected.lines as i64 + 1));
    assert_eq!(catalog.snapshot("fixture")[0].num_docs(), expected.lines + 1);
}

#[test]
fn a_rewrite_interrupted_between_its_renames_is_done_again() {
    let expected = Expected::read();
    let dir = tempfile::tempdir().unwrap();
    let stream_dir = dir.path().join("hot/fixture");
    // The old index moved aside, its half-built replacement not yet in place.
    copy_dir(&Path::new(FIXTURE).join("hot/fixture").join(GENERATION), &stream_dir.join(format!(".replaced-{GENERATION}")));
    std::fs::create_dir_all(stream_dir.join(format!(".upgrading-{GENERATION}"))).unwrap();
    std::fs::write(stream_dir.join(format!(".upgrading-{GENERATION}/meta.json")), b"{half").unwrap();
    let (stream, catalog) = open(dir.path());
    check_answers(&stream, &catalog, &expected);
    assert_eq!(leftovers(&stream_dir), vec![GENERATION.to_string()]);
}
