//! The README's walkthrough, run as written, so that it cannot drift from what the binary does.
//!
//! The walkthrough is the part of `README.md` between `<!-- walkthrough -->` and
//! `<!-- /walkthrough -->`. Its ```` ```sh server ```` and ```` ```sh receiver ```` blocks are
//! the long-running commands of terminals 1 and 2, started in the background in that order;
//! every other ```` ```sh ```` block is terminal 3, run in order in one `bash -e -o pipefail`,
//! as the README tells the reader to. Three things are changed, all outside the commands' meaning: the binary
//! is the one this test run built, the ports are free ones instead of 8080 and 9000 (the
//! server's through `AUDITRELAY_SERVER__LISTEN`, the CLI's through `AUDITRELAY_URL`, curl's by
//! rewriting the address), and the working directory is a fresh one.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::support::process::free_port;
use crate::support::signing::BIN;
use crate::support::skip_unless_ci;

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
/// Long enough for a loaded 2-core machine; the walkthrough takes a few seconds.
const PATIENCE: Duration = Duration::from_secs(120);

/// A fenced block of the walkthrough.
#[derive(Debug, PartialEq, Eq)]
struct Block {
    /// `server`, `receiver`, or empty for terminal 3.
    role: String,
    code: String,
}

/// The walkthrough's `sh` blocks, in order.
fn walkthrough(readme: &str) -> Vec<Block> {
    let start = readme
        .find("<!-- walkthrough -->")
        .expect("README.md marks its walkthrough with <!-- walkthrough -->");
    let end = readme
        .find("<!-- /walkthrough -->")
        .expect("README.md ends its walkthrough with <!-- /walkthrough -->");
    let mut blocks = Vec::new();
    let mut lines = readme[start..end].lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```sh") else {
            continue;
        };
        let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        blocks.push(Block {
            role: info.trim().to_owned(),
            code: code.join("\n") + "\n",
        });
    }
    blocks
}

struct Run {
    dir: tempfile::TempDir,
    server_port: u16,
    receiver_port: u16,
    background: Vec<Child>,
}

impl Run {
    fn rewrite(&self, code: &str) -> String {
        let server = format!("127.0.0.1:{}", self.server_port);
        code.replace("./target/release/auditrelay", BIN)
            .replace("localhost:8080", &server)
            .replace("127.0.0.1:8080", &server)
            .replace(
                "127.0.0.1:9000",
                &format!("127.0.0.1:{}", self.receiver_port),
            )
    }

    fn bash(&self, code: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .args(["-e", "-o", "pipefail", "-c"])
            .arg(self.rewrite(code))
            .current_dir(self.dir.path())
            .env(
                "AUDITRELAY_SERVER__LISTEN",
                format!("127.0.0.1:{}", self.server_port),
            )
            .env(
                "AUDITRELAY_URL",
                format!("http://127.0.0.1:{}", self.server_port),
            )
            .env_remove("AUDITRELAY_TOKEN")
            .env_remove("AUDITRELAY_LISTEN_AUTHORIZATION")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts a terminal that keeps running, its output in `<role>.out` beside the walk's files.
    fn start(&mut self, block: &Block) {
        let log = std::fs::File::create(self.log_path(&block.role)).unwrap();
        let child = self
            .bash(&block.code)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that stopping it stops what bash started.
            .process_group(0)
            .spawn()
            .expect("bash runs");
        self.background.push(child);
    }

    fn log_path(&self, role: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{role}.out"))
    }

    fn logs(&self) -> String {
        ["server", "receiver"]
            .iter()
            .map(|role| {
                let text = std::fs::read_to_string(self.log_path(role)).unwrap_or_default();
                format!("--- {role} ---\n{text}")
            })
            .collect()
    }

    /// Stops terminals 1 and 2 the way Ctrl-C would (SIGTERM to each one's process group),
    /// and waits for them.
    async fn stop(&mut self) {
        for child in &mut self.background {
            signal_group(child, "-TERM");
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}

/// Whatever a failed or timed-out walk left running goes with it, before its directory does.
impl Drop for Run {
    fn drop(&mut self) {
        for child in &mut self.background {
            signal_group(child, "-KILL");
        }
    }
}

fn signal_group(child: &Child, signal: &str) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args([signal, "--", &format!("-{pid}")])
            .status();
    }
}

/// Waits until something accepts connections on `port`.
async fn listening(port: u16, what: &str, run: &Run) {
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the {what} never listened\n{}",
            run.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn missing_tools() -> Vec<&'static str> {
    ["bash", "curl", "jq"]
        .into_iter()
        .filter(|tool| {
            !std::env::var_os("PATH")
                .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        })
        .collect()
}

#[test]
fn the_walkthrough_is_found() {
    let readme = std::fs::read_to_string(README).unwrap();
    let blocks = walkthrough(&readme);
    let roles: Vec<&str> = blocks.iter().map(|b| b.role.as_str()).collect();
    assert_eq!(&roles[..2], ["server", "receiver"], "{blocks:#?}");
    assert!(roles[2..].iter().all(|r| r.is_empty()), "{roles:?}");
    assert!(blocks.len() >= 5, "{blocks:#?}");
}

#[tokio::test]
async fn the_walkthrough_runs_as_written() {
    let missing = missing_tools();
    if !missing.is_empty() {
        skip_unless_ci(&format!(
            "the README walkthrough needs {} (install them)",
            missing.join(", ")
        ));
        return;
    }
    let readme = std::fs::read_to_string(README).unwrap();
    let blocks = walkthrough(&readme);
    let mut run = Run {
        dir: tempfile::tempdir().unwrap(),
        server_port: free_port(),
        receiver_port: free_port(),
        background: Vec::new(),
    };

    run.start(&blocks[0]);
    listening(run.server_port, "server", &run).await;
    run.start(&blocks[1]);
    listening(run.receiver_port, "receiver", &run).await;
    let script: String = blocks[2..].iter().map(|b| b.code.as_str()).collect();
    // Terminal 3 in a group of its own too, so that a timed-out walk takes what it ran along.
    let terminal = run
        .bash(&script)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let group = terminal.id();
    let finished = tokio::time::timeout(PATIENCE, terminal.wait_with_output()).await;
    if finished.is_err()
        && let Some(pid) = group
    {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    let out = finished
        .expect("the walkthrough finishes")
        .expect("bash runs");
    run.stop().await;
    let said = text(&out);
    assert!(
        out.status.success(),
        "the walkthrough failed ({}):\n{said}\n{}",
        out.status,
        run.logs()
    );

    // What the README says each step shows.
    for expected in [
        "{\"status\":\"ok\"}\n", // health
        "\nauditrelay\n",        // the OpenAPI document's title
        r#"{"accepted":2}"#,     // the events
        r#""status": 400"#,      // the bad line
        r#""webhook_status": "active""#,
        r#""last_response_code": 202"#,
        "lines verified: all valid",
    ] {
        assert!(said.contains(expected), "{expected:?} is not in:\n{said}");
    }
    assert_eq!(
        said.matches("lines verified: all valid").count(),
        2,
        "both verify runs pass:\n{said}"
    );
    // The receiver got the samples and, through the replay, the two events from before.
    let delivered = std::fs::read_to_string(run.dir.path().join("delivered.log")).unwrap();
    // The two events sent with curl, by what only they carry: a trace id and a URI.
    for mark in ["3959872677347089807", "\"/control_planes\""] {
        assert!(delivered.contains(mark), "{mark} never delivered");
    }
    assert!(delivered.lines().count() >= 11, "{delivered}");
    // Stopping terminal 1 stopped the server bash started, not only bash.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", run.server_port))
            .await
            .is_err(),
        "the server still runs"
    );
}
