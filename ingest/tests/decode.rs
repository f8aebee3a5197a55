//! Decoders on real records from ../shared/datasets and on each kind of malformed input.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tierlog_core::config::Config;
use tierlog_core::schema::ErrorReason;
use tierlog_hot::{RowOrigin, StreamSchema};
use tierlog_ingest::{Decoded, Decoder};

const STREAMS: &str = r#"
[[streams]]
name = "dns"
topics = ["dns"]
format = "json"
timestamp_field = "ts"
max_message_bytes = "4KiB"
fields = [
  { name = "query", type = "text" },
  { name = "qtype_name", type = "keyword" },
  { name = "orig_h", type = "keyword", source = "id.orig_h" },
  { name = "orig_p", type = "i64", source = "id.orig_p" },
  { name = "rtt", type = "f64" },
  { name = "rd", type = "bool", source = "RD" },
]

[[streams]]
name = "otel"
topics = ["otel"]
format = "otlp_json"

[[streams]]
name = "lines"
topics = ["lines"]
format = "text"

[[streams]]
name = "apache"
topics = ["apache"]
format = "text"
pattern = '^\[(?P<time>[^\]]+)\] \[(?P<level>\w+)\] (?:\[client (?P<client>[\d.]+)\] )?(?P<content>.*)$'
timestamp_field = "time"
timestamp_format = "%a %b %d %H:%M:%S %Y"
fields = [
  { name = "level", type = "keyword" },
  { name = "client", type = "keyword" },
  { name = "content", type = "text" },
]

[[streams]]
name = "strict"
topics = ["strict"]
format = "text"
pattern = '^(?P<date>\d{6} \d{6}) (?P<pid>\S+) (?P<level>[A-Z]+) '
timestamp_field = "date"
timestamp_format = "%y%m%d %H%M%S"
on_mismatch = "error"
fields = [{ name = "pid", type = "i64" }, { name = "level", type = "keyword" }]

[[streams]]
name = "syslog"
topics = ["syslog"]
format = "text"
pattern = '^(?P<time>\w{3} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) '
timestamp_field = "time"
timestamp_format = "%b %d %H:%M:%S"
fields = [{ name = "host", type = "keyword" }]
"#;

fn decoder(name: &str) -> Decoder {
    let config = Config::parse(STREAMS, "t.toml", Path::new("/"), &|_| None).unwrap();
    let stream = config.streams.iter().find(|s| s.name == name).unwrap();
    Decoder::new(stream, Arc::new(StreamSchema::new(stream)))
}

const ORIGIN: RowOrigin<'static> =
    RowOrigin { topic: "t", partition: 2, offset: 41, key: Some("k"), kafka_time_us: 1_700_000_000_000_000, ingest_time_us: 1 };

/// The documents of one payload as JSON objects (field → array of values).
fn decode(d: &Decoder, payload: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    d.decode(&ORIGIN, payload, &mut out);
    out.iter().map(|doc| serde_json::from_str(&tantivy::Document::to_json(doc, d.schema().schema())).unwrap()).collect()
}

fn dataset(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets").join(rel);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    if rel.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut bytes).unwrap();
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes).unwrap();
    }
    bytes
}

#[test]
fn zeek_dns_rows() {
    let d = decoder("dns");
    let data = dataset("zeek/dns.json.gz");
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 53_615);
    let mut num_rows = 0;
    for line in &lines {
        let mut out = Vec::new();
        if let Decoded::Error(err) = d.decode(&ORIGIN, line, &mut out) {
            panic!("{err:?} for {}", String::from_utf8_lossy(line));
        }
        num_rows += out.len();
    }
    assert_eq!(num_rows, lines.len());

    // The first record, checked field by field against its own JSON.
    let first: Value = serde_json::from_slice(lines[0]).unwrap();
    let doc = &decode(&d, lines[0])[0];
    assert_eq!(doc["query"][0], first["query"]);
    assert_eq!(doc["qtype_name"][0], first["qtype_name"]);
    assert_eq!(doc["orig_h"][0], first["id.orig_h"]);
    assert_eq!(doc["orig_p"][0], first["id.orig_p"]);
    assert_eq!(doc["rd"][0], first["RD"]);
    assert_eq!(doc["_partition"][0], 2);
    assert_eq!(doc["_offset"][0], 41);
    assert_eq!(doc["_key"][0], "k");
    // `ts` became `_timestamp`; tantivy prints dates as RFC 3339.
    let ts = first["ts"].as_str().unwrap();
    assert_eq!(doc["_timestamp"][0].as_str().unwrap().trim_end_matches('Z'), ts.trim_end_matches('Z'));
    // Undeclared keys are in `_attributes`, declared and time keys are not.
    let attributes = &doc["_attributes"][0];
    assert_eq!(attributes["uid"], first["uid"]);
    assert_eq!(attributes["id.resp_h"], first["id.resp_h"]);
    assert!(attributes.get("query").is_none() && attributes.get("ts").is_none() && attributes.get("id.orig_h").is_none());
}

#[test]
fn otlp_sample_request() {
    let d = decoder("otel");
    let request: Value = serde_json::from_slice(&dataset("otlp/logs.json")).unwrap();
    let docs = decode(&d, request.to_string().as_bytes());
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc["severity_text"], json!(["Information"]));
    assert_eq!(doc["severity_number"], json!([10]));
    assert_eq!(doc["body"], json!(["Example log record"]));
    assert_eq!(doc["trace_id"], json!(["5b8efff798038103d269b633813fc60c"]));
    assert_eq!(doc["span_id"], json!(["eee19b7ec3c1b174"]));
    assert_eq!(doc["service_name"], json!(["my.service"]));
    assert_eq!(doc["_record"], json!([0]));
    // timeUnixNano 1544712660300000000 = 2018-12-13T14:51:00.3Z
    assert_eq!(doc["_timestamp"], json!(["2018-12-13T14:51:00.3Z"]));
    let a = &doc["_attributes"][0];
    assert_eq!(a["string.attribute"], "some string");
    assert_eq!(a["boolean.attribute"], true);
    assert_eq!(a["int.attribute"], 10);
    assert_eq!(a["double.attribute"], 637.704);
    assert_eq!(a["array.attribute"], json!(["many", "values"]));
    assert_eq!(a["map.attribute"]["some.map.key"], "some value");
    assert_eq!(a["resource"]["service.name"], "my.service");
    assert_eq!(a["scope"]["name"], "my.library");
    assert_eq!(a["scope"]["attributes"]["my.scope.attribute"], "some scope attribute");
}

#[test]
fn otlp_rows_are_numbered_within_a_message() {
    let d = decoder("otel");
    let record = |body: &str| json!({ "timeUnixNano": "1000", "body": { "stringValue": body } });
    let request = json!({ "resourceLogs": [
        { "scopeLogs": [ { "logRecords": [record("a"), record("b")] } ] },
        { "scopeLogs": [ { "logRecords": [record("c")] } ] },
    ]});
    let docs = decode(&d, request.to_string().as_bytes());
    let got: Vec<_> = docs.iter().map(|d| (d["_record"][0].clone(), d["body"][0].clone())).collect();
    assert_eq!(got, vec![(json!(0), json!("a")), (json!(1), json!("b")), (json!(2), json!("c"))]);
}

#[test]
fn text_line_is_the_message() {
    let d = decoder("lines");
    let docs = decode(&d, b"[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok");
    assert_eq!(docs[0]["message"], json!(["[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok"]));
    assert_eq!(docs[0]["_timestamp"], json!(["2023-11-14T22:13:20Z"]), "the Kafka record time");
}

/// Each malformed kind becomes exactly one error row with its reason and raw payload.
#[test]
fn malformed_messages_become_error_rows() {
    let cases: Vec<(&str, Vec<u8>, ErrorReason, &str)> = vec![
        ("lines", b"caf\xe9".to_vec(), ErrorReason::InvalidUtf8, "invalid UTF-8 at byte 3"),
        ("dns", b"{\"query\": \"\xff\"}".to_vec(), ErrorReason::InvalidUtf8, "invalid UTF-8 at byte 11"),
        ("dns", b"{\"query\": ".to_vec(), ErrorReason::InvalidJson, "EOF while parsing a value at line 1 column 10"),
        ("dns", b"[1, 2]".to_vec(), ErrorReason::InvalidJson, "expected a JSON object, got an array"),
        ("dns", br#"{"id.orig_p": "53"}"#.to_vec(), ErrorReason::WrongType, "field 'id.orig_p' is declared i64 but the message has a string \"53\""),
        ("dns", br#"{"rtt": 1.5, "RD": "yes"}"#.to_vec(), ErrorReason::WrongType, "field 'RD' is declared bool but the message has a string \"yes\""),
        ("dns", br#"{"ts": "yesterday"}"#.to_vec(), ErrorReason::BadTimestamp, "field 'ts': 'yesterday' is not an RFC 3339 timestamp"),
        ("dns", vec![b' '; 5000], ErrorReason::TooLarge, "5000 bytes, more than max_message_bytes (4096)"),
        ("strict", b"not an HDFS line".to_vec(), ErrorReason::PatternMismatch, "the line does not match the stream's pattern"),
        ("strict", b"081109 203615 x48 INFO dfs.DataNode: ok".to_vec(), ErrorReason::WrongType, "group 'pid' is declared i64 but the line has 'x48'"),
        ("strict", b"081399 203615 148 INFO dfs.DataNode: ok".to_vec(), ErrorReason::BadTimestamp, "field 'date': '081399 203615' does not match '%y%m%d %H%M%S': input is out of range"),
        ("otel", br#"{"resourceLogs": 7}"#.to_vec(), ErrorReason::InvalidOtlp, "invalid type: integer `7`, expected a sequence at line 1 column 18"),
        ("otel", br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}"#.to_vec(), ErrorReason::InvalidOtlp, "bad nanosecond time 'soon'"),
    ];
    for (stream, payload, reason, detail) in cases {
        let d = decoder(stream);
        let mut out = Vec::new();
        let Decoded::Error(err) = d.decode(&ORIGIN, &payload, &mut out) else { panic!("accepted: {}", String::from_utf8_lossy(&payload)) };
        assert_eq!((err.reason, err.detail.as_str()), (reason, detail));
        assert_eq!(out.len(), 1);
        let doc: Value = serde_json::from_str(&tantivy::Document::to_json(&out[0], d.schema().schema())).unwrap();
        assert_eq!(doc["_kind"], json!([1]));
        assert_eq!(doc["_error_reason"], json!([reason.as_str()]));
        assert_eq!(doc["_offset"], json!([41]));
        // The payload is kept: as text when UTF-8, else base64.
        let (stored, encoding) = (&doc["_payload"][0], &doc["_payload_encoding"][0]);
        match std::str::from_utf8(&payload) {
            Ok(text) => assert_eq!((stored.as_str().unwrap(), encoding.as_str().unwrap()), (text, "utf8")),
            Err(_) => assert_eq!(encoding, "base64"),
        }
    }
}

/// A pattern's groups become typed columns and the event time; the line stays `message`.
#[test]
fn text_pattern_fills_fields_and_time() {
    let d = decoder("apache");
    let line = "[Sun Dec 04 04:51:18 2005] [error] [client 1.2.3.4] Directory index forbidden";
    let docs = decode(&d, line.as_bytes());
    assert_eq!(docs[0]["message"], json!([line]));
    assert_eq!(docs[0]["level"], json!(["error"]));
    assert_eq!(docs[0]["client"], json!(["1.2.3.4"]));
    assert_eq!(docs[0]["content"], json!(["Directory index forbidden"]));
    // date -u -d '2005-12-04 04:51:18' +%s → 1133671878
    assert_eq!(docs[0]["_timestamp"], json!(["2005-12-04T04:51:18Z"]));
    assert!(docs[0].get("_attributes").is_none(), "{}", docs[0]);
    // The optional group took no part: no value.
    let docs = decode(&d, b"[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok");
    assert!(docs[0].get("client").is_none() && docs[0]["level"] == json!(["notice"]), "{}", docs[0]);

    // A line it does not match keeps its message and the Kafka time, marked.
    let mut out = Vec::new();
    assert_eq!(d.decode(&ORIGIN, b"free text", &mut out), Decoded::Unmatched);
    let doc: Value = serde_json::from_str(&tantivy::Document::to_json(&out[0], d.schema().schema())).unwrap();
    assert_eq!(doc["message"], json!(["free text"]));
    assert_eq!(doc["_kind"], json!([0]), "a row, not an error row");
    assert_eq!(doc["_timestamp"], json!(["2023-11-14T22:13:20Z"]));
    assert_eq!(doc["_attributes"], json!([{ tierlog_ingest::MISMATCH_KEY: "no match" }]));
}

/// A syslog time has no year: it takes the Kafka record's (2023 here).
#[test]
fn syslog_time_takes_the_record_year() {
    let d = decoder("syslog");
    let docs = decode(&d, b"Jun  4 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown");
    assert_eq!(docs[0]["_timestamp"], json!(["2023-06-04T15:16:01Z"]));
    assert_eq!(docs[0]["host"], json!(["combo"]));
}
