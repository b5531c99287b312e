//! A real rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`): the syslog kind's receiver in the
//! tests. Each one runs in a directory of its own with a generated certificate, listens for
//! syslog over TLS (RFC 5425) on a loopback port, and writes each message's MSG — the signed
//! line — to `received.log`, one per line, and its MSGID and MSG to `messages.log`. It can be
//! stopped and started again on the same port, as a receiver restarted mid-stream is.
//!
//! Absent packages: `start` prints why and returns `None`, or fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::process::free_port;
use super::skip_unless_ci;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS_DRIVER: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

/// Who the receiver asks for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Anyone: TLS without client certificates.
    Anonymous,
    /// Only a client whose certificate `ca` signed (mutual TLS).
    Certificate,
}

pub struct Rsyslog {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    /// PEM of the certificate authority that signed the server's certificate and the client's.
    pub ca_pem: String,
    /// A client certificate (PEM) the receiver takes, and its private key (PEM).
    pub client_certificate: String,
    pub client_key: String,
}

impl Rsyslog {
    /// A running receiver, or `None` (with the reason printed) where rsyslog is not installed.
    pub async fn start(auth: ClientAuth) -> Option<Self> {
        for (path, package) in [(RSYSLOGD, "rsyslog"), (GTLS_DRIVER, "rsyslog-gnutls")] {
            if !Path::new(path).exists() {
                skip_unless_ci(&format!(
                    "{path} is missing (Debian package {package}): the syslog tests need a real rsyslog"
                ));
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let certs = Certificates::generate();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &certs.ca);
        write("server.pem", &certs.server);
        write("server.key", &certs.server_key);
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("rsyslog.conf"),
            config(dir.path(), port, auth),
        )
        .unwrap();
        let mut rsyslog = Self {
            dir,
            port,
            child: None,
            ca_pem: certs.ca,
            client_certificate: certs.client,
            client_key: certs.client_key,
        };
        rsyslog.run().await;
        Some(rsyslog)
    }

    /// `tls://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    /// The lines received so far, in order: whole ones only, since rsyslog may be writing the
    /// last one while it is read.
    pub fn lines(&self) -> Vec<String> {
        let text =
            std::fs::read_to_string(self.dir.path().join("received.log")).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .split('\n')
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The messages received so far, as their MSGID and MSG, in order (whole ones only).
    pub fn messages(&self) -> Vec<(String, String)> {
        let text =
            std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .split('\n')
            .filter_map(|line| line.split_once(' '))
            .map(|(msgid, msg)| (msgid.to_owned(), msg.to_owned()))
            .collect()
    }

    /// What rsyslog said about itself (errors, TLS failures), for a failure's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// Stops it as a service manager does (SIGTERM), and waits for it to exit.
    pub async fn stop(&mut self) {
        self.signal("-TERM").await;
    }

    /// Kills it (SIGKILL), as a crash does: what it had read but not yet written, and what
    /// its TCP had taken but it had not read, are gone.
    pub async fn kill(&mut self) {
        self.signal("-KILL").await;
    }

    /// Freezes it (SIGSTOP): its TCP goes on taking bytes, up to its buffer, that it does not
    /// read, as a hung receiver's does.
    pub fn freeze(&self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .status();
        }
    }

    async fn signal(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, once stopped or killed.
    pub async fn start_again(&mut self) {
        self.run().await;
    }

    async fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rsyslogd.log"))
            .unwrap();
        let conf = self.dir.path().join("rsyslog.conf");
        let pid = self.dir.path().join("rsyslogd.pid");
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("rsyslogd starts");
        self.child = Some(child);
        // Ready when it accepts connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rsyslogd did not listen on {}: {}", self.port, self.log());
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// rsyslog's configuration: imtcp over GnuTLS on `port`, each message's MSG to a file.
fn config(dir: &Path, port: u16, auth: ClientAuth) -> String {
    let path = |name: &str| -> PathBuf { dir.join(name) };
    let auth_mode = match auth {
        ClientAuth::Anonymous => "anon",
        ClientAuth::Certificate => "x509/certvalid",
    };
    format!(
        r#"global(
  workDirectory="{work}"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="{ca}"
  defaultNetstreamDriverCertFile="{cert}"
  defaultNetstreamDriverKeyFile="{key}"
  maxMessageSize="64k"
)
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="{auth_mode}")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="msg" type="string" string="%msg%\n")
action(type="omfile" file="{out}" template="msg")
template(name="msgid" type="string" string="%msgid% %msg%\n")
action(type="omfile" file="{messages}" template="msgid")
"#,
        work = path("work").display(),
        ca = path("ca.pem").display(),
        cert = path("server.pem").display(),
        key = path("server.key").display(),
        out = path("received.log").display(),
        messages = path("messages.log").display(),
    )
}

/// A certificate authority, a server certificate for `localhost` and 127.0.0.1, and a client
/// certificate, all PEM (also the test PostgreSQL's, for TLS).
pub struct Certificates {
    pub ca: String,
    pub server: String,
    pub server_key: String,
    pub client: String,
    pub client_key: String,
}

impl Certificates {
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server, server_key) = leaf(vec!["localhost".into(), "127.0.0.1".into()]);
        let (client, client_key) = leaf(vec!["auditrelay-client".into()]);
        Self {
            ca: ca.pem(),
            server,
            server_key,
            client,
            client_key,
        }
    }
}
