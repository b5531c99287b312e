//! The tests' own webhook receiver (`support::receiver`) does what the delivery tests rely on:
//! it records what arrived, follows its script, hangs past a client's timeout, resets
//! connections, loses batches it acknowledged, and holds requests until it is told to answer.

use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;

use crate::support::receiver::{Behaviour, PATH, TestReceiver};

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    text: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("authorization", "Splunk t0ken")
        .header("content-type", "text/plain")
        .header("content-encoding", "gzip")
        .header("idempotency-key", key)
        .body(gzip(text))
        .send()
        .await
}

/// Whether an I/O error of kind `ConnectionReset` (a TCP RST) is somewhere in the chain.
fn is_connection_reset(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

#[tokio::test]
async fn https_receiver_records_requests_and_follows_its_script() {
    let receiver = TestReceiver::https().await;
    assert!(receiver.url().starts_with("https://127.0.0.1:"));
    assert!(receiver.url().ends_with(PATH));
    // The certificate is valid for 127.0.0.1: a client trusting only it connects.
    let cert = reqwest::Certificate::from_pem(receiver.cert_pem().unwrap().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([cert])
        .user_agent("auditrelay/test")
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    receiver.script([
        Behaviour::Status(500),
        Behaviour::StatusWithRetryAfter(429, "3".into()),
    ]);

    let first = deliver(&client, &receiver.url(), "k1", "a\nb\n")
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let second = deliver(&client, &receiver.url(), "k1", "a\nb\n")
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "3");
    let third = deliver(&client, &receiver.url(), "k1", "a\r\n\nb\n")
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::ACCEPTED);

    // Only the accepted request's lines count as delivered.
    assert_eq!(
        receiver.wait_for_lines(2, Duration::from_secs(5)).await,
        ["a", "b"]
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(last.method, "POST");
    assert_eq!(last.path, PATH);
    assert_eq!(last.authorization(), Some("Splunk t0ken"));
    assert_eq!(last.content_type(), Some("text/plain"));
    assert_eq!(last.content_encoding(), Some("gzip"));
    assert_eq!(last.idempotency_key(), Some("k1"));
    assert_eq!(last.user_agent(), Some("auditrelay/test"));
    assert_eq!(last.compressed_len, gzip("a\r\n\nb\n").len());
    assert!(requests[0].at <= requests[1].at && requests[1].at <= requests[2].at);
    assert!(!requests[0].accepted() && requests[2].accepted());

    // A switched default holds until switched back; a bad body is answered 400 and recorded.
    receiver.set_default(Behaviour::Status(503));
    let refused = deliver(&client, &receiver.url(), "k2", "c\n")
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    receiver.set_default(Behaviour::ACCEPT);
    let junk = client
        .post(receiver.url())
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), StatusCode::BAD_REQUEST);
    let requests = receiver.wait_for_requests(5, Duration::from_secs(5)).await;
    assert!(requests[4].body_error.is_some());
    assert_eq!(receiver.lines(), ["a", "b"]);
}

#[tokio::test]
async fn hang_outlasts_a_client_timeout_and_reset_is_a_connection_error() {
    let receiver = TestReceiver::http().await;
    receiver.script([Behaviour::Hang, Behaviour::Reset]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();

    let started = Instant::now();
    let hung = deliver(&client, &receiver.url(), "k1", "a\n")
        .await
        .unwrap_err();
    assert!(hung.is_timeout(), "{hung:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    let reset = deliver(&client, &receiver.url(), "k2", "b\n")
        .await
        .unwrap_err();
    assert!(is_connection_reset(&reset), "{reset:?}");

    // Both were received in full before the receiver misbehaved, and it still serves.
    let requests = receiver.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(requests[0].lines, ["a"]);
    assert_eq!(requests[1].lines, ["b"]);
    assert_eq!(requests[1].answer, Behaviour::Reset);
    let ok = deliver(&client, &receiver.url(), "k3", "c\n")
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    assert_eq!(receiver.lines(), ["c"]);
}

#[tokio::test]
async fn discard_acknowledges_but_loses_and_hold_waits_for_release() {
    let receiver = TestReceiver::http().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    receiver.script([Behaviour::Discard]);
    let lost = deliver(&client, &receiver.url(), "k1", "lost\n")
        .await
        .unwrap();
    assert_eq!(
        lost.status(),
        StatusCode::ACCEPTED,
        "the sender sees success"
    );
    let requests = receiver.wait_for_requests(1, Duration::from_secs(5)).await;
    assert_eq!(requests[0].lines, ["lost"], "recorded as it arrived");
    assert_eq!(requests[0].answer, Behaviour::Discard);
    assert!(!requests[0].accepted());
    assert!(receiver.lines().is_empty(), "but not kept");

    receiver.set_default(Behaviour::Hold);
    let held = tokio::spawn({
        let client = client.clone();
        let url = receiver.url();
        async move {
            deliver(&client, &url, "k2", "held\n")
                .await
                .unwrap()
                .status()
        }
    });
    let requests = receiver.wait_for_requests(2, Duration::from_secs(5)).await;
    assert_eq!(requests[1].answer, Behaviour::Hold);
    assert!(!held.is_finished(), "no answer before the release");
    receiver.release();
    assert_eq!(held.await.unwrap(), StatusCode::ACCEPTED);
    assert_eq!(receiver.requests()[1].answer, Behaviour::ACCEPT);
    assert_eq!(
        receiver.wait_for_lines(1, Duration::from_secs(5)).await,
        ["held"]
    );
    // After a release the default is to accept.
    let next = deliver(&client, &receiver.url(), "k3", "next\n")
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::ACCEPTED);
    assert_eq!(receiver.lines(), ["held", "next"]);
}
