//! Rules that types alone cannot express. Each rule adds a [`Problem`] naming the key
//! path; all rules run so every problem is reported at once.

use std::collections::{HashMap, HashSet};

use super::error::Problem;
use super::model::{ALL_STREAMS, ColdLocation, Config, OnMismatch, QueryConfig, StreamConfig};
use crate::schema::{ERROR_TABLE_SUFFIX, FieldType, RESERVED_PREFIX, StreamFormat, format_columns};

pub(super) fn validate(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    node(config, &mut out);
    kafka(config, &mut out);
    cold(config, &mut out);
    query(config, &mut out);
    streams(config, &mut out);
    out
}

fn node(config: &Config, out: &mut Vec<Problem>) {
    let node = &config.node;
    if !is_token(&node.id, 64) {
        out.push(Problem::new(
            "node.id",
            format!("'{}' is not a valid node id (1-64 characters: letters, digits, '-', '_')", node.id),
        ));
    }
    if node.http_addr == node.pg_addr {
        out.push(Problem::new(
            "node.pg_addr",
            format!("{} is also node.http_addr; each listener needs its own address", node.pg_addr),
        ));
    }
}

fn kafka(config: &Config, out: &mut Vec<Problem>) {
    let kafka = &config.kafka;
    let brokers: Vec<&str> = kafka.brokers.split(',').map(str::trim).collect();
    for broker in &brokers {
        let port_ok = broker.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            out.push(Problem::new(
                "kafka.brokers",
                format!("'{broker}' is not host:port (e.g. 127.0.0.1:9092)"),
            ));
        }
    }
    if kafka.group_id.trim().is_empty() {
        out.push(Problem::new("kafka.group_id", "must not be empty"));
    }
    for (key, value) in &kafka.properties {
        let path = format!("kafka.properties.\"{key}\"");
        let reason = match key.as_str() {
            "bootstrap.servers" | "metadata.broker.list" => Some("set kafka.brokers instead".to_string()),
            "group.id" => Some("set kafka.group_id instead".to_string()),
            "enable.auto.commit" if value != "false" => Some(
                "must stay false: tierlog commits offsets itself, after the index commit that holds the rows"
                    .to_string(),
            ),
            "compression.type" | "compression.codec" if value == "snappy" => Some(
                "snappy is not allowed: the tansu broker corrupts snappy batches; use lz4, zstd, gzip or none"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(reason) = reason {
            out.push(Problem::new(path, reason));
        }
    }
}

fn cold(config: &Config, out: &mut Vec<Problem>) {
    let cold = &config.cold;
    match &cold.url {
        ColdLocation::S3 { .. } => {
            if let Some(endpoint) = &cold.endpoint {
                if endpoint.starts_with("http://") {
                    if !cold.allow_http {
                        out.push(Problem::new(
                            "cold.endpoint",
                            format!("'{endpoint}' is plain http; set cold.allow_http = true to use it"),
                        ));
                    }
                } else if !endpoint.starts_with("https://") {
                    out.push(Problem::new(
                        "cold.endpoint",
                        format!("'{endpoint}' is not an http:// or https:// URL"),
                    ));
                }
            }
        }
        ColdLocation::Local { .. } => {
            let s3_only = [
                ("cold.endpoint", cold.endpoint.is_some()),
                ("cold.region", cold.region.is_some()),
                ("cold.access_key_id", cold.access_key_id.is_some()),
                ("cold.secret_access_key", cold.secret_access_key.is_some()),
                ("cold.session_token", cold.session_token.is_some()),
            ];
            for (path, set) in s3_only {
                if set {
                    out.push(Problem::new(path, format!("only applies to s3:// URLs, but cold.url is {}", cold.url)));
                }
            }
        }
    }
    for (path, size) in [
        ("cold.cache_size", cold.cache_size),
        ("cold.memory_cache_size", cold.memory_cache_size),
        ("cold.metadata_cache_size", cold.metadata_cache_size),
    ] {
        if size.0 == 0 {
            out.push(Problem::new(path, "must be greater than 0"));
        }
    }
}

fn query(config: &Config, out: &mut Vec<Problem>) {
    let q = &config.query;
    if q.memory_limit.0 < 16 << 20 {
        out.push(Problem::new("query.memory_limit", format!("{} is too small (at least 16MiB)", q.memory_limit)));
    }
    if q.timeout.0.is_zero() {
        out.push(Problem::new("query.timeout", "must be greater than 0"));
    }
    if q.max_result_rows == 0 {
        out.push(Problem::new("query.max_result_rows", "must be greater than 0"));
    }
    if !(1..=1_000_000).contains(&q.tail_buffer_rows) {
        out.push(Problem::new("query.tail_buffer_rows", format!("{} is out of range (1 to 1000000)", q.tail_buffer_rows)));
    }
    let mut names = HashSet::new();
    let mut tokens = HashSet::new();
    for (i, user) in q.users.iter().enumerate() {
        let at = |key: &str| format!("query.users[{i}].{key}");
        if user.name.is_empty() {
            out.push(Problem::new(at("name"), "must not be empty"));
        } else if !names.insert(user.name.as_str()) {
            out.push(Problem::new(at("name"), format!("user '{}' is defined twice", user.name)));
        }
        if user.token.is_none() && user.password.is_none() {
            out.push(Problem::new(at("token"), "set a token (HTTP), a password (PostgreSQL wire) or both"));
        }
        for (key, secret) in [("token", &user.token), ("password", &user.password)] {
            if secret.as_ref().is_some_and(|s| s.expose().len() < 8) {
                out.push(Problem::new(at(key), "is too short (at least 8 characters)"));
            }
        }
        if let Some(token) = &user.token
            && !tokens.insert(token.expose())
        {
            out.push(Problem::new(at("token"), "is the same as another user's token"));
        }
        if user.streams.is_empty() {
            out.push(Problem::new(at("streams"), format!("must name at least one stream, or \"{ALL_STREAMS}\" for all")));
        }
        for stream in &user.streams {
            if stream != ALL_STREAMS && !config.streams.iter().any(|s| &s.name == stream) {
                out.push(Problem::new(at("streams"), format!("unknown stream '{stream}'")));
            }
        }
    }
}

fn streams(config: &Config, out: &mut Vec<Problem>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut topics: HashMap<&str, (usize, &str)> = HashMap::new();
    for (i, stream) in config.streams.iter().enumerate() {
        let at = format!("streams[{i}]");
        if !is_identifier(&stream.name) {
            out.push(Problem::new(
                format!("{at}.name"),
                format!("'{}' is not a valid stream name (a-z first, then a-z, 0-9, '_'; at most 64)", stream.name),
            ));
        }
        if let Some(first) = names.insert(&stream.name, i) {
            out.push(Problem::new(
                format!("{at}.name"),
                format!("duplicate stream name '{}' (also streams[{first}])", stream.name),
            ));
        }
        if stream.topics.is_empty() {
            out.push(Problem::new(format!("{at}.topics"), "a stream needs at least one topic"));
        }
        for (j, topic) in stream.topics.iter().enumerate() {
            if !is_topic(topic) {
                out.push(Problem::new(
                    format!("{at}.topics[{j}]"),
                    format!("'{topic}' is not a valid Kafka topic name (1-249 characters: letters, digits, '.', '_', '-')"),
                ));
            }
            if let Some((other, other_name)) = topics.insert(topic, (i, &stream.name)) {
                let reason = if other == i {
                    format!("topic '{topic}' is listed twice")
                } else {
                    format!("topic '{topic}' already feeds stream '{other_name}' (streams[{other}]); a topic feeds one stream")
                };
                out.push(Problem::new(format!("{at}.topics[{j}]"), reason));
            }
        }
        fields(stream, &at, out);
        pattern(stream, &at, out);
        timestamp(stream, &at, out);
        policy(stream, &at, &config.query, out);
        if stream.max_message_bytes.0 == 0 {
            out.push(Problem::new(format!("{at}.max_message_bytes"), "must be greater than 0"));
        }
    }
    // A stream named `x_errors` would shadow the error table of stream `x`.
    for (i, stream) in config.streams.iter().enumerate() {
        if let Some(base) = stream.name.strip_suffix(ERROR_TABLE_SUFFIX) {
            if names.contains_key(base) {
                out.push(Problem::new(
                    format!("streams[{i}].name"),
                    format!("'{}' is the name of stream '{base}''s error table", stream.name),
                ));
            }
        }
    }
}

fn fields(stream: &StreamConfig, at: &str, out: &mut Vec<Problem>) {
    // Text streams get fields from their pattern's groups; OTLP's are fixed.
    let takes_fields = stream.format == StreamFormat::Json || (stream.format == StreamFormat::Text && stream.pattern.is_some());
    if !takes_fields && !stream.fields.is_empty() {
        let builtin: Vec<String> =
            format_columns(stream.format).iter().map(|(n, t)| format!("{n} ({t})")).collect();
        let only = match stream.format {
            StreamFormat::Text => "a text stream declares fields only with a pattern whose named groups fill them",
            _ => "declared fields are only for json and text streams",
        };
        out.push(Problem::new(
            format!("{at}.fields"),
            format!("{} streams have fixed columns ({}); {only}", stream.format, builtin.join(", ")),
        ));
        return;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (j, field) in stream.fields.iter().enumerate() {
        let path = format!("{at}.fields[{j}].name");
        if let Some((_, ty)) = format_columns(stream.format).iter().find(|(name, _)| *name == field.name) {
            out.push(Problem::new(
                path.clone(),
                format!("'{}' is the {} stream's own column ({ty}); name the field otherwise", field.name, stream.format),
            ));
        }
        if field.name.starts_with(RESERVED_PREFIX) {
            out.push(Problem::new(
                path.clone(),
                format!("'{}' is reserved: names starting with '_' are system columns", field.name),
            ));
        } else if !is_identifier(&field.name.to_ascii_lowercase()) || field.name.len() > 64 {
            out.push(Problem::new(
                path.clone(),
                format!(
                    "'{}' is not a valid column name (a letter first, then letters, digits, '_'); \
                     to read a JSON key like 'id.orig_h', set source = \"id.orig_h\" and a plain name",
                    field.name
                ),
            ));
        }
        if let Some(first) = seen.insert(&field.name, j) {
            out.push(Problem::new(path, format!("duplicate field '{}' (also fields[{first}])", field.name)));
        }
        if field.source.as_deref() == Some("") {
            out.push(Problem::new(format!("{at}.fields[{j}].source"), "must not be empty"));
        }
    }
}

/// A text stream's `pattern` against its fields and `on_mismatch`: every named group
/// fills a declared field or the timestamp, every declared field has its group.
fn pattern(stream: &StreamConfig, at: &str, out: &mut Vec<Problem>) {
    let Some(pattern) = &stream.pattern else {
        if stream.on_mismatch != OnMismatch::Keep {
            out.push(Problem::new(format!("{at}.on_mismatch"), "is set but pattern is not"));
        }
        return;
    };
    if stream.format != StreamFormat::Text {
        out.push(Problem::new(format!("{at}.pattern"), format!("only text streams take a pattern; {} streams are parsed by their format", stream.format)));
        return;
    }
    let groups: Vec<&str> = pattern.group_names().collect();
    for group in &groups {
        let fills = stream.fields.iter().any(|f| f.source_key() == *group) || stream.timestamp_field.as_deref() == Some(group);
        if !fills {
            out.push(Problem::new(
                format!("{at}.pattern"),
                format!(
                    "group '{group}' is not a declared field: declare it (e.g. {{ name = \"{group}\", type = \"keyword\" }}), \
                     name it in timestamp_field, or make it a plain group (…)"
                ),
            ));
        }
    }
    for (j, field) in stream.fields.iter().enumerate() {
        if !groups.contains(&field.source_key()) {
            out.push(Problem::new(
                format!("{at}.fields[{j}]"),
                format!("field '{}' has no group (?P<{}>…) in the pattern", field.name, field.source_key()),
            ));
        }
    }
}

fn timestamp(stream: &StreamConfig, at: &str, out: &mut Vec<Problem>) {
    match &stream.timestamp_field {
        None if stream.timestamp_format.is_some() => out.push(Problem::new(
            format!("{at}.timestamp_format"),
            "is set but timestamp_field is not",
        )),
        Some(_) if stream.format == StreamFormat::OtlpJson => out.push(Problem::new(
            format!("{at}.timestamp_field"),
            "otlp_json streams take the time from timeUnixNano; remove it",
        )),
        Some(ts) if stream.format == StreamFormat::Text && !stream.pattern.as_ref().is_some_and(|p| p.group_names().any(|g| g == ts)) => {
            out.push(Problem::new(
                format!("{at}.timestamp_field"),
                format!("a text stream takes its time from a group of its pattern, and there is no group (?P<{ts}>…)"),
            ))
        }
        Some(ts) => {
            if ts.is_empty() {
                out.push(Problem::new(format!("{at}.timestamp_field"), "must not be empty"));
            }
            let declared = stream.fields.iter().find(|f| f.source_key() == ts);
            if let Some(field) = declared.filter(|f| f.ty != FieldType::Timestamp) {
                out.push(Problem::new(
                    format!("{at}.timestamp_field"),
                    format!("'{ts}' is declared as field '{}' of type {}; declare it as timestamp or not at all", field.name, field.ty),
                ));
            }
        }
        None => {}
    }
}

fn policy(stream: &StreamConfig, at: &str, query: &QueryConfig, out: &mut Vec<Problem>) {
    let p = &stream.policy;
    let at = format!("{at}.policy");
    let ms = |d: crate::units::HumanDuration| d.0.as_millis();
    if ms(p.commit_interval) < 10 {
        out.push(Problem::new(format!("{at}.commit_interval"), format!("{} is too short (at least 10ms)", p.commit_interval)));
    }
    if p.commit_interval > p.rollover_max_age {
        out.push(Problem::new(
            format!("{at}.commit_interval"),
            format!("{} is longer than rollover_max_age ({})", p.commit_interval, p.rollover_max_age),
        ));
    }
    if p.rollover_max_docs == 0 {
        out.push(Problem::new(format!("{at}.rollover_max_docs"), "must be greater than 0"));
    }
    if p.rollover_max_bytes.0 < 1 << 20 {
        out.push(Problem::new(format!("{at}.rollover_max_bytes"), format!("{} is too small (at least 1MiB)", p.rollover_max_bytes)));
    }
    if p.compaction_target_size.0 < 1 << 20 {
        out.push(Problem::new(
            format!("{at}.compaction_target_size"),
            format!("{} is too small (at least 1MiB)", p.compaction_target_size),
        ));
    }
    if p.compact_after.0 < std::time::Duration::from_secs(1) {
        out.push(Problem::new(format!("{at}.compact_after"), format!("{} is too short (at least 1s)", p.compact_after)));
    }
    if p.hot_for >= p.retention {
        out.push(Problem::new(
            format!("{at}.hot_for"),
            format!("{} must be shorter than retention ({})", p.hot_for, p.retention),
        ));
    }
    if p.retention_grace < query.timeout {
        out.push(Problem::new(
            format!("{at}.retention_grace"),
            format!(
                "{} is shorter than query.timeout ({}): a query could lose the cold files its table version names",
                p.retention_grace, query.timeout
            ),
        ));
    }
}

fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `[a-z][a-z0-9_]*`, at most 64: safe as an SQL name without quotes and as a path part.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_topic(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
}
