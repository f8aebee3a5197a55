//! A `tierlog serve` child process with its own config and data folder.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Services;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The base config of a test node: free listener ports, the test services, and the
/// given `[[streams]]` text.
pub fn config(services: &Services, group_id: &str, streams: &str) -> String {
    format!(
        r#"
[node]
id = "test-{pid}"
data_dir = "data"
http_addr = "127.0.0.1:{http}"
pg_addr = "127.0.0.1:{pg}"

[kafka]
brokers = "{brokers}"
group_id = "{group_id}"

[cold]
url = "s3://{bucket}/{group_id}"
endpoint = "{endpoint}"
allow_http = true
access_key_id = "test"
secret_access_key = "test"

{streams}
"#,
        pid = std::process::id(),
        http = free_port(),
        pg = free_port(),
        brokers = services.kafka_brokers,
        bucket = services.s3_bucket,
        endpoint = services.s3_endpoint,
    )
}

/// `config` with its cold tier in the local folder `root` instead of the S3 server.
pub fn with_local_cold(config: &str, root: &std::path::Path) -> String {
    let start = config.find("[cold]").expect("a [cold] section");
    let end = start + config[start..].find("\n\n").expect("the [cold] section ends with a blank line");
    format!("{}[cold]\nurl = \"file://{}\"{}", &config[..start], root.display(), &config[end..])
}

pub struct Node {
    child: Child,
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    log: PathBuf,
}

impl Node {
    /// Writes `config` to a fresh folder and starts `tierlog serve` on it.
    pub fn start(config: &str) -> Node {
        Node::start_env(config, &[])
    }

    /// `start`, with extra environment variables (e.g. `TIERLOG_FAILPOINT`).
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tierlog.toml"), config).unwrap();
        Node::spawn(dir, env)
    }

    /// Starts a node again on the same folder (after `terminate` or `kill`).
    pub fn restart(mut old: Node) -> Node {
        let _ = old.child.kill();
        let _ = old.child.wait();
        // Keep the folder: take it out of the old node before it is dropped.
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().unwrap());
        drop(old);
        Node::spawn(dir, &[])
    }

    fn spawn(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Node {
        let config_path = dir.path().join("tierlog.toml");
        let parsed: toml::Table = toml::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        let http: SocketAddr = parsed["node"]["http_addr"].as_str().unwrap().parse().unwrap();
        let log = dir.path().join("tierlog.log");
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tierlog"))
            .args(["serve", "--config"])
            .arg(&config_path)
            // The node's settings come from its file alone.
            .env_remove("TIERLOG_KAFKA_BROKERS")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Node { child, dir, http, log }
    }

    /// SIGKILL: no chance to commit or clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits up to `deadline` for the process to exit by itself (a failpoint's abort).
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        super::wait_for("node exit", deadline, || self.child.try_wait().unwrap())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/ready` until it answers 200; returns how long that took.
    pub fn wait_ready(&mut self, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tierlog exited ({status}) before ready:\n{}", self.log());
            }
            if super::http::get(self.http, "/ready").is_some_and(|r| r.status == 200) {
                let took = start.elapsed();
                eprintln!("node ready after {:.2} s", took.as_secs_f64());
                return took;
            }
            if start.elapsed() > deadline {
                panic!("node not ready within {} s:\n{}", deadline.as_secs(), self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits up to `deadline` for the exit.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                eprintln!("node exited after SIGTERM in {:.2} s", start.elapsed().as_secs_f64());
                return status;
            }
            if start.elapsed() > deadline {
                panic!("node did not stop within {} s of SIGTERM:\n{}", deadline.as_secs(), self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
