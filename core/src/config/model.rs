//! Config types. Every section has defaults, so an empty file is a valid single-node
//! config with no streams. Unknown keys are rejected everywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::schema::{FieldType, StreamFormat, TimestampFormat};
use crate::units::{ByteSize, HumanDuration};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub kafka: KafkaConfig,
    pub cold: ColdConfig,
    pub query: QueryConfig,
    pub streams: Vec<StreamConfig>,
}

/// Limits of the SQL surface (HTTP and PostgreSQL wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Memory all running queries may hold; sorts and aggregations spill to disk past it
    /// where they can, others fail with "query exceeded memory limit".
    pub memory_limit: ByteSize,
    /// A query running longer is cancelled.
    pub timeout: HumanDuration,
    /// Rows an HTTP answer holds at most; the answer says when it was cut.
    pub max_result_rows: u64,
    /// Cold bytes one query may read, estimated before it reads any: a query over it
    /// is refused, saying what it would read. A user's own `max_cold_bytes` overrides it.
    pub max_cold_bytes: ByteSize,
    /// Rows a live-tail client may fall behind by; a client further behind is sent a
    /// `dropped` event and disconnected, so a slow reader never holds the node's memory.
    pub tail_buffer_rows: u64,
    /// Who may query. Empty (the default): anyone who reaches the ports. With any user
    /// configured, HTTP needs a bearer token and the PostgreSQL wire a password.
    pub users: Vec<UserConfig>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit: ByteSize(1 << 30),
            timeout: HumanDuration::secs(60),
            max_result_rows: 100_000,
            max_cold_bytes: ByteSize(10 << 30),
            tail_buffer_rows: 10_000,
            users: Vec::new(),
        }
    }
}

/// One `[[query.users]]` entry: a credential and the streams it may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The PostgreSQL user name; also names the user in logs.
    pub name: String,
    /// HTTP: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// PostgreSQL wire: the password for `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Streams this user may read (the error tables come with them); `"*"` for all.
    pub streams: Vec<String>,
    /// This user's cold byte budget per query, instead of `query.max_cold_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cold_bytes: Option<ByteSize>,
}

/// The stream list value that grants every stream.
pub const ALL_STREAMS: &str = "*";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Unique per node; part of every generation id. Default: the host name.
    pub id: String,
    /// Relative paths are resolved against the config file's folder.
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub pg_addr: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list.
    pub brokers: String,
    pub group_id: String,
    /// Passed to librdkafka as-is (after validation of the few that would break
    /// tierlog's guarantees).
    #[serde(deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColdConfig {
    pub url: ColdLocation,
    /// S3 endpoint for S3-compatible servers; default: AWS (env `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Default: env `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Allow plain-http endpoints (local servers). Default: env `AWS_ALLOW_HTTP`, else false.
    pub allow_http: bool,
    /// Default: env `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<Secret>,
    /// Default: env `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<Secret>,
    /// Default: env `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
    /// Default: `<data_dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// The on-disk cache of cold bytes (index ranges, bundle tails, Parquet pages).
    pub cache_size: ByteSize,
    /// The memory cache of cold index and Parquet byte ranges.
    pub memory_cache_size: ByteSize,
    /// The memory cache of bundle tails (footers and hotcaches): a tier of its own, so
    /// large scans cannot evict what opening every segment needs.
    pub metadata_cache_size: ByteSize,
}

/// Where the cold tier lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdLocation {
    /// `file://PATH`: a local folder (the embedded default).
    Local { root: PathBuf },
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Table name in SQL; `[a-z][a-z0-9_]*`.
    pub name: String,
    pub topics: Vec<String>,
    pub format: StreamFormat,
    /// Payload field holding the event time; absent: the Kafka record time.
    #[serde(default)]
    pub timestamp_field: Option<String>,
    #[serde(default)]
    pub timestamp_format: Option<TimestampFormat>,
    /// `text` streams: a regular expression whose named groups fill the declared fields
    /// of the same name (or `source`) and the `timestamp_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<LinePattern>,
    /// What becomes of a line the `pattern` does not match.
    #[serde(default)]
    pub on_mismatch: OnMismatch,
    /// Larger messages become error rows (`too_large`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: ByteSize,
    #[serde(default)]
    pub fields: Vec<FieldDecl>,
    #[serde(default)]
    pub policy: Policy,
}

/// A `text` stream's line pattern, compiled when the config is read.
#[derive(Clone)]
pub struct LinePattern(regex::Regex);

impl LinePattern {
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The names of its capture groups, in order.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.0.capture_names().flatten()
    }
}

impl FromStr for LinePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // regex-syntax first: its errors say what and where on one line, where
        // regex's own print the pattern over several.
        let syntax = |kind: &dyn fmt::Display, at: usize| {
            let column = s[..at.min(s.len())].chars().count() + 1;
            format!("is not a valid regular expression: {kind} (at character {column})")
        };
        match regex_syntax::Parser::new().parse(s) {
            Err(regex_syntax::Error::Parse(e)) => return Err(syntax(e.kind(), e.span().start.offset)),
            Err(regex_syntax::Error::Translate(e)) => return Err(syntax(e.kind(), e.span().start.offset)),
            _ => {}
        }
        regex::Regex::new(s).map(LinePattern).map_err(|e| format!("is not a usable regular expression: {e}"))
    }
}

impl fmt::Debug for LinePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinePattern({:?})", self.0.as_str())
    }
}

impl PartialEq for LinePattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for LinePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for LinePattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

/// What a `text` stream with a `pattern` does with a line the pattern does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMismatch {
    /// A row with the line as `message` and nothing else, marked in `_attributes`.
    #[default]
    Keep,
    /// An error row, reason `pattern_mismatch`.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    /// Column name.
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// JSON key in the payload (or, in a `text` stream, the pattern's group) when it
    /// differs from `name` (e.g. `"id.orig_h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Lifecycle of a stream's data (DESIGN.md §4–5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub commit_interval: HumanDuration,
    pub rollover_max_age: HumanDuration,
    pub rollover_max_docs: u64,
    pub rollover_max_bytes: ByteSize,
    pub hot_for: HumanDuration,
    /// How long a generation stays on the hot disk after its cold commit, so that
    /// queries that pinned it finish and the cold cache warms up.
    pub hot_grace: HumanDuration,
    /// Rows whose `_timestamp` is older are removed, from both tiers.
    pub retention: HumanDuration,
    /// After the commit that removes expired segments, their Parquet files and bundles
    /// are deleted this much later, so that queries that pinned an older table version
    /// finish; at least `query.timeout`.
    pub retention_grace: HumanDuration,
    /// Small cold segments of one hour merge into files of about this size.
    pub compaction_target_size: ByteSize,
    /// Segments of an hour that stay below `compaction_target_size` together (a quiet
    /// stream) are merged anyway once no segment has joined the hour for this long.
    pub compact_after: HumanDuration,
}

/// A credential: kept out of `Debug` output and printed configs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: String::new(), // filled with the host name at load
            data_dir: PathBuf::from("./data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 7280)),
            pg_addr: SocketAddr::from(([127, 0, 0, 1], 5433)),
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "tierlog".into(),
            properties: BTreeMap::new(),
        }
    }
}

impl Default for ColdConfig {
    fn default() -> Self {
        ColdConfig {
            url: ColdLocation::Local { root: PathBuf::from("./data/cold") },
            endpoint: None,
            region: None,
            allow_http: false,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            cache_dir: None,
            cache_size: ByteSize(2 << 30),
            memory_cache_size: ByteSize(512 << 20),
            metadata_cache_size: ByteSize(128 << 20),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            commit_interval: HumanDuration::secs(1),
            rollover_max_age: HumanDuration::secs(15 * 60),
            rollover_max_docs: 5_000_000,
            rollover_max_bytes: ByteSize::mib(512),
            hot_for: HumanDuration::secs(3600),
            hot_grace: HumanDuration::secs(300),
            retention: HumanDuration::secs(30 * 86_400),
            retention_grace: HumanDuration::secs(3600),
            compaction_target_size: ByteSize::mib(256),
            compact_after: HumanDuration::secs(3600),
        }
    }
}

fn default_max_message_bytes() -> ByteSize {
    ByteSize::mib(1)
}

impl FieldDecl {
    /// The JSON key this field is read from.
    pub fn source_key(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }
}

impl FromStr for ColdLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a path, e.g. file://./data/cold".into());
            }
            return Ok(ColdLocation::Local { root: PathBuf::from(path) });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return Err(format!(
                    "'{bucket}' is not a valid bucket name (3-63 characters: a-z, 0-9, '-', '.')"
                ));
            }
            return Ok(ColdLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(format!("'{s}' is not a cold storage URL (use file://PATH or s3://BUCKET/PREFIX)"))
    }
}

impl fmt::Display for ColdLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColdLocation::Local { root } => write!(f, "file://{}", root.display()),
            ColdLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            ColdLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl<'de> Deserialize<'de> for ColdLocation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ColdLocation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// librdkafka takes strings; TOML users write `"fetch.max.bytes" = 52428800` too.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}
