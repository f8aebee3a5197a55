//! Live tail against the real broker: followers (Python's standard library over
//! Server-Sent Events, and `tierlog tail`) receive each newly committed matching message
//! once, within 2 s of its produce, and no other; a follower that stops reading is
//! dropped with an event saying so while the others go on; tokens and grants hold.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::kafka::{create_topic, produce_all};
use support::node::Node;
use support::{http, node, services, unique_topic, wait_for};

const OPS_TOKEN: &str = "ops-token-0123456789";
const OTHER_TOKEN: &str = "other-token-9876543210";
const BUFFER_ROWS: usize = 200;

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Events a follower received: (event, data, arrival time in s since the epoch).
type Events = Arc<Mutex<Vec<(String, Value, f64)>>>;

struct Follower {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Events,
}

impl Follower {
    /// The Python client (tests/clients/sse_follow.py); `slow`: stops reading after `ready`.
    fn python(name: &'static str, node: &Node, query: &str, slow: bool) -> Follower {
        let python = std::env::var("TIERLOG_TEST_PYTHON").expect("TIERLOG_TEST_PYTHON (deploy/local/test.sh sets it)");
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/sse_follow.py");
        let url = format!("http://{}/api/v1/tail?stream=app&q={}", node.http, query.replace(' ', "%20"));
        let mut command = Command::new(python);
        command.arg(script).arg(url).arg(OPS_TOKEN);
        if slow {
            command.arg("--slow");
        }
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take().unwrap());
        let events = Events::default();
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap();
                sink.lock().unwrap().push((v["event"].as_str().unwrap().to_string(), v["data"].clone(), v["t"].as_f64().unwrap()));
            }
        });
        Follower { name, child, stdin, events }
    }

    /// `tierlog tail app QUERY --json`: a row per stdout line, timed on arrival here.
    fn cli(name: &'static str, node: &Node, query: &str) -> Follower {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
            .args(["tail", "app", query, "--json", "--addr", &node.http.to_string(), "--token", OPS_TOKEN])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let events = Events::default();
        let (rows, notes) = (Arc::clone(&events), Arc::clone(&events));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let row: Value = serde_json::from_str(&line).unwrap();
                rows.lock().unwrap().push(("row".into(), row, now_s()));
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let event = if line.starts_with("following ") { "ready" } else { "stderr" };
                notes.lock().unwrap().push((event.into(), Value::String(line), now_s()));
            }
        });
        Follower { name, child, stdin: None, events }
    }

    fn count(&self, event: &str) -> usize {
        self.events.lock().unwrap().iter().filter(|(e, _, _)| e == event).count()
    }

    /// The `message` of each row received, with its arrival time.
    fn rows(&self) -> Vec<(String, f64)> {
        let events = self.events.lock().unwrap();
        events.iter().filter(|(e, _, _)| e == "row").map(|(_, row, t)| (row["message"].as_str().unwrap().to_string(), *t)).collect()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Message `i` of a wave: `needle` ones match the followers' query, `hay` ones do not.
fn message(phase: &str, wave: usize, i: usize, needle: bool, pad: usize) -> String {
    let word = if needle { "needle" } else { "hay" };
    format!("{phase} wave{wave} msg{i} {word} {}", "lorem ".repeat(pad)).trim_end().to_string()
}

/// Produces `waves` waves of `per_wave` matching and `per_wave` other messages, `gap`
/// apart; returns each matching message with the time its wave started.
fn produce_waves(brokers: &str, topic: &str, phase: &str, waves: usize, per_wave: usize, pad: usize, gap: Duration) -> BTreeMap<String, f64> {
    let mut expected = BTreeMap::new();
    for wave in 0..waves {
        let started = now_s();
        let mut payloads = Vec::new();
        for i in 0..per_wave {
            let needle = message(phase, wave, i, true, pad);
            payloads.push(message(phase, wave, i, false, pad));
            expected.insert(needle.clone(), started);
            payloads.push(needle);
        }
        produce_all(brokers, topic, payloads.iter().map(|p| p.as_bytes()));
        std::thread::sleep(gap);
    }
    expected
}

/// Each expected message received exactly once and nothing else; the arrival delays
/// after each wave's start, sorted.
fn check_exactly_once(follower: &Follower, expected: &BTreeMap<String, f64>, phase: &str) -> Vec<f64> {
    let rows: Vec<(String, f64)> = follower.rows().into_iter().filter(|(m, _)| m.starts_with(&format!("{phase} "))).collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (message, _) in &rows {
        *seen.entry(message.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{}: received more than once: {twice:?}", follower.name);
    let stray: Vec<_> = seen.keys().filter(|m| !expected.contains_key(**m)).take(5).collect();
    assert!(stray.is_empty(), "{}: not matching the query, yet received: {stray:?}", follower.name);
    let missing = expected.keys().filter(|m| !seen.contains_key(m.as_str())).count();
    assert_eq!(missing, 0, "{}: {missing} of {} matching messages never arrived", follower.name, expected.len());
    let mut delays: Vec<f64> = rows.iter().map(|(m, t)| t - expected[m]).collect();
    delays.sort_by(f64::total_cmp);
    delays
}

#[test]
fn followers_get_each_new_matching_row_once_and_a_slow_one_is_dropped() {
    let Some(services) = services() else { return };
    let (app, other) = (unique_topic("tail-app"), unique_topic("tail-other"));
    create_topic(&services.kafka_brokers, &app, 3);
    create_topic(&services.kafka_brokers, &other, 1);
    let streams = format!(
        "[query]\ntail_buffer_rows = {BUFFER_ROWS}\n\
         [[query.users]]\nname = \"ops\"\ntoken = \"{OPS_TOKEN}\"\nstreams = [\"app\"]\n\
         [[query.users]]\nname = \"other\"\ntoken = \"{OTHER_TOKEN}\"\nstreams = [\"other\"]\n\
         [[streams]]\nname = \"app\"\ntopics = [\"{app}\"]\nformat = \"text\"\n\
         [[streams]]\nname = \"other\"\ntopics = [\"{other}\"]\nformat = \"text\"\n"
    );
    let mut node = Node::start(&node::config(&services, &unique_topic("tail"), &streams));
    node.wait_ready(Duration::from_secs(60));

    // Refused before any event: no token, another user's stream, a bad query, no stream.
    let status = |token: Option<&str>, path: &str| http::request(node.http, "GET", path, "", token).unwrap();
    let r = status(None, "/api/v1/tail?stream=app&q=needle");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = status(Some(OTHER_TOKEN), "/api/v1/tail?stream=app&q=needle");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = status(Some(OPS_TOKEN), "/api/v1/tail?stream=app&q=%28needle");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("error"), "{}", r.body);
    let r = status(Some(OPS_TOKEN), "/api/v1/tail?stream=nope&q=needle");
    assert_eq!((r.status, r.json()["kind"].as_str()), (400, Some("undefined_table")), "{}", r.body);

    // Rows committed before anyone follows are not sent.
    produce_all(&services.kafka_brokers, &app, [b"before needle".as_slice()]);
    wait_for("the early row committed", Duration::from_secs(60), || {
        let r = http::request(node.http, "POST", "/api/v1/sql", r#"{"sql": "SELECT count(*) AS n FROM app"}"#, Some(OPS_TOKEN))?;
        (r.json()["rows"][0]["n"] == 1).then_some(())
    });

    let fast = [Follower::python("python 1", &node, "needle", false), Follower::python("python 2", &node, "needle", false), Follower::cli("tierlog tail", &node, "needle")];
    wait_for("every follower ready", Duration::from_secs(30), || fast.iter().all(|f| f.count("ready") == 1).then_some(()));

    // Phase 1: small waves; every matching row once, within 2 s of its produce.
    let expected = produce_waves(&services.kafka_brokers, &app, "p1", 6, 100, 0, Duration::from_millis(700));
    wait_for("phase 1 rows at every follower", Duration::from_secs(60), || {
        fast.iter().all(|f| f.rows().iter().filter(|(m, _)| m.starts_with("p1 ")).count() >= expected.len()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2)); // anything extra would arrive by now
    for follower in &fast {
        let delays = check_exactly_once(follower, &expected, "p1");
        let (median, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
        eprintln!("{}: {} rows, produce → received median {median:.3} s, max {max:.3} s", follower.name, delays.len());
        assert!(max <= 2.0, "{}: a row arrived {max:.3} s after its produce", follower.name);
        assert!(!follower.rows().iter().any(|(m, _)| m == "before needle"), "{}: a row from before it followed", follower.name);
    }

    // Phase 2: a follower stops reading while large rows pour in. It is dropped, with
    // an event saying why; the others still get every row once.
    let mut slow = Follower::python("slow", &node, "needle", true);
    wait_for("the slow follower ready", Duration::from_secs(30), || (slow.count("ready") == 1).then_some(()));
    let started = Instant::now();
    let expected = produce_waves(&services.kafka_brokers, &app, "p2", 12, 300, 300, Duration::from_millis(300));
    wait_for("phase 2 rows at every fast follower", Duration::from_secs(120), || {
        fast.iter().all(|f| f.rows().iter().filter(|(m, _)| m.starts_with("p2 ")).count() >= expected.len()).then_some(())
    });
    eprintln!("phase 2: {} matching rows of ~2 KB to the fast followers in {:.2} s", expected.len(), started.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(2));
    for follower in &fast {
        check_exactly_once(follower, &expected, "p2");
        assert_eq!(follower.count("dropped"), 0, "{}", follower.name);
    }
    writeln!(slow.stdin.take().unwrap(), "read").unwrap();
    let dropped = wait_for("the slow follower's last event", Duration::from_secs(60), || {
        let events = slow.events.lock().unwrap();
        events.iter().find(|(e, _, _)| e == "dropped").map(|(_, data, _)| data.clone())
    });
    let got = slow.rows().len();
    eprintln!("slow follower: {got} of {} rows, then: {dropped}", expected.len());
    assert!(got < expected.len(), "the slow follower got every row: it was not slow enough to test anything");
    let why = dropped["error"].as_str().unwrap();
    assert!(why.contains(&format!("buffer of {BUFFER_ROWS} rows")) && why.contains("query.tail_buffer_rows"), "{why}");

    // Every row is hot here: `_tier = 'hot'` (the feeds' own condition) counts them all.
    let produced = 1 + 2 * (6 * 100 + 12 * 300);
    let count = |tier: &str| {
        let statement = format!(r#"{{"sql": "SELECT count(*) AS n FROM app WHERE _tier = '{tier}'"}}"#);
        http::request(node.http, "POST", "/api/v1/sql", &statement, Some(OPS_TOKEN)).unwrap().json()["rows"][0]["n"].as_u64()
    };
    assert_eq!((count("hot"), count("cold")), (Some(produced), Some(0)));
    // The feeds' statements are counted apart from the users' own.
    let metrics = http::request(node.http, "GET", "/metrics", "", Some(OPS_TOKEN)).unwrap().body;
    assert!(http::metric(&metrics, "tierlog_queries_total{protocol=\"tail\",outcome=\"ok\"}") > 0, "{metrics}");

    for follower in fast {
        follower.stop();
    }
    slow.stop();
    assert!(node.terminate(Duration::from_secs(60)).success(), "{}", node.log());
}
