//! Text logs with their own time and fields: loghub samples through the real broker with
//! the patterns `deploy/example.toml` documents. Per-minute counts come from the lines'
//! own times and field counts from loghub's structured CSVs, both computed here.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::answers::{Check, assert_answers, days_from_civil, month};
use support::kafka::{create_topic, lines, produce_all};
use support::node::Node;
use support::psql::pg_port;
use support::{dataset, example, http, node, services, unique_topic, wait_for};

/// One sample: its stream in deploy/example.toml, its file, how the test reads a line's
/// minute (`YYYY-MM-DD HH:MM`), and the structured CSV column that counts a field.
struct Sample {
    stream: &'static str,
    file: &'static str,
    minute: fn(&str) -> String,
    field: &'static str,
    csv_column: &'static str,
}

/// `[Sun Dec 04 04:47:44 2005] …`
fn apache_minute(line: &str) -> String {
    let parts: Vec<&str> = line[1..line.find(']').unwrap()].split_whitespace().collect();
    let (day, time, year) = (parts[2], parts[3], parts[4]);
    format!("{year}-{:02}-{day:0>2} {}", month(parts[1]), &time[..5])
}

/// `081109 203615 …`
fn hdfs_minute(line: &str) -> String {
    let b = line.as_bytes();
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&b[r]).unwrap().to_string();
    format!("20{}-{}-{} {}:{}", s(0..2), s(2..4), s(4..6), s(7..9), s(9..11))
}

/// `Jun 14 15:16:01 …`, no year: the year the records are produced in (now), or the
/// one before when that puts the line more than a day ahead of now.
fn syslog_minute(line: &str) -> String {
    let parts: Vec<&str> = line.split_whitespace().take(3).collect();
    let (m, d) = (month(parts[0]), parts[1].parse::<i64>().unwrap());
    let now_days = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400) as i64;
    let mut year = 1970;
    while days_from_civil(year + 1, 1, 1) <= now_days {
        year += 1;
    }
    if days_from_civil(year, m, d) > now_days + 1 {
        year -= 1;
    }
    format!("{year}-{m:02}-{d:02} {}", &parts[2][..5])
}

/// `2015-07-29 17:41:44,747 - …`
fn zookeeper_minute(line: &str) -> String {
    line[..16].to_string()
}

const SAMPLES: &[Sample] = &[
    Sample { stream: "apache_error_log", file: "loghub/Apache_2k.log", minute: apache_minute, field: "level", csv_column: "Level" },
    Sample { stream: "hdfs", file: "loghub/HDFS_2k.log", minute: hdfs_minute, field: "level", csv_column: "Level" },
    // loghub's Linux CSV keeps the host in its `Level` column.
    Sample { stream: "linux_syslog", file: "loghub/Linux_2k.log", minute: syslog_minute, field: "host", csv_column: "Level" },
    Sample { stream: "zookeeper", file: "loghub/Zookeeper_2k.log", minute: zookeeper_minute, field: "level", csv_column: "Level" },
];

/// The fields of one CSV line (double-quoted fields may hold commas and `""`).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Counts of each value of `column` in a loghub structured CSV.
fn csv_counts(file: &str, column: &str) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(dataset(&format!("{file}_structured.csv"))).unwrap();
    let mut rows = text.lines().filter(|l| !l.is_empty());
    let header = csv_fields(rows.next().unwrap());
    let at = header.iter().position(|h| h == column).unwrap();
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(csv_fields(row)[at].clone()).or_default() += 1;
    }
    counts
}

/// The streams of deploy/example.toml named in `SAMPLES`, each fed by its own new topic.
fn example_streams(brokers: &str) -> (String, Vec<String>) {
    let mut streams = Vec::new();
    let mut topics = Vec::new();
    for sample in SAMPLES {
        let topic = unique_topic(sample.stream);
        create_topic(brokers, &topic, 1);
        streams.push(example::stream(sample.stream, &topic, ""));
        topics.push(topic);
    }
    (example::to_config(streams), topics)
}

fn count(node: &Node, table: &str, filter: &str) -> u64 {
    let r = http::post_json(node.http, "/api/v1/sql", &serde_json::json!({ "sql": format!("SELECT count(*) AS n FROM {table} {filter}") }));
    r.filter(|r| r.status == 200).and_then(|r| r.json()["rows"][0]["n"].as_u64()).unwrap_or(0)
}

#[test]
fn loghub_patterns_give_event_times_and_fields() {
    let Some(services) = services() else { return };
    let (streams, topics) = example_streams(&services.kafka_brokers);
    let config = node::config(&services, &unique_topic("patterns"), &streams);
    let mut node = Node::start(&config);
    node.wait_ready(Duration::from_secs(60));

    // Two lines the Apache pattern does not match are kept; one the HDFS stream's does
    // not match (on_mismatch = "error") becomes an error row.
    let strays: [&[u8]; 2] = [b"apache restarted by hand", b"--"];
    let mut fed = Vec::new();
    for (sample, topic) in SAMPLES.iter().zip(&topics) {
        let mut file = lines(&dataset(sample.file));
        assert_eq!(file.len(), 2000, "{}", sample.file);
        let mut payloads = file.clone();
        match sample.stream {
            "apache_error_log" => payloads.extend(strays.iter().map(|s| s.to_vec())),
            "hdfs" => payloads.push(b"hdfs: not a log line".to_vec()),
            _ => {}
        }
        produce_all(&services.kafka_brokers, topic, payloads.iter().map(Vec::as_slice));
        fed.push(std::mem::take(&mut file));
    }
    let expected_rows = [2002, 2000, 2000, 2000];
    wait_for("every line indexed", Duration::from_secs(120), || {
        let all = SAMPLES.iter().zip(expected_rows).all(|(s, n)| count(&node, s.stream, "") == n);
        (all && count(&node, "hdfs_errors", "") == 1).then_some(())
    });

    let pg = pg_port(&config);
    let mut checks = Vec::new();
    for (sample, file) in SAMPLES.iter().zip(&fed) {
        let mut minutes: BTreeMap<String, u64> = BTreeMap::new();
        for line in file {
            *minutes.entry((sample.minute)(std::str::from_utf8(line).unwrap())).or_default() += 1;
        }
        let rows = |m: BTreeMap<String, u64>| m.into_iter().map(|(k, v)| vec![k, v.to_string()]).collect();
        // Matched lines only: the kept strays carry the Kafka record time.
        checks.push(Check::new(
            format!(
                "SELECT to_char(date_trunc('minute', _timestamp), '%Y-%m-%d %H:%M') AS minute, count(*) AS n \
                 FROM {} WHERE {} IS NOT NULL GROUP BY 1 ORDER BY 1",
                sample.stream, sample.field
            ),
            &["minute", "n"],
            rows(minutes),
        ));
        checks.push(Check::new(
            format!("SELECT {f} AS v, count(*) AS n FROM {} WHERE {f} IS NOT NULL GROUP BY 1 ORDER BY 1", sample.stream, f = sample.field),
            &["v", "n"],
            rows(csv_counts(sample.file, sample.csv_column)),
        ));
    }
    // A typed group: HDFS's pid as i64, summed against the CSV's Pid column.
    let pid_sum: u64 = csv_counts("loghub/HDFS_2k.log", "Pid").iter().map(|(pid, n)| pid.parse::<u64>().unwrap() * n).sum();
    checks.push(Check::new("SELECT sum(pid) AS s FROM hdfs", &["s"], vec![vec![pid_sum.to_string()]]));
    // An optional group: Apache's client only where the line names one.
    let with_client = fed[0].iter().filter(|l| String::from_utf8_lossy(l).contains("] [client ")).count();
    checks.push(Check::new("SELECT count(client) AS n FROM apache_error_log", &["n"], vec![vec![with_client.to_string()]]));
    // The strays: kept with their message and marked, or an error row naming the reason.
    checks.push(Check::new(
        "SELECT message AS m FROM apache_error_log WHERE json_get_str(_attributes, 'tierlog.pattern') = 'no match' ORDER BY 1",
        &["m"],
        vec![vec!["--".into()], vec!["apache restarted by hand".into()]],
    ));
    checks.push(Check::new(
        "SELECT reason AS r, payload AS p FROM hdfs_errors",
        &["r", "p"],
        vec![vec!["pattern_mismatch".into(), "hdfs: not a log line".into()]],
    ));
    assert_answers(&node, pg, &checks, "loghub samples with their patterns");

    let metrics = http::get(node.http, "/metrics").unwrap().body;
    let unmatched = |s: &str| http::metric(&metrics, &format!("tierlog_ingest_unmatched_lines_total{{stream=\"{s}\"}}"));
    assert_eq!(SAMPLES.iter().map(|s| unmatched(s.stream)).collect::<Vec<_>>(), [2, 0, 0, 0], "{metrics}");
    assert_eq!(http::metric(&metrics, "tierlog_ingest_errors_total{stream=\"hdfs\",reason=\"pattern_mismatch\"}"), 1);
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
