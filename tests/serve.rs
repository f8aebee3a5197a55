//! `tierlog serve` against the real broker and S3 server.

mod support;

use std::time::Duration;

use support::{http, node, services, sockets};

#[test]
fn ready_against_real_services_and_listening_on_loopback_only() {
    let Some(services) = services() else { return };
    let mut node = node::Node::start(&node::config(&services, "serve-ready", ""));
    node.wait_ready(Duration::from_secs(60));

    let ready = http::get(node.http, "/ready").unwrap().json();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["components"]["kafka"]["status"], "ready");
    assert_eq!(ready["components"]["cold"]["status"], "ready");
    assert_eq!(http::get(node.http, "/health").unwrap().status, 200);

    // Every service of the setup listens on 127.0.0.1 only.
    let port = |url: &str| url.rsplit(':').next().unwrap().trim_end_matches('/').parse::<u16>().unwrap();
    for (what, p) in [
        ("tierlog http", node.http.port()),
        ("kafka broker", port(&services.kafka_brokers)),
        ("s3 server", port(&services.s3_endpoint)),
    ] {
        let addrs = sockets::listening_addresses(p);
        assert!(!addrs.is_empty(), "{what}: nothing listens on port {p}");
        assert!(addrs.iter().all(|a| a == "127.0.0.1"), "{what} on port {p} listens on {addrs:?}");
    }

    let status = node.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit after SIGTERM: {status}\n{}", node.log());
}

#[test]
fn unreachable_broker_is_reported_and_not_ready() {
    let Some(services) = services() else { return };
    // A port nothing listens on.
    let dead = format!("127.0.0.1:{}", node::free_port());
    let services = support::Services { kafka_brokers: dead.clone(), ..services };
    let mut node = node::Node::start(&node::config(&services, "serve-no-broker", ""));

    let body = support::wait_for("kafka reported unavailable", Duration::from_secs(60), || {
        let r = http::get(node.http, "/ready")?;
        let body = r.json();
        (body["components"]["kafka"]["status"] == "unavailable").then_some((r.status, body))
    });
    assert_eq!(body.0, 503);
    let reason = body.1["components"]["kafka"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains(&format!("kafka brokers {dead} unreachable")), "{reason}");
    // The object store is fine, and the log says what is wrong.
    assert_eq!(body.1["components"]["cold"]["status"], "ready");
    assert!(node.log().contains("unavailable; retrying"), "{}", node.log());

    let status = node.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn unreachable_object_store_is_reported() {
    let Some(services) = services() else { return };
    let dead = format!("http://127.0.0.1:{}", node::free_port());
    let services = support::Services { s3_endpoint: dead.clone(), ..services };
    let node = node::Node::start(&node::config(&services, "serve-no-s3", ""));
    let reason = support::wait_for("cold reported unavailable", Duration::from_secs(90), || {
        let body = http::get(node.http, "/ready")?.json();
        body["components"]["cold"]["reason"].as_str().map(str::to_string)
    });
    assert!(reason.contains("cold store s3://"), "{reason}");
}

#[test]
fn invalid_config_exits_2_naming_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[[streams]]\nname = \"a\"\ntopics = [\"t\"]\nformat = \"text\"\n[streams.policy]\nhot_for = \"2d\"\nretention = \"1d\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tierlog"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: streams[0].policy.hot_for: 2d must be shorter than retention (1d)", path.display())),
        "{stderr}"
    );
}
