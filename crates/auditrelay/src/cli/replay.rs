//! `auditrelay replay`: starts a replay job on a running server, which re-sends a window of
//! audit logs to a scope's enabled webhook, and with `--wait` follows it to the end; `--status`
//! shows the scope's current job without starting one.
//!
//! It is a plain client of the replay API (`/v3/audit-log-replay-job` behind a region prefix,
//! and `/v3/portals/{portalId}/audit-log-replay-job`). The window is checked here only for what
//! cannot be sent at all, an unreadable time or duration: the server is the judge of the rest
//! (retention, order, the future), and its refusal is printed one field per line.
//!
//! Following a job polls its `GET`. On a terminal the progress is one line redrawn in place; in
//! a log (CI, a pipe) it is one line per change, on stderr either way, so stdout holds only the
//! outcome. The exit status tells a script how it ended: 0 completed, 1 failed (or any other
//! error), 2 still running when `--timeout` ran out.

use std::fmt;
use std::io::{self, IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use auditrelay_core::{PortalId, Region, Timestamp};
use clap::{ArgGroup, Args};
use reqwest::StatusCode;
use serde_json::json;

use super::{ServerArgs, parse_portal, parse_region, problem};
use crate::client::ApiClient;
use crate::client::wire::ReplayJob;
use crate::clock;
use crate::config::parse_duration;
use crate::human;

/// How long one request may take; both are quick reads or writes of one row.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Distinct from emit's, so a job's self-audit events show which tool started it.
const USER_AGENT: &str = concat!("auditrelay-replay/", env!("CARGO_PKG_VERSION"));
/// How often `--wait` asks while the job moves: the executor saves its progress after every
/// batch, and a person watching wants the line to move.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// While the job does not move (a SIEM being retried), the wait between asks doubles up to
/// this: every request is itself audited, and an hour of twice a second would fill the
/// organization's audit log with this command's reads.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long `--wait` keeps asking an unreachable server: long enough to ride out a restart
/// (the job resumes where it was), short enough not to hang on a server that is gone.
const UNREACHABLE_GRACE: Duration = Duration::from_secs(30);
const JOB_PATH: &str = "/v3/audit-log-replay-job";

const TOKEN_HELP: &str = "A token that may start replays (org-admin or audit-logs-admin; portal-admin of the portal for --portal), or only read them (also audit-logs-viewer) for --status; never printed";

const EXAMPLES: &str = "\
Examples:
  auditrelay replay --last 6h --wait               the default region's last 6 hours, followed to the end
  auditrelay replay --from 2026-11-22T08:00:00Z --to 2026-11-22T14:00:00Z --region eu
  auditrelay replay --last 1d --portal <ID>        a portal's logs, to the portal's webhook
  auditrelay replay --status --region eu           the region's current job
  auditrelay replay --status --wait                follow a job that is already running

Exit status: 0 when started (with --wait: completed), 1 on an error (with --wait: failed),
2 when --wait gave up after --timeout (the job goes on in the server).";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_arg("token", |a| a.help(TOKEN_HELP)))]
#[command(group(ArgGroup::new("job").required(true).args(["last", "from", "status"])))]
pub struct ReplayArgs {
    /// Replay the window that ends now and is this long (for example 30m, 6h or 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    pub last: Option<Duration>,
    /// Replay the window that starts at this time (RFC 3339, such as 2026-11-22T08:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,
    /// The end of the --from window [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time, conflicts_with_all = ["last", "status"])]
    pub to: Option<Timestamp>,
    /// Show the scope's current replay job instead of starting one.
    #[arg(long)]
    pub status: bool,
    /// Replay a portal's logs to the portal's webhook (instead of the organization's).
    #[arg(long, value_name = "ID", value_parser = parse_portal, conflicts_with = "region")]
    pub portal: Option<PortalId>,
    /// Replay the organization's logs of this region, sent as a path prefix (`eu` →
    /// /eu/v3/audit-log-replay-job) [default: the server's default region]. `global` starts a
    /// job in every region whose webhook is enabled.
    #[arg(long, value_name = "REGION", value_parser = parse_region)]
    pub region: Option<Region>,
    /// Follow the job until it ends, showing its progress: exit 0 when it completed, 1 when it
    /// failed, 2 when it is still running after --timeout.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait follows the job before giving up (the job itself goes on).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_span)]
    pub timeout: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn parse_span(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| "not a duration like 30m, 6h or 7d".into())
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s)
        .ok_or_else(|| "not an RFC 3339 date-time such as 2026-11-22T08:00:00Z".into())
}

/// Whose job: the organization's in a region (the server's default without one), or a portal's.
enum Target {
    Org(Option<Region>),
    Portal(PortalId),
}

impl Target {
    fn url(&self, api: &ApiClient) -> String {
        match self {
            Self::Org(region) => api.url(region.as_ref(), JOB_PATH),
            Self::Portal(portal) => {
                api.url(None, &format!("/v3/portals/{portal}/audit-log-replay-job"))
            }
        }
    }

    /// The flags that name this scope on a command line, for the commands a message suggests.
    fn flags(&self) -> String {
        match self {
            Self::Org(None) => String::new(),
            Self::Org(Some(region)) => format!(" --region {region}"),
            Self::Portal(portal) => format!(" --portal {portal}"),
        }
    }

    fn is_global(&self) -> bool {
        matches!(self, Self::Org(Some(region)) if region.as_str() == Region::GLOBAL)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Org(None) => f.write_str("the server's default region"),
            Self::Org(Some(_)) if self.is_global() => {
                f.write_str("every region whose webhook is enabled")
            }
            Self::Org(Some(region)) => write!(f, "region {region}"),
            Self::Portal(portal) => write!(f, "portal {portal}"),
        }
    }
}

/// How following a job ended, short of an error.
enum Followed {
    Completed(ReplayJob),
    Failed(ReplayJob),
    TimedOut(ReplayJob),
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let window = window(&args, clock::now());
    let target = match args.portal {
        Some(portal) => Target::Portal(portal),
        None => Target::Org(args.region),
    };
    // A PUT on `global` answers with one region's job and a GET there is refused, so there is
    // no one job to show or follow; refusing here starts nothing that could not be watched.
    if target.is_global() && (args.wait || args.status) {
        bail!(
            "--region global starts a job in every region whose webhook is enabled, so there is no one job to show or follow: name a region for --status and --wait"
        );
    }
    let api = ApiClient::new(
        &args.server.url,
        args.server.token,
        USER_AGENT,
        REQUEST_TIMEOUT,
    )?;
    let job = match window {
        None => {
            let job = fetch(&api, &target).await?;
            println!("{}", describe(&job, &target));
            // A job that has ended is shown in full above: --wait only adds the exit status.
            match job.status.as_str() {
                _ if !args.wait => return Ok(()),
                "unconfigured" | "completed" => return Ok(()),
                "failed" => return Err(failed(&job)),
                _ => job,
            }
        }
        Some((start, end)) => {
            let job = start_job(&api, &target, start, end).await?;
            println!(
                "replay job accepted: {} … {} ({target})",
                show_time(&job.start_at),
                show_time(&job.end_at)
            );
            if !args.wait {
                return Ok(());
            }
            job
        }
    };
    let began = Instant::now();
    match follow(&api, &target, job, args.timeout).await? {
        Followed::Completed(job) => {
            let took = job_duration(&job).unwrap_or_else(|| began.elapsed());
            println!("{}", completed(&job, took));
            Ok(())
        }
        Followed::Failed(job) => Err(failed(&job)),
        Followed::TimedOut(job) => {
            eprintln!(
                "error: the replay job is still {} after --timeout {}; it goes on in the server: follow it with `auditrelay replay --status --wait{}`",
                job.status,
                human::stopwatch(args.timeout),
                target.flags()
            );
            // `main` turns every error into exit status 1; a script must be able to tell "still
            // running" from "failed", and nothing is left to clean up here (the job is the
            // server's), so this exits directly, after what was printed is out.
            let _ = io::stdout().flush();
            std::process::exit(2)
        }
    }
}

fn failed(job: &ReplayJob) -> anyhow::Error {
    let reason = job.failure_reason.as_deref().unwrap_or("no reason given");
    let sent = counts(job).map_or_else(String::new, |c| format!("\n  sent: {c}"));
    anyhow!("replay job failed: {reason}{sent}")
}

/// The window to send, `None` for `--status`. "Now" is exact, to the millisecond: rounded
/// down it would leave out events already stored, and rounded up it would take in events
/// stored after the job starts, this command's own audited requests among them.
fn window(args: &ReplayArgs, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    match (args.last, args.from) {
        (Some(last), _) => {
            let span = i64::try_from(last.as_millis()).unwrap_or(i64::MAX);
            Some((now.saturating_sub_millis(span), now))
        }
        (None, Some(from)) => Some((from, args.to.unwrap_or(now))),
        (None, None) => None,
    }
}

async fn start_job(
    api: &ApiClient,
    target: &Target,
    start: Timestamp,
    end: Timestamp,
) -> anyhow::Result<ReplayJob> {
    let body = json!({"start_at": start.to_rfc3339_millis(), "end_at": end.to_rfc3339_millis()});
    let request = api.http().put(target.url(api)).json(&body);
    let (status, body) = api.send(request, "the replay request").await?;
    let hint = match status {
        StatusCode::CONFLICT if target.is_global() => Some(
            "A replay job is already running in a region whose webhook is enabled: `auditrelay replay --status --region REGION` shows a region's job, and adding --wait follows it to the end.".to_owned(),
        ),
        StatusCode::CONFLICT => Some(format!(
            "A replay job is already running in this scope: `auditrelay replay --status{0}` shows it, and `auditrelay replay --status --wait{0}` follows it to the end.",
            target.flags()
        )),
        StatusCode::FORBIDDEN => Some(
            "The token's role does not allow this: starting a replay needs org-admin or audit-logs-admin, or for --portal portal-admin of that portal.".to_owned(),
        ),
        _ => None,
    };
    read_job(
        status,
        &body,
        "The server refused to start the replay job",
        hint.as_deref(),
    )
}

async fn fetch(api: &ApiClient, target: &Target) -> anyhow::Result<ReplayJob> {
    let (status, body) = api
        .send(api.http().get(target.url(api)), "the replay status request")
        .await?;
    read_job_status(status, &body)
}

fn read_job_status(status: StatusCode, body: &[u8]) -> anyhow::Result<ReplayJob> {
    let hint = (status == StatusCode::FORBIDDEN).then_some(
        "The token's role does not allow this: reading a replay job needs org-admin, audit-logs-admin or audit-logs-viewer, or for --portal portal-admin of that portal.",
    );
    read_job(
        status,
        body,
        "The server refused to show the replay job",
        hint,
    )
}

/// The job in a 2xx answer, or the refusal as an error.
fn read_job(
    status: StatusCode,
    body: &[u8],
    context: &str,
    hint: Option<&str>,
) -> anyhow::Result<ReplayJob> {
    if !status.is_success() {
        return Err(problem::refused(context, status, body, hint));
    }
    serde_json::from_slice(body)
        .context("The server answered with something other than a replay job")
}

/// Polls the job until it completes, fails or `timeout` runs out.
async fn follow(
    api: &ApiClient,
    target: &Target,
    mut job: ReplayJob,
    timeout: Duration,
) -> anyhow::Result<Followed> {
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::new(io::stderr().is_terminal());
    let mut unreachable_since: Option<Instant> = None;
    let mut interval = POLL_INTERVAL;
    loop {
        progress.show(progress_line(&job));
        match job.status.as_str() {
            "completed" => return Ok(Followed::Completed(job)),
            "failed" => return Ok(Followed::Failed(job)),
            "unconfigured" => bail!("{target} has no replay job to follow"),
            // accepted, pending, running, and whatever a newer server adds: not over yet.
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Followed::TimedOut(job));
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        let request = api.http().get(target.url(api));
        let (status, body) = match api.send(request, "the replay status request").await {
            Ok(answer) => answer,
            Err(e) => {
                if unreachable_since.get_or_insert(now).elapsed() > UNREACHABLE_GRACE {
                    return Err(e);
                }
                interval = POLL_INTERVAL;
                continue;
            }
        };
        unreachable_since = None;
        let next = read_job_status(status, &body)?;
        // A job in progress cannot be replaced, so a new window means ours ended and another
        // started between two polls: its outcome can no longer be read.
        if (&next.start_at, &next.end_at) != (&job.start_at, &job.end_at) {
            bail!(
                "the replay job ended and another ({} … {}) replaced it before its outcome could be read; see `auditrelay replay --status{}`",
                show_time(&next.start_at),
                show_time(&next.end_at),
                target.flags()
            );
        }
        // The executor touches `updated_at` with every step it saves.
        interval = if next.updated_at == job.updated_at {
            (interval * 2).min(MAX_POLL_INTERVAL)
        } else {
            POLL_INTERVAL
        };
        job = next;
    }
}

/// The progress display: one line redrawn in place on a terminal, else a line per change.
struct Progress {
    terminal: bool,
    last: Option<String>,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            last: None,
        }
    }

    fn show(&mut self, line: String) {
        if self.last.as_ref() == Some(&line) {
            return;
        }
        if self.terminal {
            // Back to the start of the line and clear it: a shorter line leaves nothing behind.
            eprint!("\r\x1b[2K{line}");
            let _ = io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
        self.last = Some(line);
    }
}

impl Drop for Progress {
    /// Ends the redrawn line, however following ended, so what is printed next starts afresh.
    fn drop(&mut self) {
        if self.terminal && self.last.is_some() {
            eprintln!();
        }
    }
}

/// `running: 12,000 / 50,000 events (24%), 12 batches`, or the bare status before counting.
fn progress_line(job: &ReplayJob) -> String {
    match counts(job) {
        Some(counts) => format!("{}: {counts}", job.status),
        None => job.status.clone(),
    }
}

/// `12,000 / 50,000 events (24%), 12 batches`, once the job has counted its window.
fn counts(job: &ReplayJob) -> Option<String> {
    let total = job.events_total?;
    let sent = job.events_sent.unwrap_or(0);
    let share = if total > 0 {
        format!(
            " ({}%)",
            u128::from(sent.min(total)) * 100 / u128::from(total)
        )
    } else {
        String::new()
    };
    Some(format!(
        "{} / {} events{share}, {}",
        human::count(sent),
        human::count(total),
        batches(job.batches_sent.unwrap_or(0))
    ))
}

fn batches(n: u64) -> String {
    let noun = if n == 1 { "batch" } else { "batches" };
    format!("{} {noun}", human::count(n))
}

/// `replay job completed: 50,000 events in 50 batches in 1m 12s`.
fn completed(job: &ReplayJob, took: Duration) -> String {
    let sent = job.events_sent.unwrap_or(0);
    let noun = if sent == 1 { "event" } else { "events" };
    let mut line = format!(
        "replay job completed: {} {noun} in {} in {}",
        human::count(sent),
        batches(job.batches_sent.unwrap_or(0)),
        human::stopwatch(took)
    );
    // Events ingested late into the window, or pruned meanwhile, make the two differ.
    if let Some(total) = job.events_total.filter(|t| *t != sent) {
        line.push_str(&format!(
            " ({} were in the window when it started)",
            human::count(total)
        ));
    }
    line
}

/// The job's own run time, from its start to its end, by the server's clock.
fn job_duration(job: &ReplayJob) -> Option<Duration> {
    let started = Timestamp::parse_rfc3339(job.started_at.as_deref()?)?;
    let finished = Timestamp::parse_rfc3339(job.finished_at.as_deref()?)?;
    let ms = finished.as_millis().checked_sub(started.as_millis())?;
    Some(Duration::from_millis(u64::try_from(ms).ok()?))
}

/// `replay job of region us: running` and the job's details, one per line.
fn describe(job: &ReplayJob, target: &Target) -> String {
    if job.status == "unconfigured" {
        return format!("replay job of {target}: unconfigured (none was started)");
    }
    let mut out = format!("replay job of {target}: {}", job.status);
    let mut field = |name: &str, value: String| out.push_str(&format!("\n  {name:<9} {value}"));
    field(
        "window",
        format!("{} … {}", show_time(&job.start_at), show_time(&job.end_at)),
    );
    if let Some(counts) = counts(job) {
        field("progress", counts);
    }
    if let Some(started) = &job.started_at {
        field("started", show_time(started));
    }
    if let Some(finished) = &job.finished_at {
        let took =
            job_duration(job).map_or_else(String::new, |d| format!(" ({})", human::stopwatch(d)));
        field("finished", format!("{}{took}", show_time(finished)));
    }
    if let Some(reason) = &job.failure_reason {
        field("failure", reason.clone());
    }
    field("updated", show_time(&job.updated_at));
    out
}

/// A server time in its shortest exact form: to the second unless it has milliseconds.
fn show_time(text: &str) -> String {
    match Timestamp::parse_rfc3339(text) {
        Some(t) if t.as_millis().rem_euclid(1000) == 0 => t.to_rfc3339_seconds(),
        Some(t) => t.to_rfc3339_millis(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ReplayArgs, clap::Error> {
        let all = ["auditrelay", "replay", "--token", "kpat_x"]
            .iter()
            .chain(args)
            .copied();
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Replay(args) => args,
            other => panic!("not replay: {other:?}"),
        })
    }

    fn job(status: &str, total: Option<u64>, sent: u64, batches: u64) -> ReplayJob {
        ReplayJob {
            start_at: "2026-11-22T08:00:00.000Z".into(),
            end_at: "2026-11-22T14:00:00.250Z".into(),
            status: status.into(),
            updated_at: "2026-11-22T14:00:01.000Z".into(),
            events_total: total,
            events_sent: Some(sent),
            batches_sent: Some(batches),
            started_at: None,
            finished_at: None,
            failure_reason: None,
        }
    }

    #[test]
    fn exactly_one_of_last_from_or_status() {
        assert!(parse(&["--last", "6h"]).is_ok());
        assert!(parse(&["--from", "2026-11-22T08:00:00Z"]).is_ok());
        assert!(parse(&["--status", "--wait"]).is_ok());
        for bad in [
            &[][..],
            &["--last", "6h", "--from", "2026-11-22T08:00:00Z"],
            &["--last", "6h", "--status"],
            &["--last", "6h", "--to", "2026-11-22T08:00:00Z"],
            &["--status", "--to", "2026-11-22T08:00:00Z"],
            &["--to", "2026-11-22T08:00:00Z"],
            &["--last", "6h", "--portal", "x"],
            &["--last", "soon"],
            &["--from", "yesterday"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let portal = PortalId::new_v4().to_string();
        let e = parse(&["--last", "1h", "--portal", &portal, "--region", "eu"]).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
    }

    #[test]
    fn the_window_ends_now() {
        assert_eq!(window(&parse(&["--status"]).unwrap(), clock::now()), None);
        let now = Timestamp::parse_rfc3339("2026-11-22T14:00:00.250Z").unwrap();
        let at = |t: &str| Timestamp::parse_rfc3339(t).unwrap();
        let args = parse(&["--last", "6h"]).unwrap();
        assert_eq!(
            window(&args, now).unwrap(),
            (at("2026-11-22T08:00:00.250Z"), now)
        );
        let args = parse(&["--from", "2026-11-22T09:30:00+01:00"]).unwrap();
        assert_eq!(
            window(&args, now).unwrap(),
            (at("2026-11-22T08:30:00Z"), now)
        );
        let args = parse(&[
            "--from",
            "2026-11-22T08:30:00Z",
            "--to",
            "2026-11-22T09:00:00.5Z",
        ])
        .unwrap();
        assert_eq!(
            window(&args, now).unwrap(),
            (at("2026-11-22T08:30:00Z"), at("2026-11-22T09:00:00.500Z"))
        );
    }

    #[test]
    fn progress_counts_events_and_batches() {
        assert_eq!(progress_line(&job("accepted", None, 0, 0)), "accepted");
        assert_eq!(
            progress_line(&job("running", Some(50_000), 12_000, 12)),
            "running: 12,000 / 50,000 events (24%), 12 batches"
        );
        assert_eq!(
            progress_line(&job("completed", Some(0), 0, 0)),
            "completed: 0 / 0 events, 0 batches"
        );
        assert_eq!(
            completed(
                &job("completed", Some(1), 1, 1),
                Duration::from_millis(1500)
            ),
            "replay job completed: 1 event in 1 batch in 1.5s"
        );
        assert_eq!(
            completed(&job("completed", Some(9), 10, 2), Duration::from_secs(3725)),
            "replay job completed: 10 events in 2 batches in 1h 02m (9 were in the window when it started)"
        );
    }

    #[test]
    fn numbers_and_times_read_easily() {
        assert_eq!(
            show_time("2026-11-22T08:00:00.000Z"),
            "2026-11-22T08:00:00Z"
        );
        assert_eq!(
            show_time("2026-11-22T08:00:00.250Z"),
            "2026-11-22T08:00:00.250Z"
        );
        assert_eq!(show_time("soon"), "soon");
    }

    #[test]
    fn the_status_shows_each_known_field_on_its_own_line() {
        let mut failed = job("failed", Some(10), 4, 1);
        failed.started_at = Some("2026-11-22T14:00:01.000Z".into());
        failed.finished_at = Some("2026-11-22T14:00:03.500Z".into());
        failed.failure_reason = Some("a batch of 6 events was not delivered: 400".into());
        let target = Target::Org(Region::parse("us"));
        assert_eq!(
            describe(&failed, &target),
            "replay job of region us: failed\n  \
             window    2026-11-22T08:00:00Z … 2026-11-22T14:00:00.250Z\n  \
             progress  4 / 10 events (40%), 1 batch\n  \
             started   2026-11-22T14:00:01Z\n  \
             finished  2026-11-22T14:00:03.500Z (2.5s)\n  \
             failure   a batch of 6 events was not delivered: 400\n  \
             updated   2026-11-22T14:00:01Z"
        );
        let none = job("unconfigured", None, 0, 0);
        assert_eq!(
            describe(&none, &Target::Org(None)),
            "replay job of the server's default region: unconfigured (none was started)"
        );
    }
}
