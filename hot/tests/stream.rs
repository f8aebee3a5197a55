//! The hot stream's durability contract, on a temp dir.

use tierlog_core::config::Config;
use tierlog_hot::{GenerationState, HotCatalog, HotStream, RowOrigin};

fn stream_config(extra_policy: &str) -> tierlog_core::config::StreamConfig {
    let text = format!(
        "[[streams]]\nname = \"logs\"\ntopics = [\"t\"]\nformat = \"text\"\n[streams.policy]\n{extra_policy}\n"
    );
    Config::parse(&text, "test.toml", std::path::Path::new("/"), &|_| None).unwrap().streams.remove(0)
}

fn add(stream: &mut HotStream, offset: i64) {
    let schema = stream.schema().clone();
    let origin = RowOrigin { topic: "t", partition: 0, offset, key: None, kafka_time_us: offset, ingest_time_us: 0 };
    let mut doc = schema.row(&origin, 0, 1_000_000 + offset);
    doc.add_text(schema.columns[0].field, format!("line {offset}"));
    stream.add(doc, 10).unwrap();
    stream.advance("t", 0, offset + 1);
}

fn total_docs(catalog: &HotCatalog) -> u64 {
    catalog.snapshot("logs").iter().map(|g| g.num_docs()).sum()
}

#[test]
fn committed_rows_and_checkpoint_survive_reopen_and_uncommitted_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = stream_config("");
    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    for offset in 0..10 {
        add(&mut stream, offset);
    }
    assert_eq!(total_docs(&catalog), 0, "nothing visible before the commit");
    let checkpoint = stream.commit().unwrap().unwrap();
    assert_eq!(checkpoint.next_offset("t", 0), Some(10));
    assert_eq!(total_docs(&catalog), 10);
    for offset in 10..15 {
        add(&mut stream, offset);
    }
    drop(stream); // a crash: the last five were never committed

    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    assert_eq!(stream.committed().next_offset("t", 0), Some(10));
    assert_eq!(total_docs(&catalog), 10);
    let generations = catalog.snapshot("logs");
    assert_eq!(generations.len(), 1, "the active generation is reopened");
    let info = generations[0].info();
    assert_eq!(info.time_range_us, Some((1_000_000, 1_000_009)));
    assert_eq!(info.checkpoint.next_offset("t", 0), Some(10));

    add(&mut stream, 10);
    stream.commit().unwrap();
    assert_eq!(total_docs(&catalog), 11);
    assert!(stream.commit().unwrap().is_none(), "nothing new to commit");
}

#[test]
fn rolls_over_on_max_docs_and_keeps_sealed_generations_readable() {
    let dir = tempfile::tempdir().unwrap();
    let config = stream_config("rollover_max_docs = 5");
    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    for offset in 0..12 {
        add(&mut stream, offset);
        if offset % 3 == 2 {
            stream.commit().unwrap();
        }
    }
    stream.commit().unwrap();
    let generations = catalog.snapshot("logs");
    let states: Vec<_> = generations.iter().map(|g| (g.meta.state, g.num_docs())).collect();
    assert_eq!(
        states,
        vec![(GenerationState::Sealed, 6), (GenerationState::Sealed, 6)],
        "each generation seals at the first commit past 5 docs"
    );
    drop(stream);
    let catalog = HotCatalog::new();
    let stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    assert_eq!(stream.committed().next_offset("t", 0), Some(12));
    assert_eq!(total_docs(&catalog), 12);
}

#[test]
fn committed_rows_read_back_as_arrow() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type};
    use tierlog_hot::{KIND_ERROR, KIND_ROW, TableColumn, docs_of_kind, read_segment};

    let text = "[[streams]]\nname = \"app\"\ntopics = [\"t\"]\nformat = \"json\"\n\
                fields = [{ name = \"level\", type = \"keyword\" }, { name = \"detail\", type = \"text\" }, { name = \"status\", type = \"i64\" }]\n";
    let config = Config::parse(text, "t.toml", std::path::Path::new("/"), &|_| None).unwrap().streams.remove(0);
    let dir = tempfile::tempdir().unwrap();
    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    let schema = stream.schema().clone();
    let col = |name: &str| schema.columns.iter().find(|c| c.name == name).unwrap().field;
    for i in 0..3i64 {
        let origin = RowOrigin { topic: "t", partition: 1, offset: i, key: None, kafka_time_us: 0, ingest_time_us: 5 };
        let mut doc = schema.row(&origin, 0, 1_000 + i);
        doc.add_text(col("level"), if i == 1 { "WARN" } else { "INFO" });
        // Named like an error-table column: the row table must still read its own field.
        doc.add_text(col("detail"), format!("hello {i}"));
        if i != 2 {
            doc.add_i64(col("status"), 200 + i);
        }
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("user".to_string(), tantivy::schema::OwnedValue::Str(format!("u{i}")));
        doc.add_object(schema.attributes, attrs);
        stream.add(doc, 1).unwrap();
        stream.advance("t", 1, i + 1);
    }
    let origin = RowOrigin { topic: "t", partition: 1, offset: 3, key: None, kafka_time_us: 9, ingest_time_us: 5 };
    stream.add(schema.error_row(&origin, tierlog_core::schema::ErrorReason::InvalidJson, "bad", b"{"), 1).unwrap();
    stream.commit().unwrap();

    let searcher = catalog.snapshot("app")[0].searcher();
    // Indexing threads may have written several segments: read them all, in offset order.
    let read = |kind, columns: &[TableColumn]| {
        let batches: Vec<_> = searcher
            .segment_readers()
            .iter()
            .map(|s| read_segment(s, &docs_of_kind(s, kind, None), columns).unwrap())
            .collect();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let order = arrow::compute::sort_to_indices(batch.column(batch.schema().index_of("_offset").unwrap()), None, None).unwrap();
        arrow::compute::take_record_batch(&batch, &order).unwrap()
    };
    let rows = read(KIND_ROW, &schema.row_columns());
    assert_eq!(rows.num_rows(), 3);
    let names: Vec<_> = rows.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["_timestamp", "_ingest_time", "_topic", "_partition", "_offset", "_record", "_key", "_attributes", "level", "detail", "status"]);
    let get = |name: &str| rows.column(rows.schema().index_of(name).unwrap()).clone();
    assert_eq!(get("_offset").as_primitive::<Int64Type>().values(), &[0, 1, 2]);
    assert_eq!(get("_partition").as_primitive::<Int32Type>().values(), &[1, 1, 1]);
    let status = get("status");
    let status = status.as_primitive::<Int64Type>();
    assert_eq!((status.value(0), status.value(1), status.is_null(2)), (200, 201, true));
    let level = arrow::compute::cast(&get("level"), &arrow::datatypes::DataType::Utf8).unwrap();
    let level: Vec<_> = level.as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(level, ["INFO", "WARN", "INFO"]);
    assert_eq!(get("detail").as_string::<i32>().value(2), "hello 2");
    assert_eq!(get("_attributes").as_string::<i32>().value(1), r#"{"user":"u1"}"#);
    assert!(get("_key").is_null(0));

    let errors = read(KIND_ERROR, &tierlog_hot::StreamSchema::error_columns());
    assert_eq!(errors.num_rows(), 1);
    let reason = arrow::compute::cast(errors.column(4), &arrow::datatypes::DataType::Utf8).unwrap();
    assert_eq!(reason.as_string::<i32>().value(0), "invalid_json");
    assert_eq!(errors.column(6).as_string::<i32>().value(0), "{");
}

/// The generation folders of the stream, oldest first.
fn generation_dirs(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(data.join("hot/logs")).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs
}

#[test]
fn recovery_never_removes_a_generation_whose_sidecar_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = stream_config("rollover_max_docs = 4");
    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    for offset in 0..12 {
        add(&mut stream, offset);
        if offset % 4 == 3 {
            stream.commit().unwrap();
        }
    }
    drop(stream);
    let dirs = generation_dirs(dir.path());
    assert_eq!(dirs.len(), 3, "three sealed generations of 4 rows");
    // One sidecar corrupt, one with a state a newer version might write, one unreadable.
    std::fs::write(dirs[0].join("generation.json"), "{ not json").unwrap();
    let newer = std::fs::read_to_string(dirs[1].join("generation.json")).unwrap().replace("\"sealed\"", "\"uploaded\"");
    std::fs::write(dirs[1].join("generation.json"), &newer).unwrap();
    std::fs::remove_file(dirs[2].join("generation.json")).unwrap();
    std::fs::create_dir(dirs[2].join("generation.json")).unwrap(); // reading it fails, it is not missing

    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    assert_eq!(total_docs(&catalog), 12, "every committed row is still served");
    assert_eq!(stream.committed().next_offset("t", 0), Some(12), "and not read again from Kafka");
    let states: Vec<_> = catalog.snapshot("logs").iter().map(|g| g.meta.state).collect();
    assert_eq!(states, vec![GenerationState::Unknown; 3]);
    assert_eq!(std::fs::read_to_string(dirs[0].join("generation.json")).unwrap(), "{ not json", "left as it was");
    assert_eq!(std::fs::read_to_string(dirs[1].join("generation.json")).unwrap(), newer, "left as it was");
    // New rows go to a new generation; the three stay.
    add(&mut stream, 12);
    stream.commit().unwrap();
    assert_eq!(total_docs(&catalog), 13);
    assert_eq!(generation_dirs(dir.path()).len(), 4);
}

#[test]
fn recovery_removes_only_generations_that_provably_hold_no_committed_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = stream_config("");
    let catalog = HotCatalog::new();
    let mut stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    add(&mut stream, 0);
    stream.commit().unwrap();
    drop(stream);
    // A crash right after a folder was made, before its sidecar: nothing in it.
    let empty = dir.path().join("hot/logs/29991231T000000000Z-n1-00000000");
    std::fs::create_dir_all(&empty).unwrap();
    let catalog = HotCatalog::new();
    let _stream = HotStream::open(dir.path(), "n1", &config, catalog.clone()).unwrap();
    assert!(!empty.exists(), "an empty folder is cleaned up");
    assert_eq!(total_docs(&catalog), 1);
}
