//! Reading a config: TOML syntax, environment overrides, typed deserialization with key
//! paths, defaults that depend on the host, relative paths, then validation.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, Problem};
use super::model::{ColdLocation, Config, Secret};
use super::validate::validate;

/// A lookup of environment variables; the process environment in production, a map in
/// tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Settings operators change per host, and the variables that override them. An
/// override replaces the file's value before validation, and errors about it name the
/// variable.
pub const ENV_OVERRIDES: &[(&str, &str, &str)] = &[
    ("TIERLOG_NODE_ID", "node", "id"),
    ("TIERLOG_DATA_DIR", "node", "data_dir"),
    ("TIERLOG_HTTP_ADDR", "node", "http_addr"),
    ("TIERLOG_PG_ADDR", "node", "pg_addr"),
    ("TIERLOG_KAFKA_BROKERS", "kafka", "brokers"),
    ("TIERLOG_KAFKA_GROUP_ID", "kafka", "group_id"),
    ("TIERLOG_COLD_URL", "cold", "url"),
    ("TIERLOG_COLD_ENDPOINT", "cold", "endpoint"),
];

impl Config {
    /// Loads, overrides from the process environment, and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: source_name.clone(),
            problems: vec![Problem::new("", format!("cannot read the file: {e}"))],
        })?;
        // Absolute, so printed paths and data folders do not depend on the working dir.
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from("."));
        Config::parse(&text, &source_name, &base_dir, &|k| std::env::var(k).ok())
    }

    /// Parses config text. Relative paths in it are resolved against `base_dir`.
    pub fn parse(
        text: &str,
        source_name: &str,
        base_dir: &Path,
        env: Env<'_>,
    ) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<Problem>| ConfigError {
            source_name: source_name.to_string(),
            problems,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| format!("line {}: ", line_of(text, s.start))).unwrap_or_default();
            fail(vec![Problem::new("", format!("{at}{}", e.message().trim()))])
        })?;

        let overridden = apply_env_overrides(&mut table, env);
        let mut config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let mut reason = e.into_inner().message().trim().to_string();
                if let Some((var, _)) = overridden.iter().find(|(_, p)| path.starts_with(p.as_str())) {
                    reason.push_str(&format!(" (value from {var})"));
                }
                fail(vec![Problem::new(path, reason)])
            })?;

        config.fill_host_defaults(env);
        config.resolve_paths(base_dir);
        let problems = validate(&config);
        if problems.is_empty() { Ok(config) } else { Err(fail(problems)) }
    }

    fn fill_host_defaults(&mut self, env: Env<'_>) {
        if self.node.id.is_empty() {
            self.node.id = host_name().unwrap_or_else(|| "node".into());
        }
        let cold = &mut self.cold;
        if matches!(cold.url, ColdLocation::S3 { .. }) {
            cold.endpoint = cold.endpoint.take().or_else(|| env("AWS_ENDPOINT_URL"));
            cold.region = cold
                .region
                .take()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"));
            cold.access_key_id = cold.access_key_id.take().or_else(|| env("AWS_ACCESS_KEY_ID").map(Secret::new));
            cold.secret_access_key =
                cold.secret_access_key.take().or_else(|| env("AWS_SECRET_ACCESS_KEY").map(Secret::new));
            cold.session_token = cold.session_token.take().or_else(|| env("AWS_SESSION_TOKEN").map(Secret::new));
            if !cold.allow_http {
                cold.allow_http = env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            }
        }
    }

    fn resolve_paths(&mut self, base_dir: &Path) {
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() { p.to_path_buf() } else { clean(&base_dir.join(p)) }
        };
        self.node.data_dir = resolve(&self.node.data_dir);
        if let ColdLocation::Local { root } = &mut self.cold.url {
            *root = resolve(root);
        }
        self.cold.cache_dir = Some(match &self.cold.cache_dir {
            Some(dir) => resolve(dir),
            None => self.node.data_dir.join("cache"),
        });
    }

    /// The resolved config as TOML, credentials masked.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }
}

/// Sets each overridden key in the table; returns (variable, dotted path) pairs.
fn apply_env_overrides(table: &mut toml::Table, env: Env<'_>) -> Vec<(&'static str, String)> {
    let mut applied = Vec::new();
    for (var, section, key) in ENV_OVERRIDES {
        let Some(value) = env(var) else { continue };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // A non-table here is an error in the file; deserialization reports it.
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_string(), toml::Value::String(value));
            applied.push((*var, format!("{section}.{key}")));
        }
    }
    applied
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// Resolves `.` and `..` lexically so printed paths read cleanly.
fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    (!name.is_empty()).then_some(name)
}
