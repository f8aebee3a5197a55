//! Hostile SQL over the PostgreSQL wire, from three clients tierlog did not write: `psql`
//! (simple query protocol), Python psycopg 3 (libpq's extended protocol, prepared
//! statements, server-side cursors) and pgjdbc (DBeaver's driver: named server-side
//! statements, portals fetched in batches). As a user granted one stream, and again on a node
//! with no users, every attack is refused with its SQLSTATE, no file is written, no
//! setting changes for another session, and the server goes on answering.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::kafka::TextStreams;
use support::psql::{pg_port, pgjdbc, psql_state, psycopg};
use support::{node, services, unique_topic, wait_for};

const BI_PASSWORD: &str = "bi-password-42";
const OPS_PASSWORD: &str = "ops-password-42";

/// Statements that must be refused, each with its SQLSTATE. `{file}` is a path the
/// server could write; `{other}` a stream the user is not granted.
const ATTACKS: &[(&str, &str)] = &[
    ("EXPLAIN ANALYZE COPY (SELECT message FROM {other}) TO '{file}'", "25006"),
    ("EXPLAIN COPY (SELECT message FROM hdfs) TO '{file}'", "25006"),
    ("COPY (SELECT message FROM hdfs) TO '{file}'", "25006"),
    ("CREATE EXTERNAL TABLE x (a TEXT) STORED AS PARQUET LOCATION '{file}'", "25006"),
    ("INSERT INTO hdfs (message) VALUES ('x')", "25006"),
    ("EXPLAIN ANALYZE INSERT INTO hdfs (message) VALUES ('x')", "25006"),
    ("CREATE VIEW v AS SELECT 1", "25006"),
    ("PREPARE p AS SELECT 1", "25006"),
    ("SET datafusion.execution.batch_size = 1", "42501"),
    ("SET datafusion.runtime.memory_limit = '1K'", "42501"),
    ("SET work_mem = '1GB'", "42704"),
    ("SELECT count(*) FROM nowhere", "42P01"),
    ("SELECT count(* FROM hdfs", "42601"),
];

/// Statements on the stream the user is not granted.
const OTHER_STREAM: &[&str] = &[
    "SELECT count(*) FROM {other}",
    "EXPLAIN SELECT * FROM {other}",
    "EXPLAIN ANALYZE SELECT count(*) FROM {other}",
    "SELECT count(*) FROM hdfs WHERE message IN (SELECT message FROM {other})",
    "DESCRIBE {other}",
];

fn fill(template: &str, other: &str, file: &Path) -> String {
    template.replace("{other}", other).replace("{file}", &file.display().to_string())
}

/// The node, the pg port, and the two streams' line counts, once both are queryable.
fn start(users: &str) -> (node::Node, u16, usize, usize) {
    let services = services().expect("services");
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log"), ("apache", "loghub/Apache_2k.log")]);
    let config = node::config(&services, &unique_topic("hostile"), &format!("{users}\n{}", feeds.config));
    let pg = pg_port(&config);
    let mut node = node::Node::start(&config);
    node.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let (hdfs, apache) = (feeds.lines(0), feeds.lines(1));
    let (user, password) = if users.is_empty() { ("tierlog", None) } else { ("ops", Some(OPS_PASSWORD)) };
    wait_for("both streams over pg", Duration::from_secs(60), || {
        let n = |t: &str| psql_state(pg, user, password, &format!("SELECT count(*) FROM {t}")).ok();
        (n("hdfs")? == hdfs.len().to_string() && n("apache")? == apache.len().to_string()).then_some(())
    });
    (node, pg, hdfs.len(), apache.len())
}

fn state(answer: &Value) -> &str {
    answer["sqlstate"].as_str().unwrap_or("(none: it ran)")
}

/// Runs every attack over psql and psycopg as `user`; `denied` says whether the user is
/// limited to `hdfs` (then reading `apache` is an attack too).
fn attack(pg: u16, user: &str, password: Option<&str>, limited: bool, hdfs_rows: usize) {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("stolen.csv");
    let mut attacks: Vec<(String, &str)> = ATTACKS.iter().map(|(t, code)| (fill(t, "apache", &file), *code)).collect();
    if limited {
        attacks.extend(OTHER_STREAM.iter().map(|t| (fill(t, "apache", &file), "42501")));
    }

    // psql: the simple query protocol.
    for (sql, code) in &attacks {
        match psql_state(pg, user, password, sql) {
            Ok(rows) => panic!("psql as {user}: '{sql}' ran: {rows}"),
            Err((got, message)) => assert_eq!(&got, code, "psql as {user}: '{sql}': {message}"),
        }
    }
    // A cursor over the other stream, in one simple-protocol transaction.
    if limited {
        let (code, message) = psql_state(pg, user, password, "BEGIN; DECLARE c CURSOR FOR SELECT count(*) FROM apache; FETCH ALL FROM c;")
            .expect_err("DECLARE over another stream ran");
        assert_eq!(code, "42501", "{message}");
    }

    // psycopg: every attack as a parameterless statement, a parameterised one and a
    // named prepared statement, plus server-side cursors.
    let mut steps = Vec::new();
    for (sql, _) in &attacks {
        steps.push(json!({ "sql": sql }));
        steps.push(json!({ "sql": sql, "prepare": true }));
    }
    if limited {
        steps.push(json!({ "sql": "SELECT count(*) FROM apache WHERE _offset >= %s", "params": [0] }));
        steps.push(json!({ "sql": "SELECT count(*) FROM apache WHERE _offset >= %s", "params": [0], "prepare": true }));
        steps.push(json!({ "sql": "SELECT message FROM apache", "cursor": "c_other" }));
    }
    let answers = psycopg(pg, user, password, Value::Array(steps.clone()));
    let mut expected: Vec<&str> = attacks.iter().flat_map(|(_, code)| [*code, *code]).collect();
    if limited {
        expected.extend(["42501", "42501", "42501"]);
    }
    for ((step, answer), code) in steps.iter().zip(&answers).zip(&expected) {
        assert_eq!(state(answer), *code, "psycopg as {user}: {step}: {answer}");
    }
    // pgjdbc: each attack as a plain statement and as a named prepared statement.
    let mut steps: Vec<(&str, &str)> = attacks.iter().flat_map(|(sql, _)| [("query", sql.as_str()), ("prepared", sql.as_str())]).collect();
    let mut expected: Vec<&str> = attacks.iter().flat_map(|(_, code)| [*code, *code]).collect();
    if limited {
        steps.push(("fetch", "SELECT message FROM apache"));
        expected.push("42501");
    }
    for ((step, answer), code) in steps.iter().zip(pgjdbc(pg, user, password, &steps)).zip(&expected) {
        match answer {
            Ok(rows) => panic!("pgjdbc as {user}: {step:?} ran: {rows:?}"),
            Err((got, message)) => assert_eq!(&got, code, "pgjdbc as {user}: {step:?}: {message}"),
        }
    }
    assert!(!file.exists(), "a refused statement wrote {}", file.display());
    // And pgjdbc's own reads work: a plain query, a prepared one, a portal read 100 rows at a time.
    let answers = pgjdbc(
        pg,
        user,
        password,
        &[("query", "SELECT count(*) FROM hdfs"), ("prepared", "SELECT count(*) FROM hdfs"), ("fetch", "SELECT _offset FROM hdfs ORDER BY _offset")],
    );
    let offsets: Vec<String> = (0..hdfs_rows).map(|o| o.to_string()).collect();
    assert_eq!(answers[0], Ok(vec![hdfs_rows.to_string()]));
    assert_eq!(answers[1], Ok(vec![hdfs_rows.to_string()]));
    assert_eq!(answers[2].as_ref(), Ok(&offsets), "every row once, in order, over a suspended portal");

    // What drivers and tools send keeps working, and each session keeps its own settings:
    // a parameterised query, a prepared one, a server-side cursor read in batches of 500.
    let ok = psycopg(
        pg,
        user,
        password,
        json!([
            { "sql": "SET application_name = 'hostile-test'" },
            { "sql": "SET extra_float_digits = 3" },
            { "sql": "SHOW application_name" },
            { "sql": "SELECT count(*) FROM hdfs WHERE _offset >= %s", "params": [0] },
            { "sql": "SELECT count(*) FROM hdfs WHERE _offset >= %s", "params": [1000], "prepare": true },
            { "sql": "SELECT _offset FROM hdfs ORDER BY _offset", "cursor": "c_hdfs" },
            { "sql": "SELECT value FROM information_schema.df_settings WHERE name = 'datafusion.execution.batch_size'" },
            { "sql": "SHOW application_name", "new_connection": true },
        ]),
    );
    for answer in &ok {
        assert!(answer.get("sqlstate").is_none(), "psycopg as {user}: {answer}");
    }
    assert_eq!(ok[2]["rows"], json!([["hostile-test"]]));
    assert_eq!(ok[3]["rows"], json!([[hdfs_rows.to_string()]]));
    assert_eq!(ok[4]["rows"], json!([[(hdfs_rows - 1000).to_string()]]));
    let fetched: Vec<String> = ok[5]["rows"].as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
    assert_eq!(fetched, offsets, "the cursor returns every row once, in order");
    // The refused SETs changed nothing: DataFusion's default batch size.
    assert_eq!(ok[6]["rows"], json!([["8192"]]));
    // A new connection does not see the first one's application_name.
    assert_ne!(ok[7]["rows"], json!([["hostile-test"]]), "one session's SET leaked into another");

    // psql's own catalog queries list only the user's streams.
    let tables = psql_state(pg, user, password, "\\dt").unwrap();
    assert!(tables.contains("hdfs"), "{tables}");
    assert_eq!(tables.contains("apache"), !limited, "{tables}");
    let listed = psql_state(pg, user, password, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1").unwrap();
    let expected = if limited { "hdfs\nhdfs_errors" } else { "apache\napache_errors\nhdfs\nhdfs_errors" };
    assert_eq!(listed, expected);
    // And the server answers.
    assert_eq!(psql_state(pg, user, password, "SELECT count(*) FROM hdfs").unwrap(), hdfs_rows.to_string());
}

#[test]
fn hostile_sql_is_refused_for_a_user_granted_one_stream() {
    if services().is_none() {
        return;
    }
    let users = format!(
        "[[query.users]]\nname = \"bi\"\npassword = \"{BI_PASSWORD}\"\nstreams = [\"hdfs\"]\n\
         [[query.users]]\nname = \"ops\"\npassword = \"{OPS_PASSWORD}\"\nstreams = [\"*\"]\n"
    );
    let (mut node, pg, hdfs_rows, apache_rows) = start(&users);
    attack(pg, "bi", Some(BI_PASSWORD), true, hdfs_rows);
    // A user granted every stream reads both, and is refused the rest all the same.
    assert_eq!(psql_state(pg, "ops", Some(OPS_PASSWORD), "SELECT count(*) FROM apache").unwrap(), apache_rows.to_string());
    attack(pg, "ops", Some(OPS_PASSWORD), false, hdfs_rows);
    assert!(node.is_running());
}

#[test]
fn hostile_sql_is_refused_on_a_node_without_users() {
    if services().is_none() {
        return;
    }
    let (mut node, pg, hdfs_rows, _) = start("");
    attack(pg, "tierlog", None, false, hdfs_rows);
    assert!(node.is_running());
}
