//! The supervisor: one lane per enabled webhook, started and stopped as configurations change,
//! an executor per replay job in progress, one per scope whose refused events are to be sent
//! again, and the gauges an operator alerts on (lag, oldest undelivered event, time to data
//! loss, refused events).
//!
//! Each of them runs on the node that holds its lease (`leases.rs`, DECISIONS.md S21): this
//! node starts the work it can take a lease for, up to its share, stops what it no longer
//! holds, and gives up what is beyond its share when other nodes have room. With one node (or
//! SQLite) every lease is this node's.
//!
//! The API tells the engine that a configuration changed ([`Changes::notify`]), as does a
//! change another node announced; the supervisor then compares the stored webhooks with its
//! lanes. It also looks every [`Leases::look_every`], so work whose node died is taken over,
//! and a change made by the CLI is picked up too.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::lane::Lane;
use super::shared::{Shared, label};
use super::{replay, resend};
use crate::changes::Changes;
use crate::clock;
use crate::leases::{self, Lease, Leases};
use crate::store::{ReplayJob, Scope, Webhook};

/// How often the gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// The running delivery engine.
pub struct Delivery {
    task: JoinHandle<()>,
}

/// Work this node runs, under its lease.
struct Running {
    lease: Lease,
    task: JoinHandle<()>,
}

/// Every piece of work this node runs, by kind.
#[derive(Default)]
struct Work {
    lanes: HashMap<Scope, Running>,
    replays: HashMap<Uuid, Running>,
    resends: HashMap<Scope, Running>,
}

impl Work {
    fn count(&self) -> usize {
        self.lanes.len() + self.replays.len() + self.resends.len()
    }

    fn into_running(self) -> Vec<Running> {
        let lanes = self.lanes.into_values();
        lanes
            .chain(self.replays.into_values())
            .chain(self.resends.into_values())
            .collect()
    }
}

impl Delivery {
    /// Starts the supervisor; it stops (and stops every lane) when `shutdown` turns true.
    pub fn start(
        shared: Shared,
        changes: &Changes,
        leases: Leases,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let task = tokio::spawn(supervise(
            Arc::new(shared),
            changes.clone(),
            leases,
            shutdown,
        ));
        Self { task }
    }

    /// Waits until every lane has stopped.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

async fn supervise(
    shared: Arc<Shared>,
    changes: Changes,
    leases: Leases,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut generation = changes.subscribe();
    let mut work = Work::default();
    let mut gauges_at = Instant::now();
    // Whether the last look failed to read the work: said once, not every look.
    let mut failing = false;
    loop {
        let webhooks = shared.store.list_webhooks().await;
        let jobs = shared.store.active_replay_jobs().await;
        let scopes = shared.store.scopes_to_resend().await;
        match (webhooks, jobs, scopes) {
            (Ok(webhooks), Ok(jobs), Ok(scopes)) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("delivery reads its work again");
                }
                let enabled: Vec<&Webhook> = webhooks.iter().filter(|w| w.enabled).collect();
                let wanted = enabled.len() + jobs.len() + scopes.len();
                // Rounded up, so that the shares of the nodes alive cover all there is.
                let share = wanted.div_ceil(usize::try_from(leases.nodes()).unwrap_or(1).max(1));
                stop_unwanted(&shared, &enabled, &jobs, &mut work);
                let room = share.saturating_sub(work.count());
                let held_elsewhere = match room {
                    0 => HashSet::new(),
                    _ => shared.store.held_leases().await.unwrap_or_default(),
                };
                let mut taker = Taker {
                    shared: &shared,
                    leases: &leases,
                    room,
                    held_elsewhere,
                };
                taker.lanes(&changes, &enabled, &mut work.lanes).await;
                taker.replays(jobs, &mut work.replays).await;
                taker.resends(scopes, &mut work.resends).await;
                give_up_beyond(share, &mut work);
                if gauges_at <= Instant::now() {
                    update_gauges(&shared, &work.lanes, &webhooks).await;
                    gauges_at = Instant::now() + GAUGES_EVERY;
                }
            }
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                // Said once: the store's own log line says why and when it is back.
                if !failing {
                    tracing::warn!(error = %e, "delivery could not read its work; will retry every look");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = generation.changed() => {}
            _ = tokio::time::sleep(leases.look_every()) => {}
        }
    }
    let running = work.into_running();
    for r in &running {
        r.lease.stop();
    }
    for r in running {
        let _ = r.task.await;
    }
}

/// Stops the work that is over: lanes of webhooks gone or disabled, executors of jobs no longer
/// in progress (cancelled: the batch in hand is not followed by another); and forgets what
/// stopped by itself (finished, or its lease was lost).
fn stop_unwanted(shared: &Shared, enabled: &[&Webhook], jobs: &[ReplayJob], work: &mut Work) {
    work.lanes.retain(|scope, running| {
        let keep = enabled.iter().any(|w| w.scope == *scope) && !running.task.is_finished();
        if !keep {
            running.lease.stop();
            clear_gauges(shared, scope);
        }
        keep
    });
    work.replays.retain(|id, running| {
        let keep = jobs.iter().any(|job| job.id == *id) && !running.task.is_finished();
        if !keep {
            running.lease.stop();
        }
        keep
    });
    // A resend ends by itself once nothing is marked.
    work.resends
        .retain(|_, running| !running.task.is_finished());
}

/// Gives up one piece of work when this node runs more than its share, for a node with room
/// to take: one per look, so that the work moves gradually. Resends and lanes go before replay
/// jobs, whose executors are the most costly to start again.
fn give_up_beyond(share: usize, work: &mut Work) {
    if work.count() <= share {
        return;
    }
    let running = [&mut work.resends, &mut work.lanes]
        .into_iter()
        .find_map(take_any)
        .or_else(|| take_any(&mut work.replays));
    if let Some(running) = running {
        tracing::info!(lease = %running.lease.fence().name, "giving work up to a node with room");
        // Its lease is released once it has stopped.
        running.lease.stop();
    }
}

fn take_any<K: Clone + Eq + Hash>(work: &mut HashMap<K, Running>) -> Option<Running> {
    let key = work.keys().next()?.clone();
    work.remove(&key)
}

/// Takes the leases of work nobody runs, while this node has room.
struct Taker<'a> {
    shared: &'a Arc<Shared>,
    leases: &'a Leases,
    room: usize,
    /// The leases some node held at the start of the look: not worth asking for.
    held_elsewhere: HashSet<String>,
}

impl Taker<'_> {
    /// The lease `name`, if this node has room and no node holds it.
    async fn take(&mut self, name: &str) -> Option<Lease> {
        if self.room == 0 || self.held_elsewhere.contains(name) {
            return None;
        }
        match self.leases.acquire(name).await {
            Ok(Some(lease)) => {
                self.room -= 1;
                Some(lease)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "a lease could not be taken; will retry");
                None
            }
        }
    }

    /// Runs `work` under `lease`, and gives the lease up once it has stopped, however it
    /// stopped: a panic in it too (its own task catches that), else the work would stay held
    /// here, and taken nowhere, until the process ends.
    fn spawn(&self, lease: Lease, work: impl Future<Output = ()> + Send + 'static) -> Running {
        let leases = self.leases.clone();
        let held = lease.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = tokio::spawn(work).await {
                tracing::error!(lease = %held.fence().name, error = %e, "work under a lease ended abnormally; it is given up for a node to take again");
            }
            leases.release(&held).await;
        });
        Running { lease, task }
    }

    /// Starts a lane for every enabled webhook that has none on any node.
    async fn lanes(
        &mut self,
        changes: &Changes,
        enabled: &[&Webhook],
        lanes: &mut HashMap<Scope, Running>,
    ) {
        for webhook in enabled {
            let scope = &webhook.scope;
            if lanes.contains_key(scope) {
                continue;
            }
            let Some(lease) = self.take(&leases::lane(scope)).await else {
                continue;
            };
            let lane = Lane::new(
                self.shared.clone(),
                scope.clone(),
                changes.subscribe(),
                lease.clone(),
            );
            tracing::info!(webhook = %label(scope), "delivery lane started");
            lanes.insert(scope.clone(), self.spawn(lease, lane.run()));
        }
    }

    /// Starts an executor for every job in progress that has none on any node (after a
    /// restart, or its node's death, a `running` job resumes where it was saved).
    async fn replays(&mut self, jobs: Vec<ReplayJob>, replays: &mut HashMap<Uuid, Running>) {
        for job in jobs {
            if replays.contains_key(&job.id) {
                continue;
            }
            let Some(lease) = self.take(&leases::replay(job.id)).await else {
                continue;
            };
            // Read again under the lease: the progress a former owner saved before it lost
            // the lease is in it.
            let job = match self.shared.store.get_replay_job(&job.scope).await {
                Ok(Some(current)) if current.id == job.id && current.status.in_progress() => {
                    current
                }
                _ => {
                    self.leases.release(&lease).await;
                    continue;
                }
            };
            tracing::info!(
                webhook = %label(&job.scope),
                replay.id = %job.id,
                replay.status = job.status.as_str(),
                "replay job starting"
            );
            let id = job.id;
            let run = replay::run(self.shared.clone(), job, lease.clone());
            replays.insert(id, self.spawn(lease, run));
        }
    }

    /// Starts sending again the refused events of every scope that has some marked for it,
    /// unless a node is doing so.
    async fn resends(&mut self, scopes: Vec<Scope>, resends: &mut HashMap<Scope, Running>) {
        for scope in scopes {
            if resends.contains_key(&scope) {
                continue;
            }
            let Some(lease) = self.take(&leases::resend(&scope)).await else {
                continue;
            };
            let run = resend::run(self.shared.clone(), scope.clone(), lease.clone());
            resends.insert(scope, self.spawn(lease, run));
        }
    }
}

/// Lag, the age of the oldest undelivered event, and how long until retention deletes it.
/// Only of the webhooks whose lanes run here: another node's lane is its node's to report, and
/// the series of a webhook adds up to one across the nodes.
async fn update_gauges(shared: &Shared, lanes: &HashMap<Scope, Running>, webhooks: &[Webhook]) {
    let window = shared.retention.window.as_secs_f64();
    let here = webhooks.iter().filter(|w| lanes.contains_key(&w.scope));
    for webhook in here {
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
