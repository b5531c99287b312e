//! A real PostgreSQL for the tests that need one: a throwaway cluster started once per test run
//! from the installed server binaries (Debian's `postgresql`: `initdb` and `postgres`, run as
//! the `postgres` user when the tests run as root), listening on a loopback port, with one
//! database per test made from a migrated template.
//!
//! The cluster outlives no run: it is started under a shell that waits on a pipe from this
//! process, and when the process ends, however it ends, the pipe closes and the shell stops
//! PostgreSQL and deletes the cluster's directory.
//!
//! Absent binaries: [`database`] prints why and returns `None`, or fails under `CI=true`.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use auditrelay::store::PgStore;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use tokio::sync::OnceCell;

use super::process::free_port;
use super::rsyslog::Certificates;
use super::skip_unless_ci;

/// The key-encryption key every test server on PostgreSQL is given (`store.key_encryption_key`).
pub const KEY_ENCRYPTION_KEY: &str = "YXVkaXRyZWxheSB0ZXN0czogbm90IGEgcmVhbCBrZXk=";

/// The database every test's database is a copy of, migrated once.
const TEMPLATE: &str = "auditrelay_template";

/// The run's cluster: its port, the certificate authority of its TLS certificate, and the
/// pipe whose end stops it.
struct Cluster {
    port: u16,
    log: PathBuf,
    ca: PathBuf,
    _stop: Mutex<ChildStdin>,
}

static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, a copy of the migrated template.
pub struct Database {
    pub url: String,
    port: u16,
    /// PEM of the authority that signed the server's certificate (for 127.0.0.1).
    pub ca: PathBuf,
}

impl Database {
    /// A store on this database, as one node opens it.
    pub async fn open(&self) -> PgStore {
        PgStore::open(&self.url).await.unwrap()
    }

    /// A plain connection, for what a test checks or does behind the store's back.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// The cluster's port: several databases of one run share it.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A new database on the run's cluster, or `None` (with the reason printed) where the
/// PostgreSQL server binaries are not installed.
pub async fn database() -> Option<Database> {
    let cluster = CLUSTER.get_or_init(start).await.as_ref()?;
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(&url(cluster.port, "postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not answering ({e}); its log: {}",
                cluster.log.display()
            )
        });
    // The name is ours (a process id and a counter), not input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {TEMPLATE}"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    Some(Database {
        url: url(cluster.port, &name),
        port: cluster.port,
        ca: cluster.ca.clone(),
    })
}

fn url(port: u16, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{database}")
}

/// Where `initdb` and `postgres` are: on the `PATH`, or in Debian's versioned directory (the
/// newest version there).
fn server_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` with `args`, as the `postgres` user when this process is root (PostgreSQL refuses
/// to run as root).
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

/// Makes a cluster in `dir` (which it gives to the server user): TLS, as a production server
/// would speak, with a certificate for 127.0.0.1 from an authority of its own, and trust for
/// loopback connections. Returns the data directory and the authority's PEM file.
fn init(bin: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let certificates = Certificates::generate();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &certificates.ca).unwrap();
    std::fs::write(dir.join("server.pem"), &certificates.server).unwrap();
    // The key must be the server user's alone.
    let key = dir.join("server.key");
    std::fs::write(&key, &certificates.server_key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "chown of {} failed", dir.display());
    }
    let data = dir.join("data");
    let init = as_server_user(
        &bin.join("initdb"),
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    )
    .output()
    .unwrap();
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    (data, ca)
}

/// The server's settings. `fsync=off` spares the disk: the tests stop and kill servers and
/// nodes, never the machine, and the operating system keeps what PostgreSQL wrote (its WAL
/// included, which a server stopped by `immediate` replays when it starts again).
fn server_options(dir: &Path, port: u16) -> String {
    format!(
        "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
         -c max_connections=300 -c ssl=on -c ssl_cert_file={dir}/server.pem \
         -c ssl_key_file={dir}/server.key",
        dir = dir.display()
    )
}

fn binaries_or_skip() -> Option<PathBuf> {
    let bin = server_binaries();
    if bin.is_none() {
        skip_unless_ci(
            "initdb and postgres are not installed (Debian package postgresql): the PostgreSQL store tests need a real server",
        );
    }
    bin
}

async fn start() -> Option<Cluster> {
    let bin = binaries_or_skip()?;
    let dir = tempfile::Builder::new()
        .prefix("auditrelay-pg-")
        .tempdir()
        .unwrap()
        .keep();
    let (data, ca) = init(&bin, &dir);
    let log = dir.join("postgres.log");
    let port = free_port();
    let script = format!(
        "{postgres} -D {data} {options} >{log} 2>&1 & pid=$!; \
         read _; kill -INT $pid; wait $pid; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        options = server_options(&dir, port),
        dir = dir.display(),
        log = log.display(),
    );
    let mut shell = as_server_user(Path::new("/bin/sh"), &["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stop = shell.stdin.take().unwrap();
    // The shell is not waited for: it ends after this process does.
    drop(shell);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut admin = loop {
        match PgConnection::connect(&url(port, "postgres")).await {
            Ok(conn) => break conn,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!(
                "PostgreSQL did not start ({e}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
        .execute(&mut admin)
        .await
        .unwrap();
    // Migrated once, then closed: a database is copied only while nobody is connected to it.
    let store = PgStore::open(&url(port, TEMPLATE)).await.unwrap();
    store.close().await;
    Some(Cluster {
        port,
        log,
        ca,
        _stop: Mutex::new(stop),
    })
}

/// A cluster of one test's own, which it may stop and start again (the run's shared cluster
/// must stay up for every other test). Stopped and deleted when dropped.
pub struct OwnCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnCluster {
    /// A running cluster with a database `auditrelay`, or `None` (the reason printed) where
    /// the PostgreSQL server binaries are not installed.
    pub async fn start() -> Option<Self> {
        let bin = binaries_or_skip()?;
        let dir = tempfile::Builder::new()
            .prefix("auditrelay-pg-own-")
            .tempdir()
            .unwrap();
        init(&bin, dir.path());
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
        };
        cluster.start_again().await;
        let mut admin = PgConnection::connect(&url(cluster.port, "postgres"))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE DATABASE auditrelay")
            .execute(&mut admin)
            .await
            .unwrap();
        Some(cluster)
    }

    pub fn url(&self) -> String {
        url(self.port, "auditrelay")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = as_server_user(&self.bin.join("pg_ctl"), &all)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once, as a crash would: connections are cut, and what was
    /// committed is recovered from the WAL at the next start.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }

    /// Starts the server (again) on the same port, and waits until it accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.path().join("postgres.log");
        let options = server_options(self.dir.path(), self.port);
        let bin = self.bin.clone();
        let data = self.dir.path().join("data");
        let command = tokio::task::spawn_blocking(move || {
            as_server_user(
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &options,
                    "-w",
                    "start",
                ],
            )
            .output()
            .unwrap()
        });
        let out = command.await.unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_server_user(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        )
        .output();
    }
}
