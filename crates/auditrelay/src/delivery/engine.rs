//! The supervisor: one lane per enabled webhook, started and stopped as configurations change,
//! an executor per replay job in progress, one per scope whose refused events are to be sent
//! again, and the gauges an operator alerts on (lag, oldest undelivered event, time to data
//! loss, refused events).
//!
//! The API tells the engine that a configuration changed ([`Changes::notify`]); the supervisor
//! then compares the stored webhooks with its lanes. It also looks every few seconds, so a
//! change made by another process (a second node, the CLI) is picked up too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::lane::Lane;
use super::shared::{Shared, label};
use super::{replay, resend};
use crate::changes::Changes;
use crate::clock;
use crate::store::{ReplayJob, Scope, Webhook};

/// How often the supervisor re-reads the webhooks and refreshes the gauges without being told.
const LOOK_INTERVAL: Duration = Duration::from_secs(5);

/// The running delivery engine.
pub struct Delivery {
    task: JoinHandle<()>,
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Delivery {
    /// Starts the supervisor; it stops (and stops every lane) when `shutdown` turns true.
    pub fn start(shared: Shared, changes: &Changes, shutdown: watch::Receiver<bool>) -> Self {
        let task = tokio::spawn(supervise(Arc::new(shared), changes.clone(), shutdown));
        Self { task }
    }

    /// Waits until every lane has stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

async fn supervise(shared: Arc<Shared>, changes: Changes, mut shutdown: watch::Receiver<bool>) {
    let mut generation = changes.subscribe();
    let mut lanes: HashMap<Scope, Running> = HashMap::new();
    let mut replays: HashMap<Uuid, Running> = HashMap::new();
    let mut resends: HashMap<Scope, Running> = HashMap::new();
    loop {
        match shared.store.list_webhooks().await {
            Ok(webhooks) => {
                reconcile(&shared, &changes, &webhooks, &mut lanes);
                update_gauges(&shared, &webhooks).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "delivery could not read the webhooks; will retry")
            }
        }
        match shared.store.active_replay_jobs().await {
            Ok(jobs) => start_replays(&shared, jobs, &mut replays),
            Err(e) => {
                tracing::warn!(error = %e, "delivery could not read the replay jobs; will retry")
            }
        }
        match shared.store.scopes_to_resend().await {
            Ok(scopes) => start_resends(&shared, scopes, &mut resends),
            Err(e) => {
                tracing::warn!(error = %e, "delivery could not read the refused lists; will retry")
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = generation.changed() => {}
            _ = tokio::time::sleep(LOOK_INTERVAL) => {}
        }
    }
    let running = lanes
        .into_values()
        .chain(replays.into_values())
        .chain(resends.into_values());
    let running: Vec<Running> = running.collect();
    for r in &running {
        let _ = r.stop.send(true);
    }
    for r in running {
        let _ = r.task.await;
    }
}

/// Starts sending again the refused events of every scope that has some marked for it, unless
/// that is under way.
fn start_resends(shared: &Arc<Shared>, scopes: Vec<Scope>, resends: &mut HashMap<Scope, Running>) {
    resends.retain(|_, running| !running.task.is_finished());
    for scope in scopes {
        if resends.contains_key(&scope) {
            continue;
        }
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(resend::run(shared.clone(), scope.clone(), stopped));
        resends.insert(scope, Running { stop, task });
    }
}

/// Starts an executor for every job in progress that has none (after a restart, a `running`
/// job resumes where it was), and stops the executors of jobs no longer in progress (cancelled:
/// the batch in hand is not followed by another).
fn start_replays(shared: &Arc<Shared>, jobs: Vec<ReplayJob>, replays: &mut HashMap<Uuid, Running>) {
    replays.retain(|_, running| !running.task.is_finished());
    for (id, running) in replays.iter() {
        if !jobs.iter().any(|job| job.id == *id) {
            let _ = running.stop.send(true);
        }
    }
    for job in jobs {
        if replays.contains_key(&job.id) {
            continue;
        }
        tracing::info!(
            webhook = %label(&job.scope),
            replay.id = %job.id,
            replay.status = job.status.as_str(),
            "replay job starting"
        );
        let (stop, stopped) = watch::channel(false);
        let id = job.id;
        let task = tokio::spawn(replay::run(shared.clone(), job, stopped));
        replays.insert(id, Running { stop, task });
    }
}

/// Starts a lane for every enabled webhook without one, and stops the lanes of webhooks that
/// are gone or disabled.
fn reconcile(
    shared: &Arc<Shared>,
    changes: &Changes,
    webhooks: &[Webhook],
    lanes: &mut HashMap<Scope, Running>,
) {
    let enabled: HashMap<&Scope, &Webhook> = webhooks
        .iter()
        .filter(|w| w.enabled)
        .map(|w| (&w.scope, w))
        .collect();
    lanes.retain(|scope, running| {
        let keep = enabled.contains_key(scope) && !running.task.is_finished();
        if !keep {
            let _ = running.stop.send(true);
            clear_gauges(shared, scope);
        }
        keep
    });
    for scope in enabled.keys() {
        if lanes.contains_key(*scope) {
            continue;
        }
        let (stop, stopped) = watch::channel(false);
        let lane = Lane::new(
            shared.clone(),
            (*scope).clone(),
            changes.subscribe(),
            stopped,
        );
        tracing::info!(webhook = %label(scope), "delivery lane started");
        lanes.insert(
            (*scope).clone(),
            Running {
                stop,
                task: tokio::spawn(lane.run()),
            },
        );
    }
}

/// Lag, the age of the oldest undelivered event, and how long until retention deletes it.
async fn update_gauges(shared: &Shared, webhooks: &[Webhook]) {
    let window = shared.retention.window.as_secs_f64();
    for webhook in webhooks.iter().filter(|w| w.enabled) {
        let scope = &webhook.scope;
        let counted = shared.store.undelivered(scope, webhook.cursor).await;
        let Ok((lag, oldest)) = counted else {
            continue;
        };
        let age = oldest.map_or(0.0, |ts| {
            (clock::now().as_millis() - ts.as_millis()).max(0) as f64 / 1000.0
        });
        let webhook = label(scope);
        metrics::gauge!("auditrelay_delivery_lag_events", "webhook" => webhook.clone())
            .set(lag as f64);
        metrics::gauge!("auditrelay_delivery_oldest_undelivered_age_seconds", "webhook" => webhook.clone())
            .set(age);
        metrics::gauge!("auditrelay_delivery_seconds_until_data_loss", "webhook" => webhook.clone())
            .set(window - age);
        if let Ok(refused) = shared.store.count_refused(scope).await {
            metrics::gauge!("auditrelay_refused_events", "webhook" => webhook).set(refused as f64);
        }
    }
}

/// A webhook that no longer delivers has nothing undelivered (DECISIONS.md D2: what is stored while
/// it is off is replay's, not its backlog).
fn clear_gauges(shared: &Shared, scope: &Scope) {
    let webhook = label(scope);
    metrics::gauge!("auditrelay_delivery_lag_events", "webhook" => webhook.clone()).set(0.0);
    metrics::gauge!("auditrelay_delivery_oldest_undelivered_age_seconds", "webhook" => webhook.clone())
        .set(0.0);
    metrics::gauge!("auditrelay_delivery_seconds_until_data_loss", "webhook" => webhook)
        .set(shared.retention.window.as_secs_f64());
}
