//! Logs and metrics set-up.
//!
//! Logs are human-readable on a terminal and JSON lines otherwise, with dotted fields
//! (`http.status`, `duration_ms`). They never carry tokens, authorization values or event
//! bodies. Metrics are `auditrelay_*`, units in their names, rendered at `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber; a second call (tests) is a no-op.
pub fn init_logging(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let json = match config.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (the `metrics` macros report to one global recorder,
/// so every server in a process, as in tests, shares it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let sizes = [1.0, 10.0, 100.0, 1000.0, 10_000.0, 50_000.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), &sizes))
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "auditrelay_http_requests_total",
        "HTTP requests by method, route and status"
    );
    describe_histogram!(
        "auditrelay_http_request_duration_seconds",
        "HTTP request duration by route"
    );
    describe_counter!(
        "auditrelay_events_ingested_total",
        "Events durably stored through POST /v1/events"
    );
    describe_counter!(
        "auditrelay_events_rejected_total",
        "Events in rejected ingest requests, by reason"
    );
    describe_counter!(
        "auditrelay_authentications_total",
        "Token checks by outcome"
    );
    describe_counter!(
        "auditrelay_self_audit_failures_total",
        "Requests whose self-audit events could not be stored"
    );
    describe_histogram!(
        "auditrelay_store_commit_seconds",
        "Duration of one group commit of events"
    );
    describe_histogram!("auditrelay_store_commit_events", "Events per group commit");
    metrics::describe_gauge!(
        "auditrelay_store_accepting_writes",
        "1 while the store's last commit succeeded, 0 while it refuses writes (full disk, I/O error)"
    );
    describe_counter!(
        "auditrelay_store_errors_total",
        "Writes the store refused, by kind: full, io, read_only, busy"
    );
    describe_counter!(
        "auditrelay_retention_pruned_events_total",
        "Events deleted by the retention pruner"
    );
}
