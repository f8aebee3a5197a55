//! The statement gate, attacked through the engine as the HTTP API calls it: as a user
//! granted one stream, and as the open node (no users). Every attack is refused with
//! its kind, writes no file, and changes nothing for the next statement.

mod common;

use tierlog_hot::HotCatalog;
use tierlog_query::{Access, ErrorKind, Grant, QueryEngine};

const CONFIG: &str = r#"
[query]
memory_limit = "64MiB"
[[query.users]]
name = "bi"
token = "bi-token-0123456789"
streams = ["hdfs"]
[[streams]]
name = "hdfs"
topics = ["hdfs"]
format = "text"
[[streams]]
name = "apache"
topics = ["apache"]
format = "text"
"#;

struct Fixture {
    engine: QueryEngine,
    bi: Grant,
    _dir: tempfile::TempDir,
    out: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let config = common::parse(CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let catalog = HotCatalog::new();
    for (n, stream) in config.streams.iter().enumerate() {
        common::write(dir.path(), &catalog, stream, |hot| {
            let schema = hot.schema().clone();
            for offset in 0..(3 + n as i64) {
                let mut doc = schema.row(&common::origin(&stream.topics[0], offset), 0, 1_000_000 + offset);
                doc.add_text(schema.columns[0].field, format!("{} line {offset}", stream.name));
                hot.add(doc, 10).unwrap();
                hot.advance(&stream.topics[0], 0, offset + 1);
            }
        });
    }
    let engine = common::engine(&config, &catalog);
    let bi = Access::new(&config.query).bearer(Some("Bearer bi-token-0123456789")).unwrap();
    Fixture { engine, bi, _dir: dir, out: tempfile::tempdir().unwrap() }
}

fn run(f: &Fixture, grant: &Grant, sql: &str) -> Result<Vec<String>, (ErrorKind, String)> {
    common::run(&f.engine, grant, sql)
}

fn refused(f: &Fixture, grant: &Grant, sql: &str) -> (ErrorKind, String) {
    match run(f, grant, sql) {
        Ok(rows) => panic!("{sql}: ran and returned {rows:?}"),
        Err(e) => e,
    }
}

#[test]
fn attacks_are_refused_for_a_limited_user_and_on_an_open_node() {
    let f = fixture();
    let file = f.out.path().join("stolen.csv");
    let path = file.display();
    for grant in [&f.bi, &Grant::All] {
        let attacks: Vec<(String, ErrorKind)> = vec![
            (format!("COPY (SELECT message FROM apache) TO '{path}'"), ErrorKind::ReadOnly),
            (format!("EXPLAIN COPY (SELECT message FROM apache) TO '{path}'"), ErrorKind::ReadOnly),
            (format!("EXPLAIN ANALYZE COPY (SELECT message FROM hdfs) TO '{path}'"), ErrorKind::ReadOnly),
            // DataFusion's CSV form does not parse in the PostgreSQL dialect both protocols use.
            (format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{path}'"), ErrorKind::Syntax),
            (format!("EXPLAIN CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{path}'"), ErrorKind::Syntax),
            (format!("CREATE EXTERNAL TABLE x (a INT) STORED AS PARQUET LOCATION '{path}'"), ErrorKind::ReadOnly),
            ("INSERT INTO hdfs (message) VALUES ('x')".into(), ErrorKind::ReadOnly),
            ("EXPLAIN ANALYZE INSERT INTO hdfs (message) VALUES ('x')".into(), ErrorKind::ReadOnly),
            ("CREATE TABLE t AS SELECT 1".into(), ErrorKind::ReadOnly),
            ("CREATE VIEW v AS SELECT * FROM hdfs".into(), ErrorKind::ReadOnly),
            ("DROP TABLE hdfs".into(), ErrorKind::ReadOnly),
            ("PREPARE p AS SELECT count(*) FROM hdfs".into(), ErrorKind::ReadOnly),
            ("SET datafusion.runtime.memory_limit = '1K'".into(), ErrorKind::SettingDenied),
            ("SET datafusion.execution.batch_size = 1".into(), ErrorKind::SettingDenied),
            ("SET application_name = 'x'".into(), ErrorKind::ReadOnly),
            ("DECLARE c CURSOR FOR SELECT 1".into(), ErrorKind::ReadOnly),
            ("SELECT count(* FROM hdfs".into(), ErrorKind::Syntax),
            ("SELECT * FROM nowhere".into(), ErrorKind::UndefinedTable),
            ("SELECT nope FROM hdfs".into(), ErrorKind::UndefinedColumn),
            ("SELECT 1; SELECT 2".into(), ErrorKind::Syntax),
        ];
        for (sql, kind) in attacks {
            let (got, message) = refused(&f, grant, &sql);
            assert_eq!(got, kind, "{sql}: {message}");
        }
        assert!(!file.exists(), "a refused statement wrote {path}");
        // The memory limit is what the config says: a later query still has 64 MiB.
        assert_eq!(run(&f, grant, "SELECT count(*) FROM hdfs").unwrap(), ["3"]);
    }
}

#[test]
fn a_limited_user_reads_and_lists_only_its_streams() {
    let f = fixture();
    for sql in [
        "SELECT count(*) FROM apache",
        "SELECT count(*) FROM public.apache",
        "SELECT count(*) FROM tierlog.public.apache_errors",
        "SELECT count(*) FROM hdfs WHERE message IN (SELECT message FROM apache)",
        "WITH a AS (SELECT * FROM apache) SELECT count(*) FROM a",
        "EXPLAIN SELECT * FROM apache",
        "EXPLAIN ANALYZE SELECT count(*) FROM apache",
        "DESCRIBE apache",
    ] {
        let (kind, message) = refused(&f, &f.bi, sql);
        assert_eq!(kind, ErrorKind::Denied, "{sql}: {message}");
        assert!(message.starts_with("permission denied: user 'bi' may not read table 'apache"), "{message}");
    }
    assert_eq!(run(&f, &f.bi, "SELECT count(*) FROM hdfs").unwrap(), ["3"]);
    let listed = |grant: &Grant, sql: &str| {
        let mut names = run(&f, grant, sql).unwrap();
        names.sort();
        names
    };
    let ours = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'";
    assert_eq!(listed(&f.bi, ours), ["hdfs", "hdfs_errors"]);
    assert_eq!(listed(&Grant::All, ours), ["apache", "apache_errors", "hdfs", "hdfs_errors"]);
    let pg_class = "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid \
                    WHERE n.nspname = 'public' AND c.relkind = 'r'";
    assert_eq!(listed(&f.bi, pg_class), ["hdfs", "hdfs_errors"]);
    let columns = "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema = 'public'";
    assert_eq!(listed(&f.bi, columns), ["hdfs", "hdfs_errors"]);
    // The open node reads both.
    assert_eq!(run(&f, &Grant::All, "SELECT count(*) FROM apache").unwrap(), ["4"]);
}
