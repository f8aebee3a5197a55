//! SQL over HTTP on data ingested through the real broker; expected answers computed
//! from the input files by the test.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::kafka::{create_topic, lines, produce_all};
use support::{dataset, http, node, services, unique_topic, wait_for};

fn sql(node: &node::Node, statement: &str) -> Value {
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": statement })).expect("http");
    assert_eq!(r.status, 200, "{statement}: {}", r.body);
    r.json()
}

#[test]
fn sql_counts_match_the_input_files() {
    let Some(services) = services() else { return };
    let text_topic = unique_topic("sql-text");
    let dns_topic = unique_topic("sql-dns");
    create_topic(&services.kafka_brokers, &text_topic, 2);
    create_topic(&services.kafka_brokers, &dns_topic, 3);
    let streams = format!(
        "[[streams]]\nname = \"hdfs\"\ntopics = [\"{text_topic}\"]\nformat = \"text\"\n\
         [[streams]]\nname = \"dns\"\ntopics = [\"{dns_topic}\"]\nformat = \"json\"\ntimestamp_field = \"ts\"\n\
         fields = [{{ name = \"query\", type = \"text\" }}, {{ name = \"rcode_name\", type = \"keyword\" }}, \
         {{ name = \"orig_p\", type = \"i64\", source = \"id.orig_p\" }}, {{ name = \"rtt\", type = \"f64\" }}]\n"
    );
    let mut node = node::Node::start(&node::config(&services, &unique_topic("sql"), &streams));
    node.wait_ready(Duration::from_secs(60));

    let hdfs = lines(&dataset("loghub/HDFS_2k.log"));
    let dns = lines(&dataset("zeek/dns.json.gz"));
    produce_all(&services.kafka_brokers, &text_topic, hdfs.iter().map(Vec::as_slice));
    produce_all(&services.kafka_brokers, &dns_topic, dns.iter().map(Vec::as_slice));
    produce_all(&services.kafka_brokers, &dns_topic, [b"{not json".as_slice()]);

    let count = |table: &str| sql(&node, &format!("SELECT count(*) AS n FROM {table}"))["rows"][0]["n"].as_u64().unwrap();
    wait_for("everything queryable", Duration::from_secs(120), || {
        (count("hdfs") == hdfs.len() as u64 && count("dns") == dns.len() as u64).then_some(())
    });

    // Levels of the HDFS lines, counted by the test from the raw text (the third field).
    let mut levels: BTreeMap<String, u64> = BTreeMap::new();
    for line in &hdfs {
        let text = String::from_utf8_lossy(line);
        *levels.entry(text.split_whitespace().nth(3).unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(levels.get("INFO"), Some(&1920), "the dataset README's figure");
    let got = sql(&node, "SELECT split_part(message, ' ', 4) AS level, count(*) AS n FROM hdfs GROUP BY 1 ORDER BY 1");
    let got = http::counts(&got, "level", "n");
    assert_eq!(got, levels);

    // rcode_name per the DNS file (absent in some rows: NULL).
    let mut rcodes: BTreeMap<String, u64> = BTreeMap::new();
    for line in &dns {
        let v: Value = serde_json::from_slice(line).unwrap();
        let key = v["rcode_name"].as_str().unwrap_or("(null)").to_string();
        *rcodes.entry(key).or_default() += 1;
    }
    let got = sql(&node, "SELECT coalesce(rcode_name, '(null)') AS r, count(*) AS n FROM dns GROUP BY 1");
    let got = http::counts(&got, "r", "n");
    assert_eq!(got, rcodes);
    assert_eq!(rcodes["NOERROR"], 42_010);
    // The answer keeps its shape: columns in SELECT order with their types, rows with
    // their keys in that order and the NULL group as null.
    let got = sql(&node, "SELECT rcode_name, count(*) AS n FROM dns GROUP BY 1");
    let columns: Vec<(&str, &str)> =
        got["columns"].as_array().unwrap().iter().map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap())).collect();
    assert_eq!(columns, [("rcode_name", "Utf8"), ("n", "Int64")]);
    let mut by_code = BTreeMap::new();
    for row in got["rows"].as_array().unwrap() {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["rcode_name", "n"], "{row}");
        by_code.insert(row["rcode_name"].as_str().unwrap_or("(null)").to_string(), row["n"].as_u64().unwrap());
    }
    assert!(got["rows"].as_array().unwrap().iter().any(|r| r["rcode_name"].is_null()), "the NULL group is there, as null");
    assert_eq!(by_code, rcodes);

    // A per-minute histogram, computed by the test from the `ts` strings.
    let mut minutes: BTreeMap<String, u64> = BTreeMap::new();
    for line in &dns {
        let v: Value = serde_json::from_slice(line).unwrap();
        *minutes.entry(format!("{}:00Z", &v["ts"].as_str().unwrap()[..16])).or_default() += 1;
    }
    let got = sql(&node, "SELECT date_trunc('minute', _timestamp) AS m, count(*) AS n FROM dns GROUP BY 1 ORDER BY 1");
    let got = http::counts(&got, "m", "n");
    assert_eq!(got, minutes);

    // Filters the index narrows (keyword IN, number and time ranges), counted from the file.
    let parsed: Vec<Value> = dns.iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
    let count_where = |f: &dyn Fn(&Value) -> bool| parsed.iter().filter(|v| f(v)).count() as u64;
    let n = |statement: &str| sql(&node, statement)["rows"][0]["n"].as_u64();
    let checks: Vec<(&str, u64)> = vec![
        (
            "SELECT count(*) AS n FROM dns WHERE rcode_name IN ('NXDOMAIN', 'REFUSED', 'no-such-code')",
            count_where(&|v| matches!(v["rcode_name"].as_str(), Some("NXDOMAIN" | "REFUSED"))),
        ),
        ("SELECT count(*) AS n FROM dns WHERE rcode_name = 'SERVFAIL'", count_where(&|v| v["rcode_name"] == "SERVFAIL")),
        (
            "SELECT count(*) AS n FROM dns WHERE orig_p BETWEEN 1000 AND 40000",
            count_where(&|v| v["id.orig_p"].as_i64().is_some_and(|p| (1000..=40000).contains(&p))),
        ),
        (
            "SELECT count(*) AS n FROM dns WHERE orig_p >= 53 AND orig_p < 1024",
            count_where(&|v| v["id.orig_p"].as_i64().is_some_and(|p| (53..1024).contains(&p))),
        ),
        ("SELECT count(*) AS n FROM dns WHERE rtt > 0.05", count_where(&|v| v["rtt"].as_f64().is_some_and(|r| r > 0.05))),
        (
            "SELECT count(*) AS n FROM dns WHERE _timestamp >= '2018-03-24T17:30:00Z' AND _timestamp < '2018-03-24T17:31:00Z'",
            count_where(&|v| v["ts"].as_str().unwrap().starts_with("2018-03-24T17:30:")),
        ),
    ];
    for (statement, expected) in checks {
        assert!(expected > 0, "{statement}: the file has matching rows");
        assert_eq!(n(statement), Some(expected), "{statement}");
    }
    // Newest and oldest first: the top of the file's own order of `ts`.
    let mut times: Vec<&str> = parsed.iter().map(|v| &v["ts"].as_str().unwrap()[..26]).collect();
    times.sort_unstable();
    for (statement, expected) in [
        ("SELECT _timestamp FROM dns ORDER BY _timestamp DESC LIMIT 7", times.iter().rev().take(7).copied().collect::<Vec<_>>()),
        ("SELECT _timestamp FROM dns ORDER BY _timestamp LIMIT 3", times.iter().take(3).copied().collect()),
    ] {
        let got = sql(&node, statement);
        let got: Vec<String> = got["rows"].as_array().unwrap().iter().map(|r| r["_timestamp"].as_str().unwrap()[..26].to_string()).collect();
        assert_eq!(got, expected, "{statement}");
    }
    // The sort is answered by the scan (each segment's top rows from the fast field).
    let plan = sql(&node, "EXPLAIN SELECT _timestamp, query FROM dns ORDER BY _timestamp DESC LIMIT 7");
    assert!(plan.to_string().contains("order=_timestamp@0 DESC"), "{plan}");

    // Undeclared keys are queryable in `_attributes` with the JSON functions.
    let tcp = dns.iter().filter(|l| serde_json::from_slice::<Value>(l).unwrap()["proto"] == "tcp").count() as u64;
    assert!(tcp > 0);
    let got = sql(&node, "SELECT count(*) AS n FROM dns WHERE json_get_str(_attributes, 'proto') = 'tcp'");
    assert_eq!(got["rows"][0]["n"].as_u64(), Some(tcp));
    let got = sql(&node, "SELECT count(*) AS n FROM dns WHERE (_attributes->>'proto') = 'tcp'");
    assert_eq!(got["rows"][0]["n"].as_u64(), Some(tcp));

    // The malformed message is in the error table, with its reason; every row is 'hot'.
    let errors = sql(&node, "SELECT reason, payload FROM dns_errors");
    assert_eq!(errors["rows"], json!([{ "reason": "invalid_json", "payload": "{not json" }]));
    let tiers = sql(&node, "SELECT DISTINCT _tier FROM dns");
    assert_eq!(tiers["rows"], json!([{ "_tier": "hot" }]));

    // Full text: a phrase, counted by the test with a plain substring search.
    let phrase = hdfs.iter().filter(|l| String::from_utf8_lossy(l).contains("Receiving block")).count() as u64;
    assert_eq!(phrase, 292);
    let got = sql(&node, r#"SELECT count(*) AS n FROM hdfs WHERE match(message, '"Receiving block"')"#);
    assert_eq!(got["rows"][0]["n"].as_u64(), Some(phrase));
    // A term AND a keyword filter, and match_all over every text column.
    let nx = dns
        .iter()
        .filter(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            v["rcode_name"] == "NXDOMAIN" && v["query"].as_str().is_some_and(|q| q.split(|c: char| !c.is_alphanumeric()).any(|t| t.eq_ignore_ascii_case("ubuntu")))
        })
        .count() as u64;
    assert!(nx > 0);
    let got = sql(&node, "SELECT count(*) AS n FROM dns WHERE match(query, 'ubuntu') AND rcode_name = 'NXDOMAIN'");
    assert_eq!(got["rows"][0]["n"].as_u64(), Some(nx));
    // The search API: total, newest first, and a histogram that adds up.
    let r = http::get(node.http, "/api/v1/search?stream=dns&q=ubuntu%20AND%20rcode_name:NXDOMAIN&limit=5").unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = r.json();
    assert_eq!(r["total"].as_u64(), Some(nx));
    let hits: Vec<&str> = r["hits"].as_array().unwrap().iter().map(|h| h["_timestamp"].as_str().unwrap()).collect();
    assert_eq!(hits.len(), 5);
    assert!(hits.windows(2).all(|w| w[0] >= w[1]), "newest first: {hits:?}");
    let buckets: u64 = r["histogram"]["buckets"].as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(buckets, nx);
    let streams = http::get(node.http, "/api/v1/streams").unwrap().json();
    let dns_info = streams["streams"].as_array().unwrap().iter().find(|s| s["name"] == "dns").unwrap().clone();
    assert_eq!(dns_info["tiers"]["hot"]["docs"].as_u64(), Some(dns.len() as u64 + 1), "rows + the error row");
    assert_eq!(dns_info["tiers"]["hot"]["min_timestamp"], "2018-03-24T17:15:20.865716Z");

    let got = sql(&node, "SELECT count(*) AS n FROM hdfs WHERE match_all('PacketResponder AND terminating')");
    let both = hdfs
        .iter()
        .filter(|l| {
            let t = String::from_utf8_lossy(l).to_lowercase();
            let tokens: Vec<&str> = t.split(|c: char| !c.is_alphanumeric()).collect();
            tokens.contains(&"packetresponder") && tokens.contains(&"terminating")
        })
        .count() as u64;
    assert_eq!(got["rows"][0]["n"].as_u64(), Some(both));
    // Bad query syntax is a clear error; match() outside WHERE is refused.
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": "SELECT count(*) FROM hdfs WHERE match(message, 'a AND (b')" })).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("match(): cannot parse 'a AND (b' at character"), "{}", r.body);
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": "SELECT match(message, 'x') FROM hdfs" })).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("answered by the search index"), "{}", r.body);

    // Writes are refused and the server keeps answering.
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": "CREATE TABLE t AS SELECT 1" })).unwrap();
    assert_eq!((r.status, r.json()["sqlstate"].as_str()), (403, Some("25006")), "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().starts_with("tierlog is read-only: 'CREATE TABLE t"), "{}", r.body);
    assert_eq!(count("hdfs"), hdfs.len() as u64);
}

#[test]
fn memory_bomb_timeout_and_row_limit_get_clear_errors_and_the_server_goes_on() {
    let Some(services) = services() else { return };
    let topic = unique_topic("sql-guards");
    create_topic(&services.kafka_brokers, &topic, 1);
    let streams = format!(
        "[query]\nmemory_limit = \"32MiB\"\ntimeout = \"3s\"\nmax_result_rows = 1000\n\
         [[streams]]\nname = \"hdfs\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n"
    );
    let mut node = node::Node::start(&node::config(&services, &unique_topic("sql-guards"), &streams));
    node.wait_ready(Duration::from_secs(60));
    let hdfs = lines(&dataset("loghub/HDFS_2k.log"));
    produce_all(&services.kafka_brokers, &topic, hdfs.iter().map(Vec::as_slice));
    let count = || sql(&node, "SELECT count(*) AS n FROM hdfs")["rows"][0]["n"].as_u64().unwrap();
    wait_for("rows queryable", Duration::from_secs(60), || (count() == 2000).then_some(()));

    let refused = |statement: &str, status: u16| -> String {
        let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": statement })).unwrap();
        assert_eq!(r.status, status, "{statement}: {}", r.body);
        r.json()["error"].as_str().unwrap().to_string()
    };
    // 4 million concatenated messages (~600 MB) cannot fit in 32 MiB: 503, as the pool
    // is shared and the same query may pass on a quieter node.
    let e = refused("SELECT length(string_agg(a.message, ',')) FROM hdfs a CROSS JOIN hdfs b", 503);
    assert!(e.starts_with("query exceeded memory limit (32MiB = query.memory_limit)"), "{e}");
    assert_eq!(count(), 2000);

    // Ten billion generated rows take far longer than 3 s, in almost no memory.
    let started = std::time::Instant::now();
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": "SELECT sum(value % 7) FROM range(10000000000)" })).unwrap();
    eprintln!("timed out after {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!((r.status, r.json()["error"].as_str()), (504, Some("query timed out after 3s (query.timeout)")));
    assert_eq!(count(), 2000);

    // Results beyond the row limit are cut, and the answer says so.
    let r = sql(&node, "SELECT message FROM hdfs");
    assert_eq!(r["num_rows"], 1000);
    assert_eq!(r["truncated"], true);
    assert_eq!(r["warning"], "result cut at 1000 rows (query.max_result_rows)");
    let r = sql(&node, "SELECT message FROM hdfs LIMIT 1000");
    assert_eq!((r["num_rows"].as_u64(), r.get("truncated")), (Some(1000), None));
    let csv = http::post_json(node.http, "/api/v1/sql?format=csv", &json!({ "sql": "SELECT _offset FROM hdfs ORDER BY 1" })).unwrap();
    assert_eq!(csv.body.lines().count(), 1001, "header + 1000 rows");
    assert!(csv.body.starts_with("_offset\n0\n1\n"), "{}", &csv.body[..40]);
    // Streamed answers say the limit up front and whether it cut them in a trailer.
    let raw = http::raw(node.http, "POST", "/api/v1/sql?format=csv", r#"{"sql": "SELECT _offset FROM hdfs"}"#, &["TE: trailers"]);
    assert!(raw.to_ascii_lowercase().contains("x-tierlog-row-limit: 1000"), "{}", &raw[..300]);
    assert!(raw.to_ascii_lowercase().contains("x-tierlog-truncated: true"), "{}", &raw[raw.len().saturating_sub(300)..]);
    let raw = http::raw(node.http, "POST", "/api/v1/sql?format=csv", r#"{"sql": "SELECT _offset FROM hdfs LIMIT 5"}"#, &["TE: trailers"]);
    assert!(raw.to_ascii_lowercase().contains("x-tierlog-truncated: false"), "{raw}");

    // File access and writes are refused.
    assert!(refused("COPY (SELECT 1) TO '/tmp/x.csv'", 403).starts_with("tierlog is read-only"));
    assert!(refused("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'", 403).starts_with("tierlog is read-only"));
    assert!(refused("CREATE EXTERNAL TABLE x (a TEXT) STORED AS PARQUET LOCATION '/etc/passwd'", 403).starts_with("tierlog is read-only"));
    assert_eq!(count(), 2000);
    assert!(node.is_running());
}
