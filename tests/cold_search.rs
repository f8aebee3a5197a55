//! Searching cold segments at object-storage cost, on the S3 server: a `match()` on a
//! rare term over 20 segments reads a small share of the index bundles' bytes in a few
//! ranged GETs per segment, finds exactly the rows the input holds, and a second run is
//! answered from the caches without a single GET. `?explain=true` estimates the cold
//! bytes a query reads within 2× of what it then reads, and a user's cold byte budget
//! refuses a larger query before any Parquet GET, over HTTP, psql and psycopg alike.

mod support;

use std::time::{Duration, Instant};

use support::cold::{delta_read, s3_objects};
use support::kafka::{create_topic, lines, produce_all};
use support::psql::{pg_port, psql_as, psycopg};
use support::{dataset, http, node, services, unique_topic, wait_for};

const ADMIN: &str = "admin-token-1";
const ANALYST: &str = "analyst-token-1";
/// The analyst's budget: more than the rare-term search reads, less than a column scan.
const ANALYST_BUDGET: u64 = 256 << 10;

/// GETs of one bundle a one-term search makes at most: its tail (footer and hotcache),
/// the dictionary block of the term, the term's postings.
const GETS_PER_SEGMENT: u64 = 3;
const REPLAYS: usize = 5;
const SEGMENT_ROWS: usize = 2500;
const RARE: &str = "xylophonequasar";

/// tantivy's default tokenizer, as the test understands it: alphanumeric runs, lower-cased.
fn words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

struct Reads {
    gets: u64,
    bytes: u64,
    data_gets: u64,
    data_bytes: u64,
}

fn reads(node: &node::Node) -> Reads {
    let text = http::request(node.http, "GET", "/metrics", "", Some(ADMIN)).unwrap().body;
    Reads {
        gets: http::metric(&text, r#"tierlog_cold_requests_total{op="get",object="index"}"#),
        bytes: http::metric(&text, r#"tierlog_cold_read_bytes_total{object="index"}"#),
        data_gets: http::metric(&text, r#"tierlog_cold_requests_total{op="get",object="data"}"#),
        data_bytes: http::metric(&text, r#"tierlog_cold_read_bytes_total{object="data"}"#),
    }
}

/// `sql` over HTTP as the user of `token`; with `explain`, what it would read.
fn sql(node: &node::Node, token: &str, sql: &str, explain: bool) -> http::Response {
    let path = if explain { "/api/v1/sql?explain=true" } else { "/api/v1/sql" };
    http::request(node.http, "POST", path, &serde_json::json!({ "sql": sql }).to_string(), Some(token)).unwrap()
}

fn rare_query(term: &str) -> String {
    format!("SELECT _offset FROM access WHERE match(message, '{term}') ORDER BY _offset")
}

fn offsets_matching(node: &node::Node, query: &str) -> Vec<i64> {
    let answer = sql(node, ADMIN, &rare_query(query), false);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["rows"].as_array().unwrap().iter().map(|r| r["_offset"].as_i64().unwrap()).collect()
}

fn count(node: &node::Node, statement: &str) -> Option<u64> {
    sql(node, ADMIN, statement, false).json()["rows"][0]["n"].as_u64()
}

/// Whether `actual` is within 2× of `estimate`.
fn within_twice(estimate: u64, actual: u64) -> bool {
    estimate <= 2 * actual && actual <= 2 * estimate
}

#[test]
fn a_rare_term_over_twenty_cold_segments_reads_a_few_ranges_and_then_none() {
    let Some(services) = services() else { return };
    let topic = unique_topic("cold-search");
    create_topic(&services.kafka_brokers, &topic, 1);
    let streams = format!(
        "[[query.users]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nstreams = [\"*\"]\n\
         [[query.users]]\nname = \"analyst\"\ntoken = \"{ANALYST}\"\npassword = \"analyst-password\"\nstreams = [\"*\"]\n\
         max_cold_bytes = {ANALYST_BUDGET}\n\
         [[streams]]\nname = \"access\"\ntopics = [\"{topic}\"]\nformat = \"text\"\n[streams.policy]\ncommit_interval = \"500ms\"\n\
         rollover_max_age = \"4s\"\nrollover_max_docs = {SEGMENT_ROWS}\nhot_for = \"2s\"\nhot_grace = \"1s\"\nretention = \"36500d\"\n"
    );
    let prefix = unique_topic("cold-search");
    let config = node::config(&services, &prefix, &streams);
    let pg = pg_port(&config);
    let mut node = node::Node::start(&config);
    node.wait_ready(Duration::from_secs(60));

    // The access log replayed, with a rare token planted in seven lines spread over it.
    let log = lines(&dataset("apache/apache_access.log"));
    let mut payloads: Vec<Vec<u8>> = (0..REPLAYS).flat_map(|_| log.iter().cloned()).collect();
    for i in 0..7 {
        let at = (i * 7919 + 1234) % payloads.len();
        payloads[at] = format!("10.0.0.{i} - - [x] \"GET /{RARE}/{i} HTTP/1.1\" 404 0").into_bytes();
    }
    let expected: Vec<i64> = payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| words(&String::from_utf8_lossy(p)).any(|w| w == RARE))
        .map(|(i, _)| i as i64)
        .collect();
    assert_eq!(expected.len(), 7);
    // One generation per batch: a generation rolls over at the commit that takes it past
    // rollover_max_docs, so each batch waits for the previous one's commit.
    let started = Instant::now();
    let mut offsets = Vec::new();
    for (i, batch) in payloads.chunks(SEGMENT_ROWS).enumerate() {
        offsets.extend(produce_all(&services.kafka_brokers, &topic, batch.iter().map(Vec::as_slice)).into_iter().map(|(_, _, o)| o));
        let want = (i * SEGMENT_ROWS + batch.len()) as u64;
        wait_for("the batch committed", Duration::from_secs(120), || (count(&node, "SELECT count(*) AS n FROM access") == Some(want)).then_some(()));
    }
    assert_eq!(offsets, (0..payloads.len() as i64).collect::<Vec<_>>(), "one partition: offset == line");
    let total = payloads.len() as u64;
    wait_for("every row in the cold tier", Duration::from_secs(600), || {
        let table = delta_read(&services, &prefix, "access", &[])?;
        (table["rows"].as_u64() == Some(total)).then_some(())
    });
    eprintln!("{total} rows cold {:.1} s after the produce", started.elapsed().as_secs_f64());
    let segments = delta_read(&services, &prefix, "access", &[]).unwrap()["files"].as_u64().unwrap();
    assert!(segments >= 20, "{segments} cold segments");
    // Hot copies gone: the query reads the cold tier only.
    wait_for("the hot copies deleted", Duration::from_secs(120), || {
        (count(&node, "SELECT count(*) AS n FROM access WHERE _tier = 'hot'") == Some(0)).then_some(())
    });
    let bundles: Vec<(String, u64)> = s3_objects(&services, &format!("{prefix}/index/access/"));
    assert_eq!(bundles.len() as u64, segments, "one bundle per segment");
    let bundle_bytes: u64 = bundles.iter().map(|(_, size)| size).sum();

    let before = reads(&node);
    let t = Instant::now();
    assert_eq!(offsets_matching(&node, RARE), expected, "the rows the input holds, uncached");
    let uncached_ms = t.elapsed().as_millis();
    let after = reads(&node);
    let (gets, bytes) = (after.gets - before.gets, after.bytes - before.bytes);
    eprintln!(
        "uncached: {gets} GETs of bundles ({:.1} per segment), {bytes} of {bundle_bytes} bundle bytes ({:.2} %), {} GETs of data, {uncached_ms} ms",
        gets as f64 / segments as f64,
        100.0 * bytes as f64 / bundle_bytes as f64,
        after.data_gets - before.data_gets
    );
    assert!(gets <= GETS_PER_SEGMENT * segments, "{gets} GETs for {segments} segments");
    assert!(bytes * 20 < bundle_bytes, "read {bytes} of {bundle_bytes} bundle bytes");

    let t = Instant::now();
    assert_eq!(offsets_matching(&node, RARE), expected, "the rows the input holds, cached");
    let cached_ms = t.elapsed().as_millis();
    let again = reads(&node);
    eprintln!("cached: {} GETs of bundles, {} of data, {cached_ms} ms", again.gets - after.gets, again.data_gets - after.data_gets);
    assert_eq!((again.gets - after.gets, again.data_gets - after.data_gets), (0, 0), "a second run is answered from the caches");

    // The estimate of the rare-term query beside what its first run read of Parquet.
    let explained = sql(&node, ADMIN, &rare_query(RARE), true).json();
    let rare_estimate = explained["cold"]["estimated_bytes"].as_u64().unwrap();
    let rare_read = after.data_bytes - before.data_bytes;
    let (rare_gets_estimate, rare_gets) = (explained["cold"]["scans"][0]["estimated_gets"].as_u64().unwrap(), after.data_gets - before.data_gets);
    eprintln!("rare term: estimated {rare_estimate} bytes of Parquet in {rare_gets_estimate} GETs, read {rare_read} in {rare_gets}");
    assert!(within_twice(rare_gets_estimate, rare_gets), "estimated {rare_gets_estimate} GETs, made {rare_gets}");
    assert_eq!(explained["cold"]["scans"][0]["segments"].as_array().unwrap().len(), 7, "the seven segments with hits survive");
    assert!(explained["hot"]["generations"].as_array().unwrap().is_empty(), "nothing is hot");
    assert!(within_twice(rare_estimate, rare_read), "estimate {rare_estimate}, read {rare_read}");

    // A column scan: over the analyst's budget, refused before any Parquet GET, over
    // HTTP and psql; within the admin's, and then read as estimated.
    let scan = "SELECT max(length(message)) AS n FROM access";
    let plan = sql(&node, ANALYST, scan, true).json();
    let scan_estimate = plan["cold"]["estimated_bytes"].as_u64().unwrap();
    assert_eq!(plan["budget"]["over"], true, "{plan}");
    assert!(scan_estimate > ANALYST_BUDGET);
    let before = reads(&node);
    let refused = sql(&node, ANALYST, scan, false);
    assert_eq!(refused.status, 422, "{}", refused.body);
    let error = refused.json();
    assert_eq!(error["kind"], "over_budget");
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("would read about") && message.contains("max_cold_bytes of user 'analyst'"), "{message}");
    let pg_error = psql_as(pg, "analyst", Some("analyst-password"), scan).unwrap_err();
    assert!(pg_error.contains("would read about"), "psql: {pg_error}");
    // The driver's extended protocol, prepared and as a server-side cursor: the same gate.
    let steps = serde_json::json!([
        { "sql": scan, "prepare": true },
        { "sql": scan, "cursor": "scan" },
        { "sql": rare_query(RARE), "prepare": true },
    ]);
    let answers = psycopg(pg, "analyst", Some("analyst-password"), steps);
    assert_eq!((&answers[0]["sqlstate"], &answers[1]["sqlstate"]), (&serde_json::json!("54000"), &serde_json::json!("54000")), "{answers:?}");
    assert_eq!(answers[2]["rows"].as_array().map(Vec::len), Some(7), "{answers:?}");
    assert_eq!(reads(&node).data_gets, before.data_gets, "a refused query fetched no Parquet");
    assert_eq!(sql(&node, ANALYST, &rare_query(RARE), false).status, 200, "the narrow query is within the analyst's budget");
    let peek = sql(&node, ANALYST, "SELECT message FROM access LIMIT 5", false);
    assert_eq!((peek.status, peek.json()["num_rows"].as_u64()), (200, Some(5)), "a limit stops at the first file: {}", peek.body);

    let before = reads(&node);
    assert_eq!(sql(&node, ADMIN, scan, false).status, 200);
    let done = reads(&node);
    let (scan_read, scan_gets) = (done.data_bytes - before.data_bytes, done.data_gets - before.data_gets);
    let scan_gets_estimate = plan["cold"]["scans"][0]["estimated_gets"].as_u64().unwrap();
    eprintln!("column scan: estimated {scan_estimate} bytes of Parquet in {scan_gets_estimate} GETs, read {scan_read} in {scan_gets}");
    assert!(within_twice(scan_gets_estimate, scan_gets), "estimated {scan_gets_estimate} GETs, made {scan_gets}");
    assert!(within_twice(scan_estimate, scan_read), "estimate {scan_estimate}, read {scan_read}");
    node.terminate(Duration::from_secs(30));
}
