//! Destination kinds end to end (DECISIONS.md D12–D14): real batches to loopback intakes that
//! implement each receiver's documented contract strictly (`support::siem`), with their
//! failures scripted. Whatever happens, every event ends up indexed exactly once (by its stable
//! id), or on the refused list with the receiver's reason.
//!
//! The webhooks are a portal's: its scope holds the events a test ingests and nothing else
//! (the API's own audit events go to the organization's), so a scripted fault meets the batch
//! it is meant for.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use auditrelay_core::format::{Value as FieldValue, parse_line};
use auditrelay_core::{PortalId, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::events::{ndjson, portal_login};
use crate::support::siem::{Fault, SiemKind, SiemRequest, TOKEN, TestSiem};
use crate::support::{
    TestApp, bind_webhook, eventually, expect_json, expect_problem, invalid_fields, now,
};

const WAIT: Duration = Duration::from_secs(30);

fn dev(c: &mut auditrelay::config::Config) {
    crate::support::dev(c);
    c.delivery.flush_interval = Duration::from_millis(200);
}

/// A test's portal, whose webhook delivers to its SIEM.
struct Scene {
    app: TestApp,
    portal: PortalId,
    siem: TestSiem,
}

impl Scene {
    async fn new(siem: TestSiem) -> Self {
        Self::with(siem, dev).await
    }

    async fn with(siem: TestSiem, adjust: impl FnOnce(&mut auditrelay::config::Config)) -> Self {
        let app = TestApp::spawn_with(adjust).await;
        let portal = app.create_portal("kinds", "us").await;
        Self { app, portal, siem }
    }

    /// A path under the portal's webhook.
    fn webhook(&self, rest: &str) -> String {
        format!("/v3/portals/{}/audit-log-webhook{rest}", self.portal)
    }

    /// Creates a destination of `kind` and binds the portal's webhook to it, enabled; returns
    /// the destination's id.
    async fn bind(
        &self,
        kind: &str,
        endpoint: &str,
        authorization: Option<&str>,
        settings: Value,
    ) -> String {
        self.bind_as(kind, "cef", endpoint, authorization, settings)
            .await
    }

    /// As [`Self::bind`], with lines in `log_format`.
    async fn bind_as(
        &self,
        kind: &str,
        log_format: &str,
        endpoint: &str,
        authorization: Option<&str>,
        settings: Value,
    ) -> String {
        let app = &self.app;
        let mut body = json!({
            "name": format!("siem-{kind}"), "endpoint": endpoint, "log_format": log_format,
            "kind": kind, "settings": settings,
        });
        if let Some(authorization) = authorization {
            body["authorization"] = json!(authorization);
        }
        let created = expect_json(
            app.post("/v3/audit-log-destinations", &app.admin, body)
                .await,
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        bind_webhook(app, &self.webhook(""), &id, true).await;
        id
    }

    /// Ingests `n` logins of the portal at `ts` in one request (so in one commit); returns
    /// their trace ids.
    async fn ingest_at(&self, ts: Timestamp, n: usize, tag: &str) -> Vec<String> {
        let traces: Vec<String> = (0..n).map(|i| format!("{tag}-{i:05}")).collect();
        let events: Vec<Value> = traces
            .iter()
            .map(|t| portal_login(ts, self.portal, t))
            .collect();
        let resp = self
            .app
            .ingest_ndjson("/us/v1/events", &self.app.admin, ndjson(&events))
            .await;
        expect_json(resp, StatusCode::ACCEPTED).await;
        traces
    }

    /// The portal webhook's refused list.
    async fn refused(&self) -> Vec<Value> {
        let path = self.webhook("/refused-events?page[size]=100");
        let list = expect_json(self.app.get(&path, &self.app.admin).await, StatusCode::OK).await;
        list["data"].as_array().unwrap().clone()
    }

    async fn status(&self) -> Value {
        let path = self.webhook("/status");
        expect_json(self.app.get(&path, &self.app.admin).await, StatusCode::OK).await
    }

    /// Replays the window from `from` to `to` minutes ago into the portal's webhook, and waits
    /// for the job to end; returns it.
    async fn replay(&self, from: i64, to: i64) -> Value {
        let app = &self.app;
        let at = |m: i64| now().saturating_sub_millis(m * 60_000).to_rfc3339_seconds();
        let window = json!({"start_at": at(from), "end_at": at(to)});
        let path = format!("/v3/portals/{}/audit-log-replay-job", self.portal);
        let resp = app
            .request(Method::PUT, &path, Some(&app.admin), Some(window))
            .await;
        expect_json(resp, StatusCode::ACCEPTED).await;
        eventually(WAIT, || async {
            let job = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
            matches!(job["status"].as_str(), Some("completed" | "failed")).then_some(job)
        })
        .await
    }

    /// Waits until every one of `traces` is indexed or refused; asserts none is both, and that
    /// no key was indexed twice. Returns the traces refused, with their reasons.
    async fn settled(&self, traces: &[String]) -> BTreeMap<String, String> {
        let wanted: HashSet<&str> = traces.iter().map(String::as_str).collect();
        let (indexed, reasons) = eventually(WAIT, || async {
            let indexed: HashSet<String> = self
                .siem
                .lines()
                .values()
                .filter_map(|l| trace_of(l))
                .collect();
            let stored: BTreeMap<i64, String> = self
                .app
                .stored("us", Some(self.portal), None)
                .await
                .into_iter()
                .filter_map(|e| Some((e.seq, e.event.trace_id?)))
                .collect();
            let reasons: BTreeMap<String, String> = self
                .refused()
                .await
                .iter()
                .filter_map(|r| {
                    let trace = stored.get(&r["seq"].as_i64()?)?;
                    Some((trace.clone(), r["reason"].as_str()?.to_owned()))
                })
                .collect();
            wanted
                .iter()
                .all(|t| indexed.contains(*t) || reasons.contains_key(*t))
                .then_some((indexed, reasons))
        })
        .await;
        for (key, count) in self.siem.counts() {
            assert_eq!(
                count,
                1,
                "{key} was indexed {count} times; {}",
                summary(&self.siem)
            );
        }
        for trace in reasons.keys() {
            assert!(
                !indexed.contains(trace),
                "{trace} is both indexed and refused"
            );
        }
        reasons
    }
}

/// The `trace_id` of a signed line.
fn trace_of(line: &str) -> Option<String> {
    let parsed = parse_line(line.as_bytes()).ok()?;
    parsed
        .record
        .extensions
        .into_iter()
        .find(|e| e.key == "trace_id")
        .and_then(|e| match e.value {
            FieldValue::Str(trace) => Some(trace),
            _ => None,
        })
}

/// What the intake was asked and answered, for a failure's message.
fn summary(siem: &TestSiem) -> String {
    let lines: Vec<String> = siem
        .requests()
        .iter()
        .map(|r| {
            format!(
                "{} {} ({} bytes) → {} {}",
                r.method,
                r.path,
                r.body.len(),
                r.status,
                r.answer
            )
        })
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn elasticsearch_items_are_judged_one_by_one_and_replays_stay_idempotent() {
    let scene = Scene::new(TestSiem::start(SiemKind::Elasticsearch).await).await;
    let authorization = format!("ApiKey {TOKEN}");
    let endpoint = scene.siem.url("logs-kong-audit");
    scene
        .bind(
            "elasticsearch",
            &endpoint,
            Some(&authorization),
            json!(null),
        )
        .await;
    scene.siem.script([
        Fault::BulkItems(vec![1, 2], 429, "es_rejected_execution_exception"),
        Fault::BulkItems(vec![0], 400, "mapper_parsing_exception"),
    ]);
    let traces = scene.ingest_at(now(), 10, "es").await;
    let reasons = scene.settled(&traces).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}; {}", summary(&scene.siem));
    // Item 1 was refused for now, then for good; item 2 went again and was indexed.
    assert!(reasons.contains_key(&traces[1]), "{reasons:?}");
    assert!(
        reasons[&traces[1]].contains("mapper_parsing_exception"),
        "{reasons:?}"
    );
    let requests = scene.siem.requests();
    let documents: Vec<usize> = requests
        .iter()
        .map(|r| {
            r.body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                / 2
        })
        .collect();
    assert_eq!(documents, [10, 2], "the two items went again alone");
    assert_ne!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key"),
        "a narrower body never goes under the key of a wider one"
    );
    for r in &requests {
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("authorization"), Some(authorization.as_str()));
    }
    assert_eq!(scene.status().await["refused_events"], 1);

    // Replayed twice over the same window: `create` with the event's id finds each indexed.
    for _ in 0..2 {
        let job = scene.replay(10, -1).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let counts = scene.siem.counts();
    assert_eq!(counts.len(), 10, "{}", summary(&scene.siem));
    for (key, count) in &counts {
        assert_eq!(*count, 1, "{key} indexed {count} times after two replays");
    }
    let conflicts = scene
        .siem
        .requests()
        .iter()
        .filter(|r| r.answer.contains("version_conflict_engine_exception"))
        .count();
    assert_eq!(
        conflicts, 2,
        "each replay met the documents already indexed"
    );
    // The refused event went with each replay, and was refused again: still listed once.
    assert_eq!(scene.refused().await.len(), 1);
}

/// OCSF travels in any kind that carries JSON: each document Elasticsearch indexes is an
/// Authentication [3002] object whose `metadata.uid` is the event id the kind indexed it under,
/// and it verifies against the server's JWKS as the SIEM stored it.
#[tokio::test]
async fn ocsf_lines_carry_the_event_id_and_verify_from_the_siem() {
    let scene = Scene::new(TestSiem::start(SiemKind::Elasticsearch).await).await;
    let authorization = format!("ApiKey {TOKEN}");
    let endpoint = scene.siem.url("logs-kong-audit");
    let destination = scene
        .bind_as(
            "elasticsearch",
            "ocsf",
            &endpoint,
            Some(&authorization),
            json!(null),
        )
        .await;
    let path = format!("/v3/audit-log-destinations/{destination}");
    let shown = expect_json(scene.app.get(&path, &scene.app.admin).await, StatusCode::OK).await;
    assert_eq!(shown["log_format"], "ocsf", "{shown}");

    let traces = scene.ingest_at(now(), 5, "ocsf").await;
    let lines = eventually(WAIT, || async {
        let lines = scene.siem.lines();
        (lines.len() == traces.len()).then_some(lines)
    })
    .await;
    let (_, keys) = crate::support::signing::jwks(&scene.app).await;
    let mut seen = Vec::new();
    for (id, line) in &lines {
        let object: Value = serde_json::from_str(line).unwrap();
        assert_eq!(object["class_uid"], 3002, "{line}");
        assert_eq!(object["metadata"]["uid"], id.as_str(), "{line}");
        assert_eq!(object["service"]["uid"], scene.portal.to_string(), "{line}");
        seen.push(
            object["metadata"]["correlation_uid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        auditrelay_core::format::verify_line(line.as_bytes(), &keys)
            .unwrap_or_else(|e| panic!("{e}: {line}"));
        // Re-serialized as a SIEM might store it, key order and spacing its own.
        let pretty = serde_json::to_string_pretty(&object).unwrap();
        auditrelay_core::format::verify_line(pretty.as_bytes(), &keys)
            .unwrap_or_else(|e| panic!("{e}: {pretty}"));
    }
    seen.sort();
    assert_eq!(seen, traces);
}

#[tokio::test]
async fn a_bulk_body_is_refused_without_its_final_newline_or_on_a_data_stream_without_create() {
    // The intake's own strictness, which the tests above rely on.
    let siem = TestSiem::start(SiemKind::Elasticsearch).await;
    let client = reqwest::Client::new();
    let post = |index: &str, body: &'static str| {
        client
            .post(siem.url(index))
            .header("authorization", format!("ApiKey {TOKEN}"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let resp = post(
        "logs-a",
        "{\"create\":{\"_id\":\"1\"}}\n{\"message\":\"x\"}",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(
        "logs-a",
        "{\"index\":{\"_id\":\"1\"}}\n{\"message\":\"x\"}\n",
    )
    .await
    .unwrap();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["errors"], true);
    assert_eq!(answer["items"][0]["index"]["status"], 400);
    assert!(siem.counts().is_empty());
}

/// The other intakes' strictness: Splunk's HEC takes envelopes one after another, never an
/// array; Datadog takes at most 1,000 entries; neither takes a request without its credential.
#[tokio::test]
async fn the_intakes_refuse_what_the_real_ones_refuse() {
    let client = reqwest::Client::new();
    let hec = TestSiem::start(SiemKind::SplunkHec).await;
    let post_hec = |auth: &str, body: &'static str| {
        client
            .post(hec.url("event"))
            .header("authorization", auth.to_owned())
            .body(body)
            .send()
    };
    let splunk = format!("Splunk {TOKEN}");
    let resp = post_hec(&splunk, r#"[{"event":"a"},{"event":"b"}]"#)
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["code"], 6);
    let resp = post_hec("Splunk wrong", r#"{"event":"a"}"#).await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = post_hec(&splunk, "{\"event\":\"a\"}\n{\"event\":\"b\"}")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(hec.counts().len(), 2);

    let datadog = TestSiem::start(SiemKind::Datadog).await;
    let entries = |n: usize| {
        let entries: Vec<Value> = (0..n)
            .map(|i| json!({"message": format!("m{i}")}))
            .collect();
        serde_json::to_vec(&entries).unwrap()
    };
    let post_dd = |key: &str, body: Vec<u8>| {
        client
            .post(datadog.url(""))
            .header("dd-api-key", key.to_owned())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post_dd(TOKEN, entries(1001)).await.unwrap().status(), 400);
    assert_eq!(post_dd("wrong", entries(1)).await.unwrap().status(), 403);
    assert!(datadog.counts().is_empty());
    assert_eq!(post_dd(TOKEN, entries(1000)).await.unwrap().status(), 202);
    assert_eq!(datadog.counts().len(), 1000);
}

#[tokio::test]
async fn splunk_hec_refuses_an_invalid_envelope_and_resends_what_is_never_acknowledged() {
    let scene = Scene::new(TestSiem::start(SiemKind::SplunkHec).await.with_ack()).await;
    let settings = json!({"index": "audit", "sourcetype": "kong:{region}", "ack": true, "ack_timeout_seconds": 1});
    let id = scene
        .bind(
            "splunk_hec",
            &scene.siem.url("event"),
            Some(TOKEN),
            settings,
        )
        .await;
    scene.siem.script([
        Fault::HecInvalidEvent(3),
        Fault::AckNever,
        Fault::AckAfter(2),
    ]);
    let traces = scene.ingest_at(now(), 10, "hec").await;
    let reasons = scene.settled(&traces).await;
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        [&traces[3]],
        "{reasons:?}"
    );
    assert!(reasons[&traces[3]].contains("code 6"), "{reasons:?}");
    let requests = scene.siem.requests();
    let intake: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/services/collector/event"))
        .collect();
    let envelopes: Vec<usize> = intake
        .iter()
        .map(|r| {
            serde_json::Deserializer::from_slice(&r.body)
                .into_iter::<Value>()
                .count()
        })
        .collect();
    // All ten; the six after the invalid one; the same six again, once Splunk lost them.
    assert_eq!(envelopes, [10, 6, 6], "{}", summary(&scene.siem));
    for r in &intake {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Splunk {TOKEN}").as_str())
        );
        assert_eq!(r.header("x-splunk-request-channel"), Some(id.as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let first: Value = serde_json::Deserializer::from_slice(&r.body)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(first["index"], "audit");
        assert_eq!(first["sourcetype"], "kong:us");
        assert!(first["fields"]["event_id"].is_string(), "{first}");
    }
    assert!(requests.iter().any(|r| r.path == "/services/collector/ack"));
}

/// A destination with acknowledgement on, to a token without it: Splunk's 200 gives no id to
/// ask about, so nothing says the batch is indexed, and it is not counted delivered but sent
/// again, until the token has acknowledgement and Splunk confirms it.
#[tokio::test]
async fn splunk_hec_counts_nothing_delivered_without_the_acknowledgement_it_was_told_to_await() {
    let scene = Scene::new(TestSiem::start(SiemKind::SplunkHec).await).await;
    let settings = json!({"ack": true, "ack_timeout_seconds": 1});
    scene
        .bind(
            "splunk_hec",
            &scene.siem.url("event"),
            Some(TOKEN),
            settings,
        )
        .await;
    let traces = scene.ingest_at(now(), 5, "noack").await;
    let intake = |siem: &TestSiem| -> Vec<SiemRequest> {
        (siem.requests().into_iter())
            .filter(|r| r.path.starts_with("/services/collector/event"))
            .collect()
    };
    // Taken, answered without an id, and sent again.
    let unconfirmed = eventually(WAIT, || async {
        let intake = intake(&scene.siem);
        (intake.len() >= 2).then_some(intake)
    })
    .await;
    for r in &unconfirmed {
        assert_eq!(r.status, 200, "{}", summary(&scene.siem));
        assert!(!r.answer.contains("ackId"), "{}", r.answer);
        assert_eq!(r.body, unconfirmed[0].body, "the same batch again");
    }
    // The attempts failed, and the status says why.
    eventually(WAIT, || async {
        let status = scene.status().await;
        let message = status["last_response_message"].as_str().unwrap_or_default();
        message.contains("without an ackId").then_some(())
    })
    .await;
    // With acknowledgement on the token, the batch is confirmed and delivered: the status's
    // last answer is Splunk's success.
    scene.siem.set_ack(true);
    eventually(WAIT, || async {
        let status = scene.status().await;
        let acked = (scene.siem.requests().iter())
            .any(|r| r.path == "/services/collector/ack" && r.status == 200);
        let message = status["last_response_message"].as_str().unwrap_or_default();
        (acked && status["last_response_code"] == 200 && !message.contains("ackId")).then_some(())
    })
    .await;
    let indexed: HashSet<String> = (scene.siem.lines().values())
        .filter_map(|l| trace_of(l))
        .collect();
    assert!(traces.iter().all(|t| indexed.contains(t)));
}

#[tokio::test]
async fn splunk_hec_raw_gets_the_lines_with_its_metadata_in_the_query() {
    let scene = Scene::new(TestSiem::start(SiemKind::SplunkHec).await).await;
    let settings = json!({"source": "auditrelay", "index": "audit"});
    scene
        .bind("splunk_hec", &scene.siem.url("raw"), Some(TOKEN), settings)
        .await;
    let traces = scene.ingest_at(now(), 5, "raw").await;
    assert!(scene.settled(&traces).await.is_empty());
    for r in scene.siem.requests() {
        assert_eq!(
            r.path,
            "/services/collector/raw?source=auditrelay&index=audit"
        );
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
}

#[tokio::test]
async fn datadog_gets_arrays_of_at_most_1000_and_old_events_are_refused_not_dropped() {
    let scene = Scene::with(TestSiem::start(SiemKind::Datadog).await, |c| {
        dev(c);
        // Larger than Datadog takes: the kind's limit must cut the batches.
        c.delivery.batch_max_events = 2000;
        c.delivery.batch_max_bytes = 8 << 20;
    })
    .await;
    let settings = json!({"service": "kong-audit", "ddtags": "env:test,region:{region}"});
    scene
        .bind("datadog", &scene.siem.url(""), Some(TOKEN), settings)
        .await;
    let old = scene
        .ingest_at(now().saturating_sub_millis(20 * 3_600_000), 3, "old")
        .await;
    let mut traces = scene.ingest_at(now(), 1200, "dd").await;
    traces.extend(old.iter().cloned());
    let reasons = scene.settled(&traces).await;
    assert_eq!(reasons.keys().cloned().collect::<Vec<_>>(), old);
    let too_old = |r: &String| r.contains("older than the receiver accepts");
    assert!(reasons.values().all(too_old), "{reasons:?}");
    assert_eq!(
        scene.siem.dropped_old(),
        0,
        "an old event reached Datadog, which dropped it"
    );
    let requests = scene.siem.requests();
    assert!(requests.len() >= 2);
    for r in requests {
        assert_eq!(r.status, 202, "{}", r.answer);
        assert_eq!(r.header("dd-api-key"), Some(TOKEN));
        let entries: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        assert!(entries.len() <= 1000);
        assert_eq!(entries[0]["service"], "kong-audit");
        assert_eq!(entries[0]["ddsource"], "auditrelay");
        assert_eq!(entries[0]["ddtags"], "env:test,region:us");
    }

    // A replay reaching back past Datadog's 18 hours is refused when it is asked for.
    let app = &scene.app;
    let path = format!("/v3/portals/{}/audit-log-replay-job", scene.portal);
    let at = |h: i64| {
        now()
            .saturating_sub_millis(h * 3_600_000)
            .to_rfc3339_seconds()
    };
    let window = json!({"start_at": at(20), "end_at": at(0)});
    let resp = app
        .request(Method::PUT, &path, Some(&app.admin), Some(window))
        .await;
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    let fields = invalid_fields(&problem);
    assert_eq!(fields[0].0, "start_at", "{problem}");
    assert!(problem.to_string().contains("18 hours"), "{problem}");
    let window = json!({"start_at": at(17), "end_at": at(0)});
    let resp = app
        .request(Method::PUT, &path, Some(&app.admin), Some(window))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
}

/// A batch waiting for its retry is looked at again before it goes: events that grew older
/// than Datadog takes meanwhile are refused then, not sent for Datadog to drop unseen.
#[tokio::test]
async fn datadog_events_that_age_past_18_hours_during_a_retry_are_refused_not_dropped() {
    let scene = Scene::new(TestSiem::start(SiemKind::Datadog).await).await;
    let settings = json!({"service": "kong-audit"});
    scene
        .bind("datadog", &scene.siem.url(""), Some(TOKEN), settings)
        .await;
    // The first attempt, well within five seconds, takes the aging events while they are
    // young enough; the retry, eight seconds on, finds them past 18 hours.
    scene.siem.script([Fault::Status(503, Some("8"))]);
    let edge = now().saturating_sub_millis(18 * 3_600_000 - 5_000);
    let aging = ["aging-0", "aging-1"].map(String::from);
    let traces: Vec<String> = (aging.iter().cloned())
        .chain((0..3).map(|i| format!("fresh-{i}")))
        .collect();
    // In one request, so in one commit and one batch.
    let events: Vec<Value> = (traces.iter().enumerate())
        .map(|(i, t)| portal_login(if i < 2 { edge } else { now() }, scene.portal, t))
        .collect();
    let app = &scene.app;
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let reasons = scene.settled(&traces).await;

    let requests = scene.siem.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 202], "{}", summary(&scene.siem));
    let sent = |r: &crate::support::siem::SiemRequest| {
        let entries: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        entries.len()
    };
    assert_eq!(sent(&requests[0]), 5, "the first attempt took every event");
    assert_eq!(sent(&requests[1]), 3, "the retry took only the fresh ones");
    assert_ne!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key"),
        "a narrower body goes under a key of its own"
    );
    assert_eq!(reasons.keys().cloned().collect::<Vec<_>>(), aging);
    let too_old = |r: &String| r.starts_with("older than the receiver accepts");
    assert!(reasons.values().all(too_old), "{reasons:?}");
    assert_eq!(scene.siem.dropped_old(), 0, "Datadog dropped an old event");
}

#[tokio::test]
async fn sumo_logic_gets_lines_with_its_headers_and_honours_retry_after() {
    let scene = Scene::new(TestSiem::start(SiemKind::SumoLogic).await).await;
    let settings = json!({"category": "kong/{region}", "fields": "portal={portal_id}"});
    scene
        .bind("sumo_logic", &scene.siem.url(""), None, settings)
        .await;
    scene.siem.script([Fault::Status(429, Some("1"))]);
    let traces = scene.ingest_at(now(), 20, "sumo").await;
    assert!(scene.settled(&traces).await.is_empty());
    let requests = scene.siem.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200]
    );
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key"),
        "the same batch went again"
    );
    let fields = format!("portal={}", scene.portal);
    for r in &requests {
        assert_eq!(r.header("x-sumo-category"), Some("kong/us"));
        assert_eq!(r.header("x-sumo-fields"), Some(fields.as_str()));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
}

#[tokio::test]
async fn loki_refuses_ignored_entries_and_a_replay_gets_a_stream_of_its_own() {
    let scene = Scene::new(TestSiem::start(SiemKind::Loki).await).await;
    scene
        .bind(
            "loki",
            &scene.siem.url(""),
            None,
            json!({"labels": {"env": "test"}}),
        )
        .await;
    scene.siem.script([Fault::LokiIgnore(vec![2])]);
    let live = scene.ingest_at(now(), 5, "loki").await;
    let reasons = scene.settled(&live).await;
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        [&live[2]],
        "{reasons:?}"
    );
    // Logins from three hours ago, after newer ones: far behind the stream's newest entry.
    let late = scene
        .ingest_at(now().saturating_sub_millis(3 * 3_600_000), 3, "late")
        .await;
    let reasons = scene.settled(&late).await;
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    for trace in &late {
        assert!(reasons[trace].contains("too far behind"), "{reasons:?}");
    }
    // Sent again, they go to a stream of their own too, where they are not behind.
    let app = &scene.app;
    let path = scene.webhook("/refused-events/resend");
    let resp = app
        .request(Method::POST, &path, Some(&app.admin), None)
        .await;
    assert_eq!(expect_json(resp, StatusCode::ACCEPTED).await["marked"], 4);
    eventually(WAIT, || async {
        scene.refused().await.is_empty().then_some(())
    })
    .await;
    let all: Vec<String> = live.iter().chain(&late).cloned().collect();
    assert!(scene.settled(&all).await.is_empty());

    // So does a replay: logins from four hours ago, refused as far behind, then replayed.
    let late = scene
        .ingest_at(now().saturating_sub_millis(4 * 3_600_000), 2, "later")
        .await;
    assert_eq!(scene.settled(&late).await.len(), 2);
    let job = scene.replay(250, 230).await;
    assert_eq!(job["status"], "completed", "{job}");
    let indexed: HashSet<String> = scene
        .siem
        .lines()
        .values()
        .filter_map(|l| trace_of(l))
        .collect();
    assert!(
        late.iter().all(|t| indexed.contains(t)),
        "{}",
        summary(&scene.siem)
    );
    for r in scene.siem.requests() {
        let push: Value = serde_json::from_slice(&r.body).unwrap();
        let labels = &push["streams"][0]["stream"];
        assert_eq!(labels["env"], "test");
        assert_eq!(labels["portal_id"], scene.portal.to_string());
    }
    let replayed = scene
        .siem
        .requests()
        .iter()
        .filter(|r| {
            let push: Value = serde_json::from_slice(&r.body).unwrap();
            push["streams"][0]["stream"]["auditrelay_replay"].is_string()
        })
        .count();
    assert_eq!(
        replayed,
        2,
        "the resend and the replay: {}",
        summary(&scene.siem)
    );
}

#[tokio::test]
async fn refused_events_are_sent_again_on_request() {
    let scene = Scene::new(TestSiem::start(SiemKind::Elasticsearch).await).await;
    let authorization = format!("ApiKey {TOKEN}");
    scene
        .bind(
            "elasticsearch",
            &scene.siem.url("audit"),
            Some(&authorization),
            json!(null),
        )
        .await;
    scene.siem.script([Fault::BulkItems(
        vec![0, 1],
        400,
        "mapper_parsing_exception",
    )]);
    let traces = scene.ingest_at(now(), 3, "fix").await;
    let reasons = scene.settled(&traces).await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        scene
            .app
            .metrics()
            .await
            .contains("auditrelay_refused_events_total")
    );

    // The mapping is fixed (no more faults): send them again.
    let app = &scene.app;
    let path = scene.webhook("/refused-events/resend");
    let resp = app
        .request(Method::POST, &path, Some(&app.admin), None)
        .await;
    let marked = expect_json(resp, StatusCode::ACCEPTED).await;
    assert_eq!(marked["marked"], 2);
    eventually(WAIT, || async {
        scene.refused().await.is_empty().then_some(())
    })
    .await;
    assert!(scene.settled(&traces).await.is_empty());
    assert_eq!(scene.siem.counts().len(), 3);
    let status = scene.status().await;
    assert!(status.get("refused_events").is_none(), "{status}");
}

#[tokio::test]
async fn kinds_through_the_api() {
    let app = TestApp::spawn_with(dev).await;
    let create = |body: Value| app.post("/v3/audit-log-destinations", &app.admin, body);
    let base = |kind: &str, endpoint: &str| json!({"name": format!("d-{kind}"), "endpoint": endpoint, "authorization": "k", "kind": kind});

    let cases = [
        (base("splunk", "https://s.example/x"), "kind"),
        (
            json!({"name": "x", "endpoint": "https://s.example/services/collector/event", "authorization": "k",
                "kind": "splunk_hec", "settings": {"idx": "a"}}),
            "settings.idx",
        ),
        (
            base("datadog", "https://http-intake.logs.datadoghq.com/v1/input"),
            "endpoint",
        ),
        (
            base("sumo_logic", "https://e.sumologic.com/receiver/v1/http/abc"),
            "authorization",
        ),
        (
            json!({"name": "x", "endpoint": "https://http-intake.logs.datadoghq.com/api/v2/logs", "kind": "datadog"}),
            "authorization",
        ),
        (
            json!({"name": "x", "endpoint": "https://l.example/loki/api/v1/push", "kind": "loki",
                "settings": {"labels": {"__name__": "x"}}}),
            "settings.labels.__name__",
        ),
    ];
    for (body, field) in cases {
        let problem = expect_problem(create(body.clone()).await, StatusCode::BAD_REQUEST).await;
        let fields: Vec<String> = invalid_fields(&problem)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, [field], "{body}: {problem}");
    }
    // Nothing was created by the refusals.
    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // A webhook says nothing of kinds; a kind shows its settings, never its credential.
    let webhook = expect_json(
        create(json!({"name": "w", "endpoint": "https://w.example/", "authorization": "k"})).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(
        webhook.get("kind").is_none() && webhook.get("settings").is_none(),
        "{webhook}"
    );
    let body = json!({"name": "dd", "endpoint": "https://http-intake.logs.datadoghq.eu/api/v2/logs",
                      "authorization": "dd-key-123", "kind": "datadog", "settings": {"service": "kong"}});
    let dd = expect_json(create(body).await, StatusCode::CREATED).await;
    assert_eq!(dd["kind"], "datadog");
    assert_eq!(dd["settings"], json!({"service": "kong"}));
    assert!(!dd.to_string().contains("dd-key-123"));

    // The kind changes: settings of the old kind go, the credential stays.
    let path = format!("/v3/audit-log-destinations/{}", dd["id"].as_str().unwrap());
    let update = json!({"kind": "loki", "endpoint": "https://l.example/loki/api/v1/push", "settings": {"labels": {"team": "sec"}}});
    let loki = expect_json(
        app.request(Method::PATCH, &path, Some(&app.admin), Some(update))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(loki["kind"], "loki");
    assert_eq!(loki["settings"], json!({"labels": {"team": "sec"}}));
    let fetched = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(fetched, loki);
    // A kind whose endpoint it cannot be: refused, and nothing changes.
    let problem = expect_problem(
        app.request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"kind": "elasticsearch"})),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(invalid_fields(&problem)[0].0, "endpoint", "{problem}");
    let fetched = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(fetched, loki);

    // A v2 inline write keeps the kind of the destination it starts from: the endpoint it
    // gives must suit that kind.
    let id = loki["id"].as_str().unwrap();
    crate::support::bind_webhook(&app, "/us/v3/audit-log-webhook", id, true).await;
    let v2 = json!({"endpoint": "https://l.example/hook"});
    let resp = app
        .request(
            Method::PATCH,
            "/us/v2/audit-log-webhook",
            Some(&app.admin),
            Some(v2),
        )
        .await;
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(invalid_fields(&problem)[0].0, "endpoint", "{problem}");
    let v2 = json!({"endpoint": "https://l2.example/loki/api/v1/push"});
    let resp = app
        .request(
            Method::PATCH,
            "/us/v2/audit-log-webhook",
            Some(&app.admin),
            Some(v2),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
}

/// A v2 write that gives the Sumo Logic endpoint back as answers show it, masked, keeps the
/// saved one, as a v3 update does: saved as shown, every delivery after it would fail.
#[tokio::test]
async fn a_v2_write_of_the_masked_sumo_logic_endpoint_keeps_the_saved_one() {
    let app = TestApp::spawn_with(dev).await;
    let endpoint = "https://e.sumologic.com/receiver/v1/http/secret-token";
    let body = json!({"name": "sumo", "endpoint": endpoint, "kind": "sumo_logic"});
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    crate::support::bind_webhook(&app, "/us/v3/audit-log-webhook", id, true).await;
    let shown = expect_json(
        app.get("/us/v2/audit-log-webhook", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    let masked = shown["endpoint"].as_str().unwrap().to_owned();
    assert!(!masked.contains("secret-token"), "{shown}");

    let again = json!({"endpoint": masked, "enabled": true, "log_format": "json"});
    let resp = app
        .request(
            Method::PATCH,
            "/us/v2/audit-log-webhook",
            Some(&app.admin),
            Some(again),
        )
        .await;
    let answered = expect_json(resp, StatusCode::OK).await;
    assert_eq!(answered["endpoint"], masked.as_str());
    let region = auditrelay_core::Region::parse("us").unwrap();
    let managed = app
        .store()
        .get_managed_destination(app.org(), &region)
        .await
        .unwrap()
        .expect("the v2 write made the webhook's own destination");
    assert_eq!(managed.endpoint, endpoint);
}
