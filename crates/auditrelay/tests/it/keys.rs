//! `auditrelay keys list|rotate`, run as a user would, and the key files they leave.

use std::os::unix::fs::PermissionsExt as _;

use crate::support::signing::{run, stderr, stdout};

async fn keys(args: &[&str], dir: &str) -> (bool, String, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", dir]);
    let out = run(&all, None).await;
    (out.status.success(), stdout(&out), stderr(&out))
}

/// The (kid, state) of each listed key.
fn rows(list: &str) -> Vec<(String, String)> {
    let mut lines = list.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("KID") && header.ends_with("STATE"),
        "{header}"
    );
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0].to_owned(), cells.last().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn list_and_rotate() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let made = crate::support::process::cli(&["migrate", "--create"], data.path());
    assert!(made.status.success());

    // Any command that needs keys creates the first one, signing at once.
    let (ok, list, err) = keys(&["list"], dir).await;
    assert!(ok, "{err}");
    let first = rows(&list);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].1, "signing");
    let old = first[0].0.clone();

    // The default delay (10m): the new key is published and pending, the old one still signs.
    let (ok, kid, err) = keys(&["rotate"], dir).await;
    assert!(ok, "{err}");
    let new = kid.trim().to_owned();
    assert!(err.contains(&new) && err.contains("signing from"), "{err}");
    assert!(!err.contains("Warning"), "the default delay is safe: {err}");
    let (_, list, _) = keys(&["list"], dir).await;
    assert_eq!(
        rows(&list),
        [
            (old.clone(), "signing".into()),
            (new.clone(), "pending".into())
        ]
    );
    let retired_col = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned();
    assert!(
        retired_col.ends_with('Z'),
        "the old key retires when the new one activates: {list}"
    );

    // No delay: the newest key signs now, and the older ones stay published.
    let (ok, kid, err) = keys(&["rotate", "--activation-delay", "0s"], dir).await;
    assert!(ok, "{err}");
    // ... which verifiers that cached the JWKS have not seen yet: said, not refused.
    assert!(
        err.contains("Warning: the new key signs at once") && err.contains("(10m)"),
        "{err}"
    );
    let newest = kid.trim().to_owned();
    let (_, list, _) = keys(&["list"], dir).await;
    assert_eq!(
        rows(&list),
        [
            (old, "published".into()),
            (new, "published".into()),
            (newest, "signing".into())
        ]
    );

    // Owner-only: the directory 0700, every key file 0600, no temporary files left.
    let keys_dir = data.path().join("keys");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys_dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert!(
            file.extension().is_some_and(|e| e == "json"),
            "{}",
            file.display()
        );
    }

    for bad in [
        &["rotate", "--activation-delay", "soon"][..],
        &["rotate", "--activation-delay", "8d"][..],
    ] {
        let (ok, _, err) = keys(bad, dir).await;
        assert!(!ok, "{bad:?}");
        assert!(err.starts_with("error: "), "{err}");
    }
    // The seeds never reach the terminal.
    let seeds: Vec<String> = files
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            v["seed"].as_str().unwrap().to_owned()
        })
        .collect();
    let (_, list, err) = keys(&["list"], dir).await;
    for seed in seeds {
        assert!(!list.contains(&seed) && !err.contains(&seed));
    }
}

#[tokio::test]
async fn an_unreadable_keys_directory_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    std::fs::write(data.path().join("keys"), b"not a directory").unwrap();
    let mut config = auditrelay::config::Config::for_data_dir(data.path()).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let err = match auditrelay::app::start(config).await {
        Ok(_) => panic!("the server started without keys"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("signing keys") && err.contains("keys"),
        "{err}"
    );
}
