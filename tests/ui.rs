//! The search page in real headless Chromium (Selenium, `tests/clients/ui_browser.py`):
//! the loghub Apache error log goes through the broker with the pattern
//! `deploy/example.toml` documents and on into the cold tier; then, as a user with a
//! token for that stream only, the page finds a phrase with the histogram's bars equal to
//! counts computed here from the lines' own times, expands rows to their fields and
//! attributes, narrows the time range, shows the planted malformed messages in the error
//! table, the lifecycle, and rows arriving live. Without a token it shows nothing but the
//! prompt. Each view is saved as a screenshot.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::answers::{days_from_civil, month, utc};
use support::kafka::{create_topic, lines, produce_all};
use support::node::Node;
use support::{dataset, example, http, node, services, unique_topic, wait_for};

const TOKEN: &str = "ui-token-0123456789";
const OTHER_TOKEN: &str = "hdfs-token-9876543210";
const PHRASE: &str = "Directory index forbidden";
/// Rows reach the cold tier within seconds; the sample's 2005 rows are kept.
const POLICY: &str = "commit_interval = \"500ms\"\nrollover_max_age = \"3s\"\nhot_for = \"5s\"\nhot_grace = \"1s\"\nretention = \"36500d\"";

/// `[Sun Dec 04 04:47:44 2005] …` → seconds since the epoch, read here.
fn line_epoch(line: &str) -> i64 {
    let parts: Vec<&str> = line[1..line.find(']').unwrap()].split_whitespace().collect();
    let hms: Vec<i64> = parts[3].split(':').map(|v| v.parse().unwrap()).collect();
    let days = days_from_civil(parts[4].parse().unwrap(), month(parts[1]), parts[2].parse().unwrap());
    days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

/// Runs the browser through `steps`; `on_step(i, output)` sees each step's output as it
/// comes (the test produces live rows from there). Returns every output.
fn browse(node: &Node, shots: &std::path::Path, steps: &Value, mut on_step: impl FnMut(usize, &Value)) -> Vec<Value> {
    let python = std::env::var("TIERLOG_TEST_PYTHON").expect("TIERLOG_TEST_PYTHON (deploy/local/test.sh sets it)");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ui_browser.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(format!("http://{}", node.http))
        .arg(TOKEN)
        .arg(shots)
        .arg(steps.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        on_step(out.len(), &v);
        out.push(v);
    }
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "the browser script failed after {} steps: {}", out.len(), String::from_utf8_lossy(&done.stderr));
    out
}

fn total(status: &Value) -> u64 {
    let text = status.as_str().unwrap();
    text.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no count in status {text:?}"))
}

#[test]
fn the_search_page_in_a_real_browser() {
    let Some(services) = services() else { return };
    let (apache, hdfs) = (unique_topic("ui-apache"), unique_topic("ui-hdfs"));
    create_topic(&services.kafka_brokers, &apache, 1);
    create_topic(&services.kafka_brokers, &hdfs, 1);
    let streams = format!(
        "[[query.users]]\nname = \"ui\"\ntoken = \"{TOKEN}\"\nstreams = [\"apache_error_log\"]\n\
         [[query.users]]\nname = \"other\"\ntoken = \"{OTHER_TOKEN}\"\nstreams = [\"hdfs\"]\n\
         {}\n[[streams]]\nname = \"hdfs\"\ntopics = [\"{hdfs}\"]\nformat = \"text\"\n",
        example::to_config(vec![example::stream("apache_error_log", &apache, POLICY)])
    );
    let mut node = Node::start(&node::config(&services, &unique_topic("ui"), &streams));
    node.wait_ready(Duration::from_secs(60));

    // The Apache sample, one line it does not match (kept, marked) and three messages
    // that are not UTF-8 (error rows); the other user's stream gets HDFS.
    let file: Vec<String> = lines(&dataset("loghub/Apache_2k.log")).into_iter().map(|l| String::from_utf8(l).unwrap()).collect();
    let stray = "stray line without a time";
    let mut payloads: Vec<Vec<u8>> = file.iter().map(|l| l.clone().into_bytes()).collect();
    payloads.push(stray.as_bytes().to_vec());
    payloads.extend([b"\xff\xfe bad".to_vec(), b"caf\xe9".to_vec(), b"\xc3\x28".to_vec()]);
    produce_all(&services.kafka_brokers, &apache, payloads.iter().map(Vec::as_slice));
    produce_all(&services.kafka_brokers, &hdfs, lines(&dataset("loghub/HDFS_2k.log")).iter().map(Vec::as_slice));
    let rows = file.len() as u64 + 1;
    wait_for("every Apache row in the cold tier", Duration::from_secs(180), || {
        let sql = json!({ "sql": "SELECT count(*) AS n FROM apache_error_log WHERE _tier = 'cold'" }).to_string();
        let r = http::request(node.http, "POST", "/api/v1/sql", &sql, Some(TOKEN))?;
        (r.json()["rows"][0]["n"].as_u64() == Some(rows)).then_some(())
    });

    // What the page must show, from the file.
    let matching: Vec<&String> = file.iter().filter(|l| l.contains(PHRASE)).collect();
    let (hour_start, hour_end) = (line_epoch(&file[0]) / 3600 * 3600, line_epoch(&file[0]) / 3600 * 3600 + 3600);
    let in_hour = file.iter().filter(|l| (hour_start..hour_end).contains(&line_epoch(l))).count() as u64;
    // As the page's datetime-local inputs take it: no zone (the page reads UTC).
    let hour = |s: i64| utc(s).trim_end_matches('Z').to_string();

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let phrase = format!("%22{}%22", PHRASE.replace(' ', "%20"));
    let steps = json!([
        { "do": "open" },
        { "do": "view" },
        { "do": "shot", "name": "1-token-prompt" },
        { "do": "login", "token": "not-the-token" },
        { "do": "login" },
        { "do": "open", "hash": format!("stream=apache_error_log&range=all&q={phrase}") },
        { "do": "view" },
        { "do": "shot", "name": "2-phrase-and-histogram" },
        { "do": "expand", "index": 0 },
        { "do": "open", "hash": "stream=apache_error_log&range=all&q=stray" },
        { "do": "expand", "index": 0 },
        { "do": "shot", "name": "3-expanded-row" },
        { "do": "open", "hash": format!("stream=apache_error_log&range=custom&from={}&to={}&q=*", hour(hour_start), hour(hour_end)) },
        { "do": "view" },
        { "do": "shot", "name": "4-narrowed-range" },
        { "do": "open", "hash": "stream=apache_error_log&range=all&q=*" },
        { "do": "tab", "name": "errors" },
        { "do": "shot", "name": "5-error-table" },
        { "do": "tab", "name": "lifecycle" },
        { "do": "shot", "name": "6-lifecycle" },
        { "do": "open", "hash": "stream=apache_error_log&range=all&q=livecheck" },
        { "do": "live", "on": true },
        { "do": "wait_hits", "count": 3 },
        { "do": "shot", "name": "7-live" },
        { "do": "key", "keys": "/" },
        { "do": "open", "hash": "stream=apache_error_log&range=all&mode=sql&q=SELECT%20level%2C%20count(*)%20AS%20n%20FROM%20apache_error_log%20GROUP%20BY%201%20ORDER%20BY%201" },
        { "do": "view" },
        { "do": "shot", "name": "8-sql" },
        { "do": "open", "hash": "stream=apache_error_log&range=all&q=%28unclosed" },
        { "do": "view" },
        { "do": "shot", "name": "9-bad-query" },
        { "do": "open", "hash": "stream=apache_error_log&range=all&q=xsscheck" },
        { "do": "view" },
        { "do": "open", "hash": format!("stream=apache_error_log&range=all&q={phrase}") },
        { "do": "drag", "from": 0.25, "to": 0.6 },
        { "do": "shot", "name": "10-zoomed" },
    ]);
    let live_step = 21;
    let live_lines: Vec<String> = (0..3).map(|i| format!("[Sun Dec 04 23:59:0{i} 2005] [error] livecheck {i}")).collect();
    // A hostile line: shown as text, never run.
    let hostile = "[Sun Dec 04 23:58:00 2005] [error] <img src=x onerror=alert(1)><script>alert(2)</script> xsscheck";
    produce_all(&services.kafka_brokers, &apache, [hostile.as_bytes()]);
    wait_for("the hostile line indexed", Duration::from_secs(60), || {
        let sql = json!({ "sql": "SELECT count(*) AS n FROM apache_error_log WHERE match(message, 'xsscheck')" }).to_string();
        let r = http::request(node.http, "POST", "/api/v1/sql", &sql, Some(TOKEN))?;
        (r.json()["rows"][0]["n"].as_u64() == Some(1)).then_some(())
    });
    let out = browse(&node, &shots, &steps, |i, _| {
        if i == live_step {
            produce_all(&services.kafka_brokers, &apache, live_lines.iter().map(|l| l.as_bytes()));
        }
    });

    // Without a token: the prompt and nothing else; a wrong token is refused.
    let locked = &out[1];
    assert!(locked["login"] == true && locked["app"] == false, "{locked}");
    assert!(!locked["text"].as_str().unwrap().contains("apache_error_log"), "the prompt shows no data: {locked}");
    assert_eq!(out[3]["login_error"], "That token was refused.", "{}", out[3]);
    assert_eq!(out[4]["login_error"], "", "{}", out[4]);

    // The phrase: the total, newest first, every hit cold, and the histogram's bars.
    let found = &out[6];
    assert_eq!(found["streams"], json!(["apache_error_log"]), "only the token's streams: {found}");
    assert_eq!(total(&found["status"]), matching.len() as u64, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), matching.len().min(100));
    assert!(hits.iter().all(|h| h[1] == "cold"), "every row migrated shows _tier cold: {hits:?}");
    let times: Vec<&str> = hits.iter().map(|h| h[0].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let caption = found["histogram"]["caption"].as_str().unwrap();
    let width: i64 = caption.trim_start_matches("Matches per ").trim_end_matches(" s").parse().unwrap();
    let mut expected: BTreeMap<i64, u64> = BTreeMap::new();
    for line in &matching {
        *expected.entry(line_epoch(line).div_euclid(width) * width).or_default() += 1;
    }
    let shown: BTreeMap<i64, u64> =
        found["histogram"]["buckets"].as_array().unwrap().iter().map(|b| (b[0].as_i64().unwrap(), b[1].as_u64().unwrap())).collect();
    assert_eq!(shown, expected, "bars per {width} s");
    eprintln!("phrase: {} hits in {} bars of {width} s, equal to the file's", matching.len(), shown.len());

    // Rows expand to every field: the pattern's level, and a kept line's attributes.
    let fields = &out[8]["fields"];
    assert_eq!(fields["level"], "error", "{fields}");
    assert!(fields["message"].as_str().unwrap().contains(PHRASE), "{fields}");
    let stray_fields = &out[10]["fields"];
    assert_eq!(stray_fields["message"], stray, "{stray_fields}");
    assert!(stray_fields["_attributes"].as_str().unwrap().contains("no match"), "{stray_fields}");

    // A narrower range: exactly the lines of the log's first hour.
    let narrowed = &out[13];
    assert_eq!(total(&narrowed["status"]), in_hour, "{narrowed}");

    // The error table: the three planted messages, by reason.
    let errors = &out[16];
    assert_eq!(errors["counts"], json!([["invalid_utf8", "3"]]), "{errors}");
    assert_eq!(errors["rows"].as_array().unwrap().len(), 3, "{errors}");

    // The lifecycle: the cold segments that hold the rows, with their next step.
    let lifecycle = &out[18];
    let cold: Vec<&Value> = lifecycle["rows"].as_array().unwrap().iter().filter(|r| r[0] == "cold").collect();
    assert!(!cold.is_empty(), "{lifecycle}");
    assert!(cold.iter().all(|r| r[9].as_str().unwrap().starts_with("policy.")), "each says which policy key decides: {lifecycle}");

    // Live: the new matching rows appear, hot, without a reload.
    let live = &out[22];
    let live_hits: Vec<&Value> = live["hits"].as_array().unwrap().iter().collect();
    assert_eq!(live_hits.len(), live_lines.len(), "{live}");
    assert!(live_hits.iter().all(|h| h[1] == "hot" && h[2].as_str().unwrap().contains("livecheck")), "{live}");
    assert_eq!(out[24]["focused"], "q", "'/' focuses the query box");

    // The SQL switch: a statement's own columns and rows, counted here from the file.
    let sql_view = &out[26];
    let mut levels: BTreeMap<String, u64> = BTreeMap::new();
    for line in file.iter().chain(live_lines.iter()).chain([&hostile.to_string()]) {
        *levels.entry(line.split("] [").nth(1).unwrap().split(']').next().unwrap().to_string()).or_default() += 1;
    }
    let mut expected_rows: Vec<Vec<String>> = levels.into_iter().map(|(l, n)| vec![l, n.to_string()]).collect();
    expected_rows.push(vec![String::new(), "1".into()]); // the stray line: no level (NULL sorts last)
    assert_eq!(sql_view["columns"], json!(["level", "n"]), "{sql_view}");
    assert_eq!(sql_view["table"], json!(expected_rows), "{sql_view}");
    // A bad query: a readable error, no rows.
    let bad = &out[29];
    let message = bad["error"].as_str().unwrap_or_else(|| panic!("no error shown: {bad}"));
    assert!(message.contains("cannot parse '(unclosed'"), "{message}");
    assert_eq!(bad["hits"], json!([]), "{bad}");
    // The hostile line is text on the page, not markup.
    let xss = &out[32];
    assert_eq!(xss["injected"], 0, "{xss}");
    assert!(xss["hits"][0][2].as_str().unwrap().contains("<img src=x onerror=alert(1)>"), "{xss}");

    // Dragging across the histogram zooms to that range: the URL keeps it, and the
    // total is the file's count of matching lines inside it.
    let zoomed = &out[34];
    assert!(zoomed["range"] == "custom" && zoomed["error"].is_null(), "{zoomed}");
    let epoch = |v: &Value| {
        let t = v.as_str().unwrap();
        let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
        days_from_civil(n(0..4), n(5..7), n(8..10)) * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + t.get(17..19).map_or(0, |s| s.parse().unwrap())
    };
    let (from, to) = (epoch(&zoomed["from"]), epoch(&zoomed["to"]));
    let inside = matching.iter().filter(|l| (from..to).contains(&line_epoch(l))).count() as u64;
    assert!(from < to && inside > 0 && inside < matching.len() as u64, "a real zoom: {zoomed}");
    assert_eq!(total(&zoomed["status"]), inside, "{zoomed}");
    assert!(zoomed["url"].as_str().unwrap().contains("range=custom"), "{zoomed}");
    eprintln!("zoomed to {} .. {}: {inside} of {} hits", zoomed["from"], zoomed["to"], matching.len());

    eprintln!("screenshots in {}", shots.display());
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
