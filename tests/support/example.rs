//! The `[[streams]]` of `deploy/example.toml`, so tests run the configs the docs show.

/// The example's stream `name`, fed by `topic` instead of its own, with `policy` (TOML
/// `key = value` lines) added to its `[streams.policy]`.
pub fn stream(name: &str, topic: &str, policy: &str) -> toml::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/example.toml");
    let example: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let streams = example["streams"].as_array().unwrap();
    let mut stream = streams.iter().find(|s| s["name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no stream {name}")).clone();
    let table = stream.as_table_mut().unwrap();
    table.insert("topics".into(), toml::Value::Array(vec![toml::Value::String(topic.into())]));
    let extra: toml::Table = toml::from_str(policy).unwrap();
    let policy = table.entry("policy").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    policy.as_table_mut().unwrap().extend(extra);
    stream
}

/// `streams` as the `[[streams]]` text of a config.
pub fn to_config(streams: Vec<toml::Value>) -> String {
    let mut wrapper = toml::Table::new();
    wrapper.insert("streams".into(), toml::Value::Array(streams));
    toml::to_string(&wrapper).unwrap()
}
