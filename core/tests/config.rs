//! Every validation rule of the config, with the exact error an operator sees.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tierlog_core::Config;
use tierlog_core::config::{ColdLocation, OnMismatch};
use tierlog_core::schema::{FieldType, StreamFormat, TimestampFormat};

const FILE: &str = "tierlog.toml";

fn parse_with_env(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::parse(text, FILE, Path::new("/etc/tierlog"), &|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

fn parse(text: &str) -> Result<Config, String> {
    parse_with_env(text, &[])
}

/// The error text for a config that must be rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e,
    }
}

const STREAM: &str = r#"
[[streams]]
name = "app_logs"
topics = ["app-logs"]
format = "json"
"#;

#[test]
fn empty_config_gets_defaults() {
    let c = parse("").unwrap();
    assert!(!c.node.id.is_empty());
    assert_eq!(c.node.data_dir, Path::new("/etc/tierlog/data"));
    assert_eq!(c.node.http_addr.to_string(), "127.0.0.1:7280");
    assert_eq!(c.node.pg_addr.to_string(), "127.0.0.1:5433");
    assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
    assert_eq!(c.kafka.group_id, "tierlog");
    assert_eq!(c.cold.url, ColdLocation::Local { root: "/etc/tierlog/data/cold".into() });
    assert_eq!(c.cold.cache_dir.as_deref(), Some(Path::new("/etc/tierlog/data/cache")));
    assert!(c.streams.is_empty());
}

#[test]
fn full_example_parses() {
    let c = parse(
        r#"
[node]
id = "node-1"
data_dir = "/var/lib/tierlog"
http_addr = "127.0.0.1:7280"
pg_addr = "127.0.0.1:5433"

[kafka]
brokers = "127.0.0.1:9092,127.0.0.1:9093"
group_id = "tierlog"
[kafka.properties]
"fetch.max.bytes" = 52428800
"compression.type" = "zstd"

[cold]
url = "s3://logs/tierlog"
endpoint = "http://127.0.0.1:9000"
region = "us-east-1"
allow_http = true
access_key_id = "AKIA"
secret_access_key = "s3cr3t"
cache_dir = "../cache"
cache_size = "2GiB"

[[streams]]
name = "app_logs"
topics = ["app-logs"]
format = "json"
timestamp_field = "ts"
timestamp_format = "epoch_ms"
max_message_bytes = "1MiB"
fields = [
  { name = "level",   type = "keyword" },
  { name = "message", type = "text" },
  { name = "status",  type = "i64" },
  { name = "orig_h",  type = "keyword", source = "id.orig_h" },
]
[streams.policy]
commit_interval = "1s"
rollover_max_age = "15m"
rollover_max_docs = 5_000_000
rollover_max_bytes = "512MiB"
hot_for = "1h"
retention = "30d"
compaction_target_size = "256MiB"

[[streams]]
name = "otel"
topics = ["otlp-logs"]
format = "otlp_json"
"#,
    )
    .unwrap();
    assert_eq!(c.kafka.properties["fetch.max.bytes"], "52428800");
    assert_eq!(c.cold.url, ColdLocation::S3 { bucket: "logs".into(), prefix: "tierlog".into() });
    assert_eq!(c.cold.cache_dir.as_deref(), Some(Path::new("/etc/cache")));
    assert_eq!(c.cold.cache_size.0, 2 << 30);
    let s = &c.streams[0];
    assert_eq!(s.format, StreamFormat::Json);
    assert_eq!(s.timestamp_format, Some(TimestampFormat::EpochMs));
    assert_eq!(s.fields[2].ty, FieldType::I64);
    assert_eq!(s.fields[3].source_key(), "id.orig_h");
    assert_eq!(s.policy.rollover_max_age.0, Duration::from_secs(900));
    assert_eq!(s.policy.retention.0, Duration::from_secs(30 * 86400));
    assert_eq!(c.streams[1].policy, Default::default());
    // The printed config masks credentials.
    let printed = c.to_toml();
    assert!(printed.contains("secret_access_key = \"***\""), "{printed}");
    assert!(!printed.contains("s3cr3t"));
    assert!(!format!("{c:?}").contains("s3cr3t"));
}

#[test]
fn syntax_error_names_the_line() {
    assert_eq!(
        error("[node]\nid = \"a\"\nhttp_addr = \n"),
        "tierlog.toml: line 3: string values must be quoted, expected literal string"
    );
}

#[test]
fn unknown_keys() {
    assert_eq!(
        error("[node]\nidd = \"x\"\n"),
        "tierlog.toml: node.idd: unknown field `idd`, expected one of `id`, `data_dir`, `http_addr`, `pg_addr`"
    );
    assert_eq!(
        error("[nodes]\n"),
        "tierlog.toml: nodes: unknown field `nodes`, expected one of `node`, `kafka`, `cold`, `query`, `streams`"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nhot_four = \"1h\"\n")),
        "tierlog.toml: streams[0].policy.hot_four: unknown field `hot_four`, expected one of \
         `commit_interval`, `rollover_max_age`, `rollover_max_docs`, `rollover_max_bytes`, `hot_for`, \
         `hot_grace`, `retention`, `retention_grace`, `compaction_target_size`, `compact_after`"
    );
}

#[test]
fn wrong_enum_values() {
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"a\"]\nformat = \"xml\"\n"),
        "tierlog.toml: streams[0].format: unknown variant `xml`, expected one of `json`, `text`, `otlp_json`"
    );
    assert_eq!(
        error(&format!("{STREAM}fields = [{{ name = \"x\", type = \"string\" }}]\n")),
        "tierlog.toml: streams[0].fields[0].type: unknown variant `string`, expected one of \
         `text`, `keyword`, `i64`, `f64`, `bool`, `timestamp`"
    );
}

#[test]
fn bad_units() {
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nhot_for = \"1 fortnight\"\n")),
        "tierlog.toml: streams[0].policy.hot_for: '1 fortnight' has an unknown time unit 'fortnight' (use ms, s, m, h, d, w)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nrollover_max_bytes = \"512 MiBs\"\n")),
        "tierlog.toml: streams[0].policy.rollover_max_bytes: '512 MiBs' has an unknown size unit 'MiBs' \
         (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nretention = \"30\"\n")),
        "tierlog.toml: streams[0].policy.retention: '30' has no time unit (use ms, s, m, h, d, w)"
    );
    assert_eq!(
        error("[cold]\ncache_size = -1\n"),
        "tierlog.toml: cold.cache_size: a size cannot be negative (-1)"
    );
}

#[test]
fn duplicate_stream_names() {
    assert_eq!(
        error(&format!("{STREAM}{}", STREAM.replace("app-logs", "other"))),
        "tierlog.toml: streams[1].name: duplicate stream name 'app_logs' (also streams[0])"
    );
}

#[test]
fn topic_in_two_streams() {
    assert_eq!(
        error(&format!("{STREAM}{}", STREAM.replace("app_logs", "other"))),
        "tierlog.toml: streams[1].topics[0]: topic 'app-logs' already feeds stream 'app_logs' (streams[0]); \
         a topic feeds one stream"
    );
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"t\", \"t\"]\nformat = \"text\"\n"),
        "tierlog.toml: streams[0].topics[1]: topic 't' is listed twice"
    );
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = []\nformat = \"text\"\n"),
        "tierlog.toml: streams[0].topics: a stream needs at least one topic"
    );
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"bad topic\"]\nformat = \"text\"\n"),
        "tierlog.toml: streams[0].topics[0]: 'bad topic' is not a valid Kafka topic name \
         (1-249 characters: letters, digits, '.', '_', '-')"
    );
}

#[test]
fn reserved_and_invalid_names() {
    assert_eq!(
        error(&format!("{STREAM}fields = [{{ name = \"_timestamp\", type = \"timestamp\" }}]\n")),
        "tierlog.toml: streams[0].fields[0].name: '_timestamp' is reserved: names starting with '_' are system columns"
    );
    assert_eq!(
        error(&format!("{STREAM}fields = [{{ name = \"id.orig_h\", type = \"keyword\" }}]\n")),
        "tierlog.toml: streams[0].fields[0].name: 'id.orig_h' is not a valid column name (a letter first, \
         then letters, digits, '_'); to read a JSON key like 'id.orig_h', set source = \"id.orig_h\" and a plain name"
    );
    assert_eq!(
        error(&format!(
            "{STREAM}fields = [{{ name = \"level\", type = \"keyword\" }}, {{ name = \"level\", type = \"text\" }}]\n"
        )),
        "tierlog.toml: streams[0].fields[1].name: duplicate field 'level' (also fields[0])"
    );
    assert_eq!(
        error("[[streams]]\nname = \"App-Logs\"\ntopics = [\"a\"]\nformat = \"text\"\n"),
        "tierlog.toml: streams[0].name: 'App-Logs' is not a valid stream name (a-z first, then a-z, 0-9, '_'; at most 64)"
    );
    assert_eq!(
        error(&format!("{STREAM}{}", STREAM.replace("app_logs", "app_logs_errors").replace("app-logs", "x"))),
        "tierlog.toml: streams[1].name: 'app_logs_errors' is the name of stream 'app_logs''s error table"
    );
    assert_eq!(
        error("[node]\nid = \"node 1\"\n"),
        "tierlog.toml: node.id: 'node 1' is not a valid node id (1-64 characters: letters, digits, '-', '_')"
    );
}

#[test]
fn fields_only_for_json_and_patterned_text() {
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"a\"]\nformat = \"text\"\nfields = [{ name = \"x\", type = \"text\" }]\n"),
        "tierlog.toml: streams[0].fields: text streams have fixed columns (message (text)); \
         a text stream declares fields only with a pattern whose named groups fill them"
    );
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"a\"]\nformat = \"otlp_json\"\nfields = [{ name = \"x\", type = \"text\" }]\n"),
        "tierlog.toml: streams[0].fields: otlp_json streams have fixed columns (severity_text (keyword), severity_number (i64), \
         body (text), trace_id (keyword), span_id (keyword), service_name (keyword)); declared fields are only for json and text streams"
    );
}

const TEXT: &str = r#"
[[streams]]
name = "apache"
topics = ["apache"]
format = "text"
"#;

/// A text stream's pattern: the regex, its groups against the fields, the time format.
#[test]
fn text_patterns() {
    let good = format!(
        "{TEXT}pattern = '^\\[(?P<time>[^\\]]+)\\] \\[(?P<level>\\w+)\\] (?P<content>.*)'\n\
         timestamp_field = \"time\"\ntimestamp_format = \"%a %b %d %H:%M:%S %Y\"\non_mismatch = \"error\"\n\
         fields = [{{ name = \"level\", type = \"keyword\" }}, {{ name = \"content\", type = \"text\" }}]\n"
    );
    let c = parse(&good).unwrap();
    let s = &c.streams[0];
    assert_eq!(s.pattern.as_ref().unwrap().group_names().collect::<Vec<_>>(), ["time", "level", "content"]);
    assert_eq!(s.on_mismatch, OnMismatch::Error);
    assert_eq!(s.timestamp_format.as_ref().unwrap().to_string(), "%a %b %d %H:%M:%S %Y");
    assert!(c.to_toml().contains("timestamp_format = \"%a %b %d %H:%M:%S %Y\""), "{}", c.to_toml());

    assert_eq!(
        error(&format!("{TEXT}pattern = '^(?P<time>[^\\]+'\n")),
        "tierlog.toml: streams[0].pattern: is not a valid regular expression: unclosed character class (at character 11)"
    );
    assert_eq!(
        error(&format!("{TEXT}pattern = '(?P<level>\\w+) (?P<pid>\\d+)'\nfields = [{{ name = \"level\", type = \"keyword\" }}]\n")),
        "tierlog.toml: streams[0].pattern: group 'pid' is not a declared field: declare it \
         (e.g. { name = \"pid\", type = \"keyword\" }), name it in timestamp_field, or make it a plain group (…)"
    );
    assert_eq!(
        error(&format!("{TEXT}pattern = '(?P<level>\\w+)'\nfields = [{{ name = \"level\", type = \"keyword\" }}, {{ name = \"pid\", type = \"i64\" }}]\n")),
        "tierlog.toml: streams[0].fields[1]: field 'pid' has no group (?P<pid>…) in the pattern"
    );
    assert_eq!(
        error(&format!("{TEXT}pattern = '(?P<message>.*)'\nfields = [{{ name = \"message\", type = \"keyword\" }}]\n")),
        "tierlog.toml: streams[0].fields[0].name: 'message' is the text stream's own column (text); name the field otherwise"
    );
    assert_eq!(
        error(&format!("{TEXT}pattern = '(?P<t>\\S+)'\ntimestamp_field = \"t\"\ntimestamp_format = \"%Y-%m-%d %Q\"\n")),
        "tierlog.toml: streams[0].timestamp_format: '%Y-%m-%d %Q' is not a valid strftime pattern (an unknown or incomplete % specifier)"
    );
    assert_eq!(
        error(&format!("{TEXT}pattern = '(?P<t>\\S+)'\ntimestamp_field = \"t\"\ntimestamp_format = \"%H:%M:%S\"\n")),
        "tierlog.toml: streams[0].timestamp_format: '%H:%M:%S' does not give a full time: \
         it needs the day, the month and the hour (e.g. %b %d %H:%M:%S), or %s"
    );
    assert_eq!(
        error(&format!("{TEXT}timestamp_field = \"time\"\n")),
        "tierlog.toml: streams[0].timestamp_field: a text stream takes its time from a group of its pattern, and there is no group (?P<time>…)"
    );
    assert_eq!(error(&format!("{TEXT}on_mismatch = \"error\"\n")), "tierlog.toml: streams[0].on_mismatch: is set but pattern is not");
    assert_eq!(
        error(&format!("{STREAM}pattern = '(?P<a>.)'\n")),
        "tierlog.toml: streams[0].pattern: only text streams take a pattern; json streams are parsed by their format"
    );
}

#[test]
fn timestamp_rules() {
    assert_eq!(
        error(&format!("{STREAM}timestamp_format = \"epoch_ms\"\n")),
        "tierlog.toml: streams[0].timestamp_format: is set but timestamp_field is not"
    );
    assert_eq!(
        error("[[streams]]\nname = \"a\"\ntopics = [\"a\"]\nformat = \"otlp_json\"\ntimestamp_field = \"ts\"\n"),
        "tierlog.toml: streams[0].timestamp_field: otlp_json streams take the time from timeUnixNano; remove it"
    );
    assert_eq!(
        error(&format!("{STREAM}timestamp_field = \"ts\"\nfields = [{{ name = \"ts\", type = \"i64\" }}]\n")),
        "tierlog.toml: streams[0].timestamp_field: 'ts' is declared as field 'ts' of type i64; declare it as timestamp or not at all"
    );
    assert_eq!(
        error(&format!("{STREAM}timestamp_field = \"ts\"\ntimestamp_format = \"iso\"\n")),
        "tierlog.toml: streams[0].timestamp_format: 'iso' is not a timestamp format: \
         use rfc3339, epoch_s, epoch_ms, epoch_us, epoch_ns or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""
    );
}

#[test]
fn hot_for_must_be_shorter_than_retention() {
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nhot_for = \"7d\"\nretention = \"7d\"\n")),
        "tierlog.toml: streams[0].policy.hot_for: 7d must be shorter than retention (7d)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nhot_for = \"2d\"\nretention = \"1d\"\n")),
        "tierlog.toml: streams[0].policy.hot_for: 2d must be shorter than retention (1d)"
    );
}

#[test]
fn retention_grace_outlasts_the_longest_query() {
    assert_eq!(
        error(&format!("[query]\ntimeout = \"2m\"\n{STREAM}[streams.policy]\nretention_grace = \"1m\"\n")),
        "tierlog.toml: streams[0].policy.retention_grace: 1m is shorter than query.timeout (2m): \
         a query could lose the cold files its table version names"
    );
}

#[test]
fn other_policy_rules() {
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\ncommit_interval = \"1ms\"\n")),
        "tierlog.toml: streams[0].policy.commit_interval: 1ms is too short (at least 10ms)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\ncommit_interval = \"1h\"\nrollover_max_age = \"15m\"\n")),
        "tierlog.toml: streams[0].policy.commit_interval: 1h is longer than rollover_max_age (15m)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nrollover_max_docs = 0\n")),
        "tierlog.toml: streams[0].policy.rollover_max_docs: must be greater than 0"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\nrollover_max_bytes = \"1KiB\"\n")),
        "tierlog.toml: streams[0].policy.rollover_max_bytes: 1KiB is too small (at least 1MiB)"
    );
    assert_eq!(
        error(&format!("{STREAM}[streams.policy]\ncompact_after = \"500ms\"\n")),
        "tierlog.toml: streams[0].policy.compact_after: 500ms is too short (at least 1s)"
    );
    assert_eq!(
        error(&format!("{STREAM}max_message_bytes = 0\n")),
        "tierlog.toml: streams[0].max_message_bytes: must be greater than 0"
    );
}

#[test]
fn kafka_rules() {
    assert_eq!(
        error("[kafka]\nbrokers = \"localhost\"\n"),
        "tierlog.toml: kafka.brokers: 'localhost' is not host:port (e.g. 127.0.0.1:9092)"
    );
    assert_eq!(
        error("[kafka.properties]\n\"compression.type\" = \"snappy\"\n"),
        "tierlog.toml: kafka.properties.\"compression.type\": snappy is not allowed: the tansu broker corrupts \
         snappy batches; use lz4, zstd, gzip or none"
    );
    assert_eq!(
        error("[kafka.properties]\n\"enable.auto.commit\" = true\n"),
        "tierlog.toml: kafka.properties.\"enable.auto.commit\": must stay false: tierlog commits offsets itself, \
         after the index commit that holds the rows"
    );
    assert_eq!(
        error("[kafka.properties]\n\"group.id\" = \"x\"\n"),
        "tierlog.toml: kafka.properties.\"group.id\": set kafka.group_id instead"
    );
}

#[test]
fn cold_rules() {
    assert_eq!(
        error("[cold]\nurl = \"gs://bucket\"\n"),
        "tierlog.toml: cold.url: 'gs://bucket' is not a cold storage URL (use file://PATH or s3://BUCKET/PREFIX)"
    );
    assert_eq!(
        error("[cold]\nurl = \"s3://B\"\n"),
        "tierlog.toml: cold.url: 'B' is not a valid bucket name (3-63 characters: a-z, 0-9, '-', '.')"
    );
    assert_eq!(
        error("[cold]\nurl = \"s3://logs\"\nendpoint = \"http://127.0.0.1:9000\"\n"),
        "tierlog.toml: cold.endpoint: 'http://127.0.0.1:9000' is plain http; set cold.allow_http = true to use it"
    );
    assert_eq!(
        error("[cold]\nendpoint = \"http://127.0.0.1:9000\"\n"),
        "tierlog.toml: cold.endpoint: only applies to s3:// URLs, but cold.url is file:///etc/tierlog/data/cold"
    );
    assert_eq!(
        error("[node]\nhttp_addr = \"127.0.0.1:80\"\npg_addr = \"127.0.0.1:80\"\n"),
        "tierlog.toml: node.pg_addr: 127.0.0.1:80 is also node.http_addr; each listener needs its own address"
    );
}

#[test]
fn query_rules() {
    assert_eq!(
        error("[query]\nmemory_limit = \"1MiB\"\ntimeout = \"0s\"\nmax_result_rows = 0\n"),
        "tierlog.toml: query.memory_limit: 1MiB is too small (at least 16MiB)\n\
         tierlog.toml: query.timeout: must be greater than 0\n\
         tierlog.toml: query.max_result_rows: must be greater than 0"
    );
    let c = parse("[query]\nmemory_limit = \"256MiB\"\ntimeout = \"5s\"\n").unwrap();
    assert_eq!((c.query.memory_limit.0, c.query.timeout.0, c.query.max_result_rows), (256 << 20, Duration::from_secs(5), 100_000));
}

#[test]
fn user_rules() {
    let users = r#"
[[query.users]]
name = "ops"
token = "short"
streams = []

[[query.users]]
name = "ops"
streams = ["nope"]

[[query.users]]
name = "bi"
token = "token-of-bi-1"
password = "pw"
streams = ["*"]

[[query.users]]
name = ""
token = "token-of-bi-1"
streams = ["app_logs"]
"#;
    assert_eq!(
        error(&format!("{users}{STREAM}")),
        "tierlog.toml: query.users[0].token: is too short (at least 8 characters)\n\
         tierlog.toml: query.users[0].streams: must name at least one stream, or \"*\" for all\n\
         tierlog.toml: query.users[1].name: user 'ops' is defined twice\n\
         tierlog.toml: query.users[1].token: set a token (HTTP), a password (PostgreSQL wire) or both\n\
         tierlog.toml: query.users[1].streams: unknown stream 'nope'\n\
         tierlog.toml: query.users[2].password: is too short (at least 8 characters)\n\
         tierlog.toml: query.users[3].name: must not be empty\n\
         tierlog.toml: query.users[3].token: is the same as another user's token"
    );
    let c = parse(&format!(
        "[[query.users]]\nname = \"bi\"\npassword = \"long-enough\"\nstreams = [\"app_logs\"]\n{STREAM}"
    ))
    .unwrap();
    assert_eq!(c.query.users[0].password.as_ref().map(|p| p.expose()), Some("long-enough"));
    assert!(c.query.users[0].token.is_none());
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = error(&format!(
        "[kafka]\nbrokers = \"nohost\"\n{STREAM}[streams.policy]\nhot_for = \"2d\"\nretention = \"1d\"\n"
    ));
    assert_eq!(
        e,
        "tierlog.toml: kafka.brokers: 'nohost' is not host:port (e.g. 127.0.0.1:9092)\n\
         tierlog.toml: streams[0].policy.hot_for: 2d must be shorter than retention (1d)"
    );
}

#[test]
fn environment_overrides() {
    let c = parse_with_env(
        "[kafka]\nbrokers = \"10.0.0.1:9092\"\n[node]\nid = \"a\"\n",
        &[("TIERLOG_KAFKA_BROKERS", "127.0.0.1:19092"), ("TIERLOG_NODE_ID", "b"), ("TIERLOG_HTTP_ADDR", "127.0.0.1:9999")],
    )
    .unwrap();
    assert_eq!(c.kafka.brokers, "127.0.0.1:19092");
    assert_eq!(c.node.id, "b");
    assert_eq!(c.node.http_addr.to_string(), "127.0.0.1:9999");
    // A bad value from the environment names the variable.
    assert_eq!(
        parse_with_env("", &[("TIERLOG_HTTP_ADDR", "nowhere")]).unwrap_err(),
        "tierlog.toml: node.http_addr: invalid socket address syntax (value from TIERLOG_HTTP_ADDR)"
    );
}

#[test]
fn aws_environment_fills_s3_credentials() {
    let c = parse_with_env(
        "[cold]\nurl = \"s3://logs/pfx\"\n",
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
    )
    .unwrap();
    assert_eq!(c.cold.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(c.cold.region.as_deref(), Some("eu-west-1"));
    assert!(c.cold.allow_http);
    assert_eq!(c.cold.access_key_id.as_ref().unwrap().expose(), "key");
    assert_eq!(c.cold.secret_access_key.as_ref().unwrap().expose(), "secret");
    // The config file wins over the environment.
    let c = parse_with_env("[cold]\nurl = \"s3://logs\"\nregion = \"us-east-2\"\n", &[("AWS_REGION", "eu-west-1")]).unwrap();
    assert_eq!(c.cold.region.as_deref(), Some("us-east-2"));
}

#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in ["deploy/local/tierlog.toml", "deploy/example.toml"] {
        let path = root.join(file);
        if let Err(e) = Config::load(&path) {
            panic!("{file} is invalid:\n{e}");
        }
    }
}
