//! The token commands, run as a user would.

use crate::support::process::{cli, create_token};

#[test]
fn token_create_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let secret = create_token(dir.path(), "audit-logs-viewer");
    assert!(
        secret.starts_with("spat_") && secret.len() == 45,
        "{secret}"
    );

    let out = cli(&["token", "list"], dir.path());
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(!list.contains(&secret), "the secret is never shown again");
    let line = list
        .lines()
        .find(|l| l.contains("audit-logs-viewer"))
        .expect("listed");
    assert!(
        line.contains(&secret[..12]) && line.ends_with("active"),
        "{line}"
    );
    let id = line.split_whitespace().next().unwrap();

    let out = cli(&["token", "revoke", id], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8(cli(&["token", "list"], dir.path()).stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with(id) && l.contains("revoked")),
        "{list}"
    );
    assert!(
        !cli(&["token", "revoke", id], dir.path()).status.success(),
        "already revoked"
    );

    for bad in [
        &["token", "create", "--name", "x", "--role", "superuser"][..],
        &[
            "token",
            "create",
            "--name",
            "ops\n\x1b[2J",
            "--role",
            "org-admin",
        ][..],
        &["token", "create", "--name", "x", "--role", "portal-admin"][..],
        &[
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "portal-admin",
            "--portal",
            "3e551b39-227d-4297-b911-e68fd5d77c17",
        ][..],
        &[
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "org-admin",
            "--ttl",
            "soon",
        ][..],
    ] {
        let out = cli(bad, dir.path());
        assert!(!out.status.success(), "{bad:?} should fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{bad:?}"
        );
    }
}

/// A wrong or missing `--data-dir` is an error naming where the command looked, never a new,
/// empty installation whose tokens the running server would refuse.
#[test]
fn commands_other_than_serve_never_invent_an_installation() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [
        &["migrate"][..],
        &["token", "list"],
        &["token", "create", "--name", "x", "--role", "org-admin"],
        &["token", "revoke", "00000000-0000-0000-0000-000000000000"],
        &["keys", "list"],
        &["keys", "rotate"],
    ] {
        for data_dir in [dir.path(), missing.as_path()] {
            let out = cli(args, data_dir);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} in {}", data_dir.display());
            assert!(
                stderr.contains(&format!(
                    "No auditrelay installation in {}",
                    data_dir.display()
                )),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(!missing.exists(), "no directory was made");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was made"
    );
}

#[test]
fn migrate_creates_the_database_only_when_asked_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["migrate", "--create"][..],
        &["migrate"],
        &["migrate", "--create"],
    ] {
        let out = cli(args, dir.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("auditrelay.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("auditrelay.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the database is owner-only");
    }
}
