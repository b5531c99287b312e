//! `auditrelay verify`, run as a user would: lines signed with the server's keys (CEF, JSON
//! and CPS, plain or gzip, from a file or standard input) against the server's JWKS (by URL or
//! file), a tampered line, a foreign key, and lines from both keys of a rotation.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use auditrelay_core::SigningKey;
use auditrelay_core::format::Format;
use auditrelay_core::signing::render_jwks;
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::support::events::{authorization, ndjson};
use crate::support::signing::{
    JWKS_PATH, jwks, key_files, rotate, run, signed_line, signing_key, stderr, stdout,
    wait_for_published,
};
use crate::support::{TestApp, expect_json, now};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// The server's current signing key, and its JWKS saved to a file.
async fn setup(app: &TestApp, dir: &Path) -> (SigningKey, PathBuf) {
    let kid = key_files(app.data_dir()).keys()[0].kid().to_string();
    let (document, _) = jwks(app).await;
    let file = write(dir, "jwks.json", document.as_bytes());
    (signing_key(app.data_dir(), &kid), file)
}

#[tokio::test]
async fn valid_lines_pass_and_a_tampered_line_is_named() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let (key, jwks_file) = setup(&app, work.path()).await;
    let jwks_arg = jwks_file.to_str().unwrap();
    let good = [
        signed_line(Format::Cef, 1, &key),
        signed_line(Format::Json, 2, &key),
        Vec::new(), // blank lines are skipped, but counted in line numbers
        signed_line(Format::Cps, 3, &key),
    ];
    let file = write(work.path(), "good.log", &lines(&good));

    let out = run(
        &["verify", "--jwks", jwks_arg, file.to_str().unwrap()],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let kid = key.kid();
    assert_eq!(
        stdout(&out),
        format!("line 1: valid kid={kid}\nline 2: valid kid={kid}\nline 4: valid kid={kid}\n")
    );
    assert!(
        stderr(&out).contains("3 lines verified"),
        "{}",
        stderr(&out)
    );

    // Change one character of the JSON line's content: that line, and only it, fails.
    let mut tampered = good.clone();
    let text = String::from_utf8(tampered[1].clone()).unwrap();
    tampered[1] = text.replacen("trace-2", "trace-9", 1).into_bytes();
    let file = write(work.path(), "tampered.log", &lines(&tampered));
    let out = run(
        &["verify", "--jwks", jwks_arg, file.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    assert!(
        report.contains("line 2: invalid: no known key verifies the signature"),
        "{report}"
    );
    assert!(
        report.contains(&format!("line 1: valid kid={kid}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("line 4: valid kid={kid}")),
        "{report}"
    );
    assert!(
        stderr(&out).contains("1 of 3 lines failed"),
        "{}",
        stderr(&out)
    );

    // A line with no signature at all, and one that is not a log line.
    let unsigned = lines(&[b"{\"a\":1}".to_vec(), b"hello".to_vec()]);
    let file = write(work.path(), "junk.log", &unsigned);
    let out = run(
        &["verify", "--jwks", jwks_arg, file.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert!(stdout(&out).lines().all(|l| l.contains(": invalid: ")));

    // Nothing to verify is a failure too.
    let empty = write(work.path(), "empty.log", b"\n\n");
    let out = run(
        &["verify", "--jwks", jwks_arg, empty.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    app.stop().await;
}

#[tokio::test]
async fn gzip_stdin_and_the_jwks_url_work() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let (key, _) = setup(&app, work.path()).await;
    let plain = lines(&[
        signed_line(Format::Json, 1, &key),
        signed_line(Format::Cef, 2, &key),
    ]);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&plain).unwrap();
    let gzipped = gz.finish().unwrap();
    let file = write(work.path(), "batch.log.gz", &gzipped);

    let url = app.url(JWKS_PATH);
    let out = run(&["verify", "--jwks", &url, file.to_str().unwrap()], None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).matches("valid kid=").count(),
        2,
        "{}",
        stdout(&out)
    );

    // Standard input, gzip detected there too; and the default URL from AUDITRELAY_URL.
    for input in [&plain, &gzipped] {
        let out = run(&["verify", "--jwks", &url, "-"], Some(input)).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).matches("valid kid=").count(), 2);
    }
    let out = tokio::process::Command::new(crate::support::signing::BIN)
        .args(["verify", file.to_str().unwrap()])
        .env("AUDITRELAY_URL", &app.base)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // An unreachable JWKS is an error, not a verdict.
    let out = run(
        &[
            "verify",
            "--jwks",
            "http://127.0.0.1:9/jwks.json",
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test]
async fn a_line_of_an_unknown_key_is_invalid() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let (key, _) = setup(&app, work.path()).await;
    let stranger = SigningKey::from_seed(&[7; 32]);
    let other_jwks = write(
        work.path(),
        "other.json",
        render_jwks(&[stranger.public_key().clone()]).as_bytes(),
    );
    let file = write(
        work.path(),
        "lines.log",
        &lines(&[signed_line(Format::Cef, 1, &key)]),
    );
    let out = run(
        &[
            "verify",
            "--jwks",
            other_jwks.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "line 1: invalid: no known key verifies the signature\n"
    );
    app.stop().await;
}

/// Entries read through the pull API verify too, one per line as `jq -c '.data[]'` writes
/// them (any key order); a changed entry is named.
#[tokio::test]
async fn pull_api_entries_verify_and_a_changed_one_is_named() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let (key, jwks_file) = setup(&app, work.path()).await;
    let events = ndjson(&[
        authorization(now(), "pulled-1"),
        authorization(now(), "pulled-2"),
    ]);
    let resp = app.ingest_ndjson("/v1/events", &app.admin, events).await;
    assert_eq!(resp.status(), reqwest::StatusCode::ACCEPTED);
    let page = expect_json(
        app.get(
            "/v3/audit-logs?filter[type]=authorization&page[size]=100",
            &app.admin,
        )
        .await,
        reqwest::StatusCode::OK,
    )
    .await;
    let entries: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("pulled-"))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(entries.len(), 2, "{page}");
    let mut file_lines: Vec<Vec<u8>> = entries.iter().map(|e| e.clone().into_bytes()).collect();
    file_lines.push(entries[1].replacen("pulled-2", "pulled-9", 1).into_bytes());
    let file = write(work.path(), "pulled.ndjson", &lines(&file_lines));

    let out = run(
        &[
            "verify",
            "--jwks",
            jwks_file.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let kid = key.kid();
    assert_eq!(
        stdout(&out),
        format!(
            "line 1: valid kid={kid} (pull-API entry)\nline 2: valid kid={kid} (pull-API entry)\n\
             line 3: invalid: no known key verifies the signature\n"
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn lines_of_both_keys_of_a_rotation_verify_with_their_own_kid() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let (old, _) = setup(&app, work.path()).await;
    let new_kid = rotate(&app, "0s").await;
    wait_for_published(&app, &new_kid).await;
    let new = signing_key(app.data_dir(), &new_kid);
    let file = write(
        work.path(),
        "rotated.log",
        &lines(&[
            signed_line(Format::Json, 1, &old),
            signed_line(Format::Json, 2, &new),
            signed_line(Format::Cef, 3, &old),
            signed_line(Format::Cps, 4, &new),
        ]),
    );
    let out = run(
        &[
            "verify",
            "--jwks",
            &app.url(JWKS_PATH),
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (o, n) = (old.kid(), new.kid());
    assert_eq!(
        stdout(&out),
        format!(
            "line 1: valid kid={o}\nline 2: valid kid={n}\nline 3: valid kid={o}\nline 4: valid kid={n}\n"
        )
    );
    app.stop().await;
}
