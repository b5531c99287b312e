//! Several real `auditrelay serve` processes on one PostgreSQL database, as a deployment behind
//! a load balancer runs them: each on a loopback port and with a data directory of its own,
//! all sharing the database and the key-encryption key.
//! A test can kill a node (SIGKILL), freeze and thaw it (SIGSTOP, SIGCONT), and learn which
//! node holds a lease.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::postgres;
use super::process::{free_port, serve_with};
use super::signing::BIN;

/// One `serve` process.
pub struct Node {
    pub base: String,
    pub data: tempfile::TempDir,
    /// Where its `/metrics` are served.
    metrics: String,
    child: Child,
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the node is running")
    }
}

/// The nodes, their database and the org-admin token they share.
pub struct Nodes {
    /// The shared database's URL.
    pub url: String,
    pub token: String,
    pub nodes: Vec<Node>,
    env: Vec<(String, String)>,
}

impl Nodes {
    /// `n` nodes on a new database, each run as `--dev` would (webhooks may reach the tests'
    /// loopback receivers over http) with `env` (`AUDITRELAY_SECTION__KEY` pairs) on top; `None`
    /// (the reason printed) where PostgreSQL is not installed.
    pub async fn start(n: usize, env: &[(&str, &str)]) -> Option<Self> {
        let database = postgres::database().await?;
        Some(Self::on(&database.url, n, env).await)
    }

    /// `n` nodes on the database at `url` (a cluster of the test's own, say), as
    /// [`Nodes::start`] runs them.
    pub async fn on(url: &str, n: usize, env: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("AUDITRELAY_STORE__URL".into(), url.to_owned()));
        env.push((
            "AUDITRELAY_STORE__KEY_ENCRYPTION_KEY".into(),
            postgres::KEY_ENCRYPTION_KEY.into(),
        ));
        let token = token(&env);
        let mut nodes = Self {
            url: url.to_owned(),
            token,
            nodes: Vec::new(),
            env,
        };
        for _ in 0..n {
            nodes.add().await;
        }
        nodes
    }

    /// A plain connection to the shared database, for what a test checks behind the nodes'
    /// backs.
    pub async fn connect(&self) -> sqlx::postgres::PgConnection {
        use sqlx::Connection as _;
        sqlx::postgres::PgConnection::connect(&self.url)
            .await
            .unwrap()
    }

    /// Starts one more node; returns its index.
    pub async fn add(&mut self) -> usize {
        self.add_with(&[]).await
    }

    /// Starts one more node with `env` on top of the others'; returns its index.
    ///
    /// A free port is free only when it is picked: a server another test starts meanwhile
    /// may take it first, and then answers the node's readiness check in its place (once in
    /// CI, the node's first request then met that server's 401). So the node is asked
    /// something only a node of this database answers, with the shared token, and started
    /// again on another port if the answer is not its own.
    pub async fn add_with(&mut self, env: &[(&str, &str)]) -> usize {
        for _ in 0..5 {
            let port = free_port();
            let data = tempfile::tempdir().unwrap();
            let metrics = format!("127.0.0.1:{}", free_port());
            let mut command = Command::new(BIN);
            command
                .env("AUDITRELAY_DELIVERY__ALLOW_HTTP_ENDPOINTS", "true")
                .env("AUDITRELAY_DELIVERY__ALLOW_PRIVATE_ENDPOINTS", "true")
                .env("AUDITRELAY_LOG__LEVEL", "warn")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .env("AUDITRELAY_METRICS__LISTEN", &metrics)
                .envs(env.iter().copied())
                .stderr(Stdio::inherit());
            let mut child = serve_with(command, data.path(), port).await;
            let base = format!("http://127.0.0.1:{port}");
            let ours = reqwest::Client::new()
                .get(format!("{base}/v3/audit-log-destinations"))
                .bearer_auth(&self.token)
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
            if !ours || child.try_wait().unwrap().is_some() {
                let _ = child.start_kill();
                let _ = child.wait().await;
                continue;
            }
            self.nodes.push(Node {
                base,
                data,
                metrics: format!("http://{metrics}/metrics"),
                child,
            });
            return self.nodes.len() - 1;
        }
        panic!("no node of this database answered on five ports in turn");
    }

    /// Kills node `i` at once, as a crash would.
    pub async fn kill(&mut self, i: usize) {
        let child = &mut self.nodes[i].child;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    /// Freezes node `i` (SIGSTOP): it holds its connections and does nothing.
    pub fn freeze(&self, i: usize) {
        signal(self.nodes[i].pid(), "STOP");
    }

    /// Lets a frozen node `i` go on (SIGCONT).
    pub fn thaw(&self, i: usize) {
        signal(self.nodes[i].pid(), "CONT");
    }

    /// The sum of the series of metric `name` node `i` reports (0 when it has none).
    pub async fn metric(&self, i: usize, name: &str) -> f64 {
        let text = reqwest::get(&self.nodes[i].metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The index of the node that holds a lease whose name is `LIKE` `pattern` now, if one
    /// does.
    pub async fn holder(&self, pattern: &str) -> Option<usize> {
        let mut conn = self.connect().await;
        let pid: Option<String> = sqlx::query_scalar(
            "SELECT n.name FROM leases l JOIN nodes n ON n.id = l.holder
             WHERE l.name LIKE $1 AND l.expires_at > clock_timestamp()",
        )
        .bind(pattern)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        // A node's name ends with its process id.
        let pid: u32 = pid?.rsplit(' ').next()?.parse().ok()?;
        self.nodes
            .iter()
            .position(|node| node.child.id() == Some(pid))
    }

    /// The environment every node runs with: the shared database and key-encryption key.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The epoch of the lease whose name is `LIKE` `pattern`: how many times it was taken.
    pub async fn epoch(&self, pattern: &str) -> Option<i64> {
        let mut conn = self.connect().await;
        sqlx::query_scalar("SELECT epoch FROM leases WHERE name LIKE $1")
            .bind(pattern)
            .fetch_optional(&mut conn)
            .await
            .unwrap()
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// An org-admin token, made with the CLI on the shared database (from a data directory of its
/// own: a token needs none).
fn token(env: &[(String, String)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args([
            "token",
            "create",
            "--name",
            "test",
            "--role",
            "org-admin",
            "--kind",
            "system",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env_remove("RUST_LOG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().to_owned()
}

/// How long a test waits for what takes a lease's time-to-live and a little more.
pub const TAKEOVER: Duration = Duration::from_secs(10);
