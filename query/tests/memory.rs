//! The hot scan's large allocations count against `[query] memory_limit`: a top-k whose
//! candidate list would exceed the pool fails with the memory error instead of growing,
//! a small LIMIT over the same rows works, and the process stays small (RSS printed).

mod common;

use tierlog_hot::HotCatalog;
use tierlog_query::{ErrorKind, Grant};

const ROWS: i64 = 700_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_top_k_beyond_the_memory_limit_fails_instead_of_growing() {
    let config = common::parse(
        "[query]\nmemory_limit = \"16MiB\"\n[[streams]]\nname = \"logs\"\ntopics = [\"t\"]\nformat = \"text\"\n\
         [streams.policy]\nrollover_max_docs = 10000000\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let catalog = HotCatalog::new();
    common::write(dir.path(), &catalog, &config.streams[0], |hot| {
        let schema = hot.schema().clone();
        for chunk in (0..ROWS).collect::<Vec<_>>().chunks(50_000) {
            let docs: Vec<_> = chunk
                .iter()
                .map(|&offset| {
                    let mut doc = schema.row(&common::origin("t", offset), 0, 1_000_000 + offset);
                    doc.add_text(schema.columns[0].field, "x");
                    doc
                })
                .collect();
            hot.add_all(docs.into_iter(), 0).unwrap();
        }
        hot.advance("t", 0, ROWS);
    });
    let engine = common::engine(&config, &catalog);
    let before = rss_kib();
    // 700k candidates of 32 bytes each (time, doc) cannot be held in 16 MiB.
    let (kind, message) =
        common::run(&engine, &Grant::All, "SELECT _offset FROM logs ORDER BY _timestamp DESC LIMIT 1000000").unwrap_err();
    assert_eq!(kind, ErrorKind::ResourcesExhausted, "{message}");
    assert!(message.starts_with("query exceeded memory limit (16MiB = query.memory_limit)"), "{message}");
    // The newest ten hold ten candidates at a time.
    let newest = common::run(&engine, &Grant::All, "SELECT _offset FROM logs ORDER BY _timestamp DESC LIMIT 10").unwrap();
    let expected: Vec<String> = (ROWS - 10..ROWS).rev().map(|o| o.to_string()).collect();
    assert_eq!(newest, expected);
    let after = rss_kib();
    eprintln!("RSS before the queries {before} KiB, after {after} KiB (+{} KiB)", after.saturating_sub(before));
}
