//! `[[query.users]]`: bearer tokens over HTTP and passwords over the PostgreSQL wire,
//! each limited to named streams. Missing or wrong credentials get 401 (or a pg auth
//! error) and no data; a table outside the grant gets 403 (SQLSTATE 42501); the server
//! answers the next query. The query metrics count what happened.

mod support;

use std::time::Duration;

use serde_json::json;
use support::kafka::TextStreams;
use support::psql::{pg_port, psql_as};
use support::{http, node, services, unique_topic, wait_for};

const OPS_TOKEN: &str = "ops-token-0123456789";
const BI_TOKEN: &str = "bi-token-9876543210";
const BI_PASSWORD: &str = "bi-password-42";

fn sql(node: &node::Node, token: Option<&str>, statement: &str) -> http::Response {
    http::request(node.http, "POST", "/api/v1/sql", &json!({ "sql": statement }).to_string(), token).unwrap()
}

#[test]
fn tokens_and_passwords_limit_each_user_to_its_streams() {
    let Some(services) = services() else { return };
    let feeds = TextStreams::new(&services.kafka_brokers, &[("hdfs", "loghub/HDFS_2k.log"), ("apache", "loghub/Apache_2k.log")]);
    let streams = format!(
        "[[query.users]]\nname = \"ops\"\ntoken = \"{OPS_TOKEN}\"\nstreams = [\"*\"]\n\
         [[query.users]]\nname = \"bi\"\ntoken = \"{BI_TOKEN}\"\npassword = \"{BI_PASSWORD}\"\nstreams = [\"hdfs\"]\n{}",
        feeds.config
    );
    let config = node::config(&services, &unique_topic("auth"), &streams);
    let pg = pg_port(&config);
    let mut node = node::Node::start(&config);
    node.wait_ready(Duration::from_secs(60));
    feeds.produce(&services.kafka_brokers);
    let (hdfs, apache) = (feeds.lines(0), feeds.lines(1));
    let count = |token: &str, table: &str| sql(&node, Some(token), &format!("SELECT count(*) AS n FROM {table}")).json()["rows"][0]["n"].as_u64();
    wait_for("both streams queryable", Duration::from_secs(60), || {
        (count(OPS_TOKEN, "hdfs")? == hdfs.len() as u64 && count(OPS_TOKEN, "apache")? == apache.len() as u64).then_some(())
    });

    // HTTP: no token and a wrong token get 401 and no rows; liveness needs no token.
    for token in [None, Some("not-a-token"), Some(&BI_TOKEN[..BI_TOKEN.len() - 1])] {
        let r = sql(&node, token, "SELECT count(*) AS n FROM hdfs");
        assert_eq!(r.status, 401, "{token:?}: {}", r.body);
        assert!(r.json().get("rows").is_none(), "{}", r.body);
        assert!(r.body.contains("token"), "{}", r.body);
    }
    assert_eq!(http::get(node.http, "/api/v1/streams").unwrap().status, 401);
    assert_eq!(http::get(node.http, "/metrics").unwrap().status, 401);
    assert_eq!(http::get(node.http, "/health").unwrap().status, 200);

    // bi reads hdfs, and nothing of apache: directly, joined, in a subquery or by search.
    assert_eq!(count(BI_TOKEN, "hdfs"), Some(hdfs.len() as u64));
    for statement in [
        "SELECT count(*) FROM apache",
        "SELECT count(*) FROM apache_errors",
        "SELECT count(*) FROM hdfs WHERE message IN (SELECT message FROM apache)",
        "WITH a AS (SELECT * FROM apache) SELECT count(*) FROM a",
    ] {
        let r = sql(&node, Some(BI_TOKEN), statement);
        assert_eq!(r.status, 403, "{statement}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.starts_with("permission denied: user 'bi' may not read table 'apache"), "{error}");
    }
    let r = http::request(node.http, "GET", "/api/v1/search?stream=apache&q=error", "", Some(BI_TOKEN)).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    let listed = http::request(node.http, "GET", "/api/v1/streams", "", Some(BI_TOKEN)).unwrap().json();
    let names: Vec<&str> = listed["streams"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hdfs"]);
    // ops has every stream.
    assert_eq!(count(OPS_TOKEN, "apache"), Some(apache.len() as u64));

    // PostgreSQL wire: bi's password; a wrong one, and ops (token only), are refused.
    let levels = hdfs.iter().filter(|l| String::from_utf8_lossy(l).split_whitespace().nth(3) == Some("WARN")).count();
    let got = psql_as(pg, "bi", Some(BI_PASSWORD), "SELECT count(*) FROM hdfs WHERE split_part(message, ' ', 4) = 'WARN'");
    assert_eq!(got, Ok(levels.to_string()));
    let e = psql_as(pg, "bi", Some("wrong-password"), "SELECT count(*) FROM hdfs").unwrap_err();
    assert!(e.to_lowercase().contains("password authentication failed for user \"bi\""), "{e}");
    let e = psql_as(pg, "bi", None, "SELECT 1").unwrap_err();
    assert!(e.contains("password"), "{e}");
    let e = psql_as(pg, "ops", Some(OPS_TOKEN), "SELECT 1").unwrap_err();
    assert!(e.to_lowercase().contains("password authentication failed for user \"ops\""), "{e}");
    let e = psql_as(pg, "bi", Some(BI_PASSWORD), "SELECT count(*) FROM apache").unwrap_err();
    assert!(e.contains("permission denied: user 'bi' may not read table 'apache'"), "{e}");
    // psql's own catalog queries still work for a limited user.
    let tables = psql_as(pg, "bi", Some(BI_PASSWORD), "\\dt").unwrap();
    assert!(tables.contains("hdfs"), "{tables}");

    // The server went on, and the metrics counted the refusals and the answers.
    assert_eq!(count(BI_TOKEN, "hdfs"), Some(hdfs.len() as u64));
    let metrics = http::request(node.http, "GET", "/metrics", "", Some(BI_TOKEN)).unwrap();
    assert_eq!(metrics.status, 200);
    let m = metrics.body;
    assert_eq!(http::metric(&m, "tierlog_auth_failures_total{protocol=\"http\"}"), 5, "{m}");
    assert!(http::metric(&m, "tierlog_auth_failures_total{protocol=\"pg\"}") >= 1, "{m}");
    assert_eq!(http::metric(&m, "tierlog_queries_total{protocol=\"http\",outcome=\"denied\"}"), 5, "{m}");
    assert_eq!(http::metric(&m, "tierlog_queries_total{protocol=\"pg\",outcome=\"denied\"}"), 1, "{m}");
    assert!(http::metric(&m, "tierlog_queries_total{protocol=\"pg\",outcome=\"ok\"}") >= 2, "{m}");
    assert!(http::metric(&m, "tierlog_queries_total{protocol=\"http\",outcome=\"ok\"}") >= 4, "{m}");
    assert!(http::metric(&m, "tierlog_query_duration_seconds_count{protocol=\"http\"}") >= 9, "{m}");
    assert!(node.is_running());
}
