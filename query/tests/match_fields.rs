//! `match(column, …)` searches the index field behind the SQL column, on stream and
//! error tables alike, and a generation written before a field was declared has no
//! hits for it (rather than failing the query). Expected counts come from the rows the
//! test writes.

mod common;

use tierlog_core::schema::ErrorReason;
use tierlog_hot::HotCatalog;
use tierlog_query::Grant;

const BEFORE: &str = "[[streams]]\nname = \"app\"\ntopics = [\"t\"]\nformat = \"json\"\n";
const AFTER: &str = "[[streams]]\nname = \"app\"\ntopics = [\"t\"]\nformat = \"json\"\nfields = [{ name = \"user\", type = \"text\" }]\n";

const USERS: &[&str] = &["bob smith", "alice", "bob jones", "carol", "bob"];
const DETAILS: &[&str] = &["expected value at line 1", "invalid utf-8 sequence", "expected ',' or '}'", "too large"];

#[test]
fn match_reads_the_index_field_of_stream_and_error_columns() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = HotCatalog::new();
    // First generation: no `user` field yet, and error rows.
    let before = common::parse(BEFORE);
    common::write(dir.path(), &catalog, &before.streams[0], |hot| {
        let schema = hot.schema().clone();
        // The same users' rows, before the field existed (their user was an attribute).
        for i in 0..USERS.len() {
            hot.add(schema.row(&common::origin("t", i as i64), 0, 1_000_000), 10).unwrap();
        }
        for (i, detail) in DETAILS.iter().enumerate() {
            let origin = common::origin("t", (USERS.len() + i) as i64);
            hot.add(schema.error_row(&origin, ErrorReason::InvalidJson, detail, format!("payload {detail}").as_bytes()), 10).unwrap();
        }
        hot.advance("t", 0, (USERS.len() + DETAILS.len()) as i64);
    });
    // After `user` is declared: a new generation with the field.
    let after = common::parse(AFTER);
    let catalog = HotCatalog::new();
    let first = (USERS.len() + DETAILS.len()) as i64;
    common::write(dir.path(), &catalog, &after.streams[0], |hot| {
        let schema = hot.schema().clone();
        let user = schema.columns.iter().find(|c| c.name == "user").unwrap().field;
        for (i, name) in USERS.iter().enumerate() {
            let mut doc = schema.row(&common::origin("t", first + i as i64), 0, 2_000_000);
            doc.add_text(user, *name);
            hot.add(doc, 10).unwrap();
        }
        hot.advance("t", 0, first + USERS.len() as i64);
    });
    let engine = common::engine(&after, &catalog);
    let count = |sql: &str| common::run(&engine, &Grant::All, sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"));

    // Only the rows written after the declaration can match on `user`.
    let bobs = USERS.iter().filter(|u| u.split(' ').any(|w| w == "bob")).count();
    assert_eq!(count("SELECT count(*) FROM app WHERE match(user, 'bob')"), [bobs.to_string()]);
    assert_eq!(count("SELECT count(*) FROM app"), [(2 * USERS.len()).to_string()]);
    // The error table's columns map to their own index fields.
    let expected = DETAILS.iter().filter(|d| d.split(|c: char| !c.is_alphanumeric()).any(|w| w == "expected")).count();
    assert_eq!(count("SELECT count(*) FROM app_errors WHERE match(detail, 'expected')"), [expected.to_string()]);
    assert_eq!(count("SELECT count(*) FROM app_errors WHERE match(payload, 'large')"), ["1"]);
    assert_eq!(count("SELECT count(*) FROM app_errors WHERE match(reason, 'invalid_json')"), [DETAILS.len().to_string()]);
    assert_eq!(count("SELECT count(*) FROM app_errors WHERE match_all('utf')"), ["1"]);
    // A row table's `detail` would be its own field; the error table's is not the row's.
    assert_eq!(count("SELECT count(*) FROM app WHERE match_all('expected')"), ["0"]);
}
