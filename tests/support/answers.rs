//! SQL answers computed by the tests from the dataset files, never by tierlog: each a
//! statement, its columns, and the rows it must return over HTTP and psql.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::node::Node;
use super::psql::psql;
use super::{dataset, http};

/// A statement and the rows (as text, in `names` order) it must answer.
pub struct Check {
    pub statement: String,
    pub names: Vec<&'static str>,
    pub expected: Vec<Vec<String>>,
}

impl Check {
    pub fn new(statement: impl Into<String>, names: &[&'static str], expected: Vec<Vec<String>>) -> Check {
        Check { statement: statement.into(), names: names.to_vec(), expected }
    }
}

/// One Apache combined-log line, parsed by the test.
pub struct Access {
    pub epoch_s: i64,
    pub ts: String,
    pub client: String,
    pub method: String,
    pub path: String,
    pub status: i64,
    pub bytes: Option<i64>,
    pub referrer: String,
    pub agent: String,
}

/// 1 for "Jan" … 12 for "Dec".
pub fn month(name: &str) -> i64 {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    MONTHS.iter().position(|m| *m == name).unwrap_or_else(|| panic!("month '{name}'")) as i64 + 1
}

/// `epoch_s` as `YYYY-MM-DDTHH:MM:SSZ` (the civil-from-days algorithm).
pub fn utc(epoch_s: i64) -> String {
    let (days, secs) = (epoch_s.div_euclid(86_400), epoch_s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

pub fn parse_access(line: &str) -> Access {
    let (client, rest) = line.split_once(' ').unwrap();
    let (time, rest) = rest.split_once('[').unwrap().1.split_once("] \"").unwrap();
    // 17/May/2015:10:05:03 +0000 (every line of the file is +0000)
    assert!(time.ends_with(" +0000"), "{time}");
    let (date, clock) = time[..time.len() - 6].split_once(':').unwrap();
    let mut d = date.split('/');
    let (day, month, year) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let month = self::month(month);
    let hms: Vec<i64> = clock.split(':').map(|v| v.parse().unwrap()).collect();
    let (year, day): (i64, i64) = (year.parse().unwrap(), day.parse().unwrap());
    let epoch_s = days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let ts = format!("{year:04}-{month:02}-{day:02}T{clock}Z");
    let (request, rest) = rest.split_once("\" ").unwrap();
    let mut request = request.split(' ');
    let (method, path) = (request.next().unwrap_or("").to_string(), request.next().unwrap_or("").to_string());
    let mut fields = rest.splitn(3, ' ');
    let status = fields.next().unwrap().parse().unwrap();
    let bytes = fields.next().unwrap().parse().ok();
    let quoted: Vec<&str> = fields.next().unwrap_or("").split('"').collect();
    let (referrer, agent) = (quoted.get(1).unwrap_or(&"").to_string(), quoted.get(3).unwrap_or(&"").to_string());
    Access { epoch_s, ts, client: client.into(), method, path, status, bytes, referrer, agent }
}

pub fn to_json(a: &Access) -> Vec<u8> {
    json!({
        "ts": a.ts, "client": a.client, "method": a.method, "path": a.path,
        "status": a.status, "bytes": a.bytes, "referrer": a.referrer, "agent": a.agent,
    })
    .to_string()
    .into_bytes()
}

/// Rows as strings, from the HTTP JSON answer (columns in `names` order).
pub fn http_rows(node: &Node, statement: &str, names: &[&str]) -> Vec<Vec<String>> {
    let r = http::post_json(node.http, "/api/v1/sql", &json!({ "sql": statement })).unwrap();
    assert_eq!(r.status, 200, "{statement}: {}", r.body);
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    r.json()["rows"].as_array().unwrap().iter().map(|row| names.iter().map(|n| cell(&row[*n])).collect()).collect()
}

/// Rows as strings, from psql's unaligned output.
pub fn pg_rows(port: u16, statement: &str) -> Vec<Vec<String>> {
    let out = psql(port, statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
    out.lines().filter(|l| !l.is_empty()).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

fn rows_of<K: ToString, V: ToString>(pairs: impl IntoIterator<Item = (K, V)>) -> Vec<Vec<String>> {
    pairs.into_iter().map(|(k, v)| vec![k.to_string(), v.to_string()]).collect()
}

/// The statements the checks of `checks` make, each answered alike over HTTP and psql
/// (PostgreSQL port `pg`), `context` naming the moment in failures.
pub fn assert_answers(node: &Node, pg: u16, checks: &[Check], context: &str) {
    for Check { statement, names, expected } in checks {
        assert_eq!(&http_rows(node, statement, names), expected, "HTTP, {context}: {statement}");
        assert_eq!(&pg_rows(pg, statement), expected, "psql, {context}: {statement}");
    }
}

fn count(table: &str, n: usize) -> Check {
    Check::new(format!("SELECT count(*) AS n FROM {table}"), &["n"], vec![vec![n.to_string()]])
}

/// The HDFS loghub sample (`loghub/HDFS_2k.log`, a `text` stream): its count, counts per
/// level from the structured CSV, a phrase `match()` against a substring count.
pub fn hdfs_checks(table: &str, hdfs: &[Vec<u8>]) -> Vec<Check> {
    let mut checks = vec![count(table, hdfs.len())];
    // Counts per level: the Level column of the loghub structured CSV (the fifth; no
    // field before it holds a comma).
    let csv = std::fs::read_to_string(dataset("loghub/HDFS_2k.log_structured.csv")).unwrap();
    let mut levels: BTreeMap<String, u64> = BTreeMap::new();
    for row in csv.lines().skip(1).filter(|l| !l.is_empty()) {
        *levels.entry(row.split(',').nth(4).unwrap().to_string()).or_default() += 1;
    }
    checks.push(Check::new(
        format!("SELECT split_part(message, ' ', 4) AS level, count(*) AS n FROM {table} GROUP BY 1 ORDER BY 1"),
        &["level", "n"],
        rows_of(levels),
    ));
    // A phrase, against a plain substring count.
    let phrase = hdfs.iter().filter(|l| String::from_utf8_lossy(l).contains("Receiving block")).count();
    checks.push(Check::new(
        format!(r#"SELECT count(*) AS n FROM {table} WHERE match(message, '"Receiving block"')"#),
        &["n"],
        vec![vec![phrase.to_string()]],
    ));
    checks
}

/// The Apache access log parsed to JSON (a `json` stream with `client`, `method`
/// keywords, `path` text, `status`, `bytes` numbers, the rest in `_attributes`).
pub fn access_checks(table: &str, access: &[Access]) -> Vec<Check> {
    let mut checks = vec![count(table, access.len())];
    // Top-10 status codes.
    let mut statuses: BTreeMap<i64, u64> = BTreeMap::new();
    for a in access {
        *statuses.entry(a.status).or_default() += 1;
    }
    let mut top: Vec<(i64, u64)> = statuses.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(10);
    if access.len() == 10_000 {
        assert_eq!(top[0], (200, 9126), "the dataset README's figure for the whole file");
    }
    checks.push(Check::new(
        format!("SELECT status, count(*) AS n FROM {table} GROUP BY status ORDER BY n DESC, status LIMIT 10"),
        &["status", "n"],
        rows_of(top),
    ));
    // A per-minute histogram, as epoch seconds so both protocols print the same text.
    let mut minutes: BTreeMap<i64, u64> = BTreeMap::new();
    for a in access {
        *minutes.entry(a.epoch_s - a.epoch_s.rem_euclid(60)).or_default() += 1;
    }
    checks.push(Check::new(
        format!(
            "SELECT CAST(extract(epoch FROM date_trunc('minute', _timestamp)) AS BIGINT) AS minute, count(*) AS n \
             FROM {table} GROUP BY 1 ORDER BY 1"
        ),
        &["minute", "n"],
        rows_of(minutes),
    ));
    // Filters on undeclared keys, kept in `_attributes`.
    let no_referrer = access.iter().filter(|a| a.referrer == "-").count();
    checks.push(Check::new(
        format!("SELECT count(*) AS n FROM {table} WHERE (_attributes->>'referrer') = '-'"),
        &["n"],
        vec![vec![no_referrer.to_string()]],
    ));
    let bots = access.iter().filter(|a| a.agent.contains("Googlebot")).count();
    assert!(bots > 0);
    checks.push(Check::new(
        format!("SELECT count(*) AS n FROM {table} WHERE json_get_str(_attributes, 'agent') LIKE '%Googlebot%'"),
        &["n"],
        vec![vec![bots.to_string()]],
    ));
    // Keyword filter and a bytes sum, straight from the parsed lines.
    let (gets, get_bytes) =
        access.iter().filter(|a| a.method == "GET" && a.status == 200).fold((0u64, 0i64), |(n, b), a| (n + 1, b + a.bytes.unwrap_or(0)));
    checks.push(Check::new(
        format!("SELECT count(*) AS n, sum(bytes) AS b FROM {table} WHERE method = 'GET' AND status = 200"),
        &["n", "b"],
        vec![vec![gets.to_string(), get_bytes.to_string()]],
    ));
    // Full text on a `text` field: requests for a path word, against the parsed paths.
    let feeds = access.iter().filter(|a| a.path.split(|c: char| !c.is_alphanumeric()).any(|w| w.eq_ignore_ascii_case("feed"))).count();
    assert!(feeds > 0);
    checks.push(Check::new(format!("SELECT count(*) AS n FROM {table} WHERE match(path, 'feed')"), &["n"], vec![vec![feeds.to_string()]]));
    checks
}

/// The Zeek DNS log (`zeek/dns.json.gz`, `query` text and `qtype_name` keyword).
pub fn dns_checks(table: &str, dns: &[Vec<u8>]) -> Vec<Check> {
    let mut checks = vec![count(table, dns.len())];
    // Zeek DNS query types, top 5.
    let mut qtypes: BTreeMap<String, u64> = BTreeMap::new();
    for l in dns {
        let v: Value = serde_json::from_slice(l).unwrap();
        if let Some(q) = v["qtype_name"].as_str() {
            *qtypes.entry(q.to_string()).or_default() += 1;
        }
    }
    let mut qtop: Vec<(String, u64)> = qtypes.into_iter().collect();
    qtop.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    qtop.truncate(5);
    checks.push(Check::new(
        format!(
            "SELECT qtype_name, count(*) AS n FROM {table} WHERE qtype_name IS NOT NULL GROUP BY 1 ORDER BY n DESC, qtype_name LIMIT 5"
        ),
        &["qtype_name", "n"],
        rows_of(qtop),
    ));
    checks
}
