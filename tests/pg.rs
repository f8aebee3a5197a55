//! The PostgreSQL wire protocol, through the real `psql` client: the same answers as
//! HTTP and as the input file; psql's catalog queries work; writes are refused.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::kafka::{create_topic, lines, produce_all};
use support::psql::{pg_port, psql};
use support::{dataset, http, node, services, unique_topic, wait_for};

#[test]
fn psql_gets_the_same_answers_as_http_and_the_file() {
    let Some(services) = services() else { return };
    let topic = unique_topic("pg-hdfs");
    create_topic(&services.kafka_brokers, &topic, 2);
    let streams = format!("[query]\ntimeout = \"3s\"\n[[streams]]\nname = \"hdfs\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n");
    let config = node::config(&services, &unique_topic("pg"), &streams);
    let pg_port = pg_port(&config);
    let mut node = node::Node::start(&config);
    node.wait_ready(Duration::from_secs(60));
    let hdfs = lines(&dataset("loghub/HDFS_2k.log"));
    produce_all(&services.kafka_brokers, &topic, hdfs.iter().map(Vec::as_slice));
    wait_for("rows over psql", Duration::from_secs(60), || {
        (psql(pg_port, "SELECT count(*) FROM hdfs").ok()? == "2000").then_some(())
    });

    // Levels counted by the test from the raw lines.
    let mut levels: BTreeMap<String, u64> = BTreeMap::new();
    for line in &hdfs {
        *levels.entry(String::from_utf8_lossy(line).split_whitespace().nth(3).unwrap().to_string()).or_default() += 1;
    }
    let statement = "SELECT split_part(message, ' ', 4) AS level, count(*) AS n FROM hdfs GROUP BY 1 ORDER BY 1";
    let via_pg: BTreeMap<String, u64> = psql(pg_port, statement)
        .unwrap()
        .lines()
        .map(|l| {
            let (level, n) = l.split_once(',').unwrap();
            (level.to_string(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(via_pg, levels);
    let via_http = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": statement })).unwrap().json();
    let via_http = http::counts(&via_http, "level", "n");
    assert_eq!(via_http, levels);

    // Full text over pg too: the phrase count the test computes with a substring search.
    let phrase = hdfs.iter().filter(|l| String::from_utf8_lossy(l).contains("Receiving block")).count();
    let got = psql(pg_port, r#"SELECT count(*) FROM hdfs WHERE match(message, '"Receiving block"')"#).unwrap();
    assert_eq!(got, phrase.to_string());

    // What psql's \d sends on its own.
    let tables = psql(pg_port, "\\dt").unwrap();
    assert!(tables.contains("hdfs") && tables.contains("hdfs_errors"), "{tables}");
    let columns = psql(pg_port, "\\d hdfs").unwrap();
    assert!(columns.starts_with("_timestamp,timestamp with time zone"), "{columns}");
    // What DBeaver (pgjdbc) sends on connect and when it lists a schema.
    assert_eq!(psql(pg_port, "SELECT current_database()").unwrap(), "tierlog");
    psql(pg_port, "SET extra_float_digits = 3").unwrap();
    psql(pg_port, "SET application_name = 'DBeaver 24.0.0 - Main'").unwrap();
    assert_eq!(psql(pg_port, "SELECT datname FROM pg_catalog.pg_database db WHERE datname = 'tierlog'").unwrap(), "tierlog");
    let namespaces = psql(
        pg_port,
        "SELECT n.oid, n.nspname, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d \
         ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = 'pg_namespace'::regclass ORDER BY nspname",
    )
    .unwrap();
    let public = namespaces.lines().find_map(|l| l.strip_suffix(",public,")).unwrap_or_else(|| panic!("{namespaces}"));
    let relations = psql(
        pg_port,
        &format!(
            "SELECT c.relname, c.relkind, d.description FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d \
             ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass \
             WHERE c.relnamespace = {public} AND c.relkind NOT IN ('i', 'I', 'c') ORDER BY 1"
        ),
    )
    .unwrap();
    assert_eq!(relations, "hdfs,r,\nhdfs_errors,r,");

    // Writes are refused with SQLSTATE 25006, and the server answers the next query.
    for statement in ["CREATE TABLE t AS SELECT 1", "DROP TABLE hdfs", "COPY (SELECT 1) TO '/tmp/x'"] {
        let e = psql(pg_port, statement).unwrap_err();
        assert!(e.contains("tierlog is read-only"), "{statement}: {e}");
    }
    assert_eq!(psql(pg_port, "SELECT count(*) FROM hdfs").unwrap(), "2000");

    // The query timeout holds over pg too, with SQLSTATE 57014's message.
    let started = std::time::Instant::now();
    let e = psql(pg_port, "SELECT sum(value % 7) FROM range(10000000000)").unwrap_err();
    eprintln!("pg query timed out after {:.2} s", started.elapsed().as_secs_f64());
    assert!(e.contains("query timed out after 3s (query.timeout)"), "{e}");
    assert_eq!(psql(pg_port, "SELECT count(*) FROM hdfs").unwrap(), "2000");
    assert!(node.is_running());
}
