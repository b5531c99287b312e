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

use std::os::unix::fs::MetadataExt as _;
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
use super::skip_unless_ci;

/// The database every test's database is a copy of, migrated once.
const TEMPLATE: &str = "auditrelay_template";

/// The run's cluster: its port, and the pipe whose end stops it.
struct Cluster {
    port: u16,
    log: PathBuf,
    _stop: Mutex<ChildStdin>,
}

static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database of its own for one test, a copy of the migrated template.
pub struct Database {
    pub url: String,
    port: u16,
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

async fn start() -> Option<Cluster> {
    let Some(bin) = server_binaries() else {
        skip_unless_ci(
            "initdb and postgres are not installed (Debian package postgresql): the PostgreSQL store tests need a real server",
        );
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("auditrelay-pg-")
        .tempdir()
        .unwrap()
        .keep();
    if running_as_root() {
        let status = Command::new("chown")
            .args(["postgres:", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "chown of {} failed", dir.display());
    }
    let data = dir.join("data");
    let log = dir.join("postgres.log");
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
    let port = free_port();
    // Durable enough for tests that kill nodes, not the server: the operating system keeps
    // what PostgreSQL wrote. `fsync=off` spares the disk; a test of the server's own crash
    // would turn it back on.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
         -c full_page_writes=off -c max_connections=300 >{log} 2>&1 & pid=$!; \
         read _; kill -INT $pid; wait $pid; rm -rf {dir}",
        postgres = bin.join("postgres").display(),
        data = data.display(),
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
        _stop: Mutex::new(stop),
    })
}
