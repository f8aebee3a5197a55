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
