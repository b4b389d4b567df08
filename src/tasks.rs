//! Tasks: operations whose outcome outlives the call that started them, and the server.
//!
//! A task is written to the store, durably, before its id is handed out; its record is
//! rewritten when it finishes or is cancelled, and removed once its time to live (counted
//! from its creation) has run out and it is over. The table in memory holds each task's
//! record without its outcome, which is read back from the store when asked for: memory per
//! task stays small whatever the operations return. A task belongs to the principal that
//! created it; to any other it does not exist. Its id is 128 random bits.
//!
//! What runs is not known here: the front end starts the operation, gives it the task's
//! cancellation token, and reports its end with [`Tasks::finish`] and an outcome in its own
//! encoding. After a restart, tasks that were still working are failed: their work died with
//! the server.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::TasksConfig;
use crate::ids::{Owner, TaskId};
use crate::model::task::TaskStatus;
use crate::session::shared::unix_ms;
use crate::store::{Store, TaskRecord, When};
use crate::{Error, Result};

/// What a task's failure after a restart says.
pub const DIED_WITH_SERVER: &str =
    "the server stopped while this task was working; its work ended with the server";

/// A task as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// What runs (the front end's name for the operation).
    pub op: String,
    /// Where it is.
    pub status: TaskStatus,
    /// Why it is there, in words.
    pub message: Option<String>,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Last changed, Unix ms.
    pub updated_ms: u64,
    /// Kept this long after its creation, ms.
    pub ttl_ms: u64,
    /// How often to ask about it, ms.
    pub poll_ms: u64,
    /// Whether its result reports a failure of the work itself (a tool error).
    pub tool_error: bool,
}

/// One task in the table.
#[derive(Debug)]
struct Slot {
    owner: Owner,
    task: Task,
    cancel: CancellationToken,
    /// The status, for waiters.
    status: watch::Sender<TaskStatus>,
}

/// The tasks of the runtime. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Tasks {
    store: Store,
    config: TasksConfig,
    table: Mutex<HashMap<TaskId, Slot>>,
}

impl Tasks {
    /// The table of the tasks in `store`; those still working when the server stopped are
    /// failed (and stored so), expired ones purged. Blocks (reads the store).
    pub(crate) fn load(store: Store, config: TasksConfig) -> Result<Arc<Self>> {
        let records = store.tasks().map_err(|e| Error::Store(e.to_string()))?;
        let now = now_ms();
        let mut table = HashMap::with_capacity(records.len());
        let (mut died, mut expired) = (0, 0);
        for mut rec in records {
            let Ok(id) = rec.id.parse::<TaskId>() else {
                continue;
            };
            if rec.status == TaskStatus::Working {
                rec.status = TaskStatus::Failed;
                rec.message = Some(DIED_WITH_SERVER.into());
                rec.updated_ms = now;
                store.put_task(id, Some(&rec), When::Lazy);
                died += 1;
            }
            if rec.created_ms.saturating_add(rec.ttl_ms) <= now {
                store.put_task(id, None, When::Lazy);
                expired += 1;
                continue;
            }
            let task = view(id, &rec);
            let (status, _) = watch::channel(task.status);
            table.insert(
                id,
                Slot {
                    owner: Owner::from_stored(&rec.owner),
                    task,
                    cancel: CancellationToken::new(),
                    status,
                },
            );
        }
        if died + expired + table.len() > 0 {
            info!(
                kept = table.len(),
                died, expired, "tasks restored from the store"
            );
        }
        Ok(Arc::new(Self {
            store,
            config,
            table: Mutex::new(table),
        }))
    }

    /// How tasks are kept.
    pub fn config(&self) -> &TasksConfig {
        &self.config
    }

    /// Creates a working task of `owner` running `op`, kept `ttl_ms` (the default when
    /// `None`); returns once the store has it on disk. Cancelling the task fires `cancel`,
    /// which its work watches.
    pub async fn create(
        &self,
        owner: &Owner,
        op: &str,
        ttl_ms: Option<u64>,
        cancel: CancellationToken,
    ) -> Result<Task> {
        let ttl_ms = self.check_ttl(ttl_ms)?;
        let id = TaskId::new();
        let now = now_ms();
        let task = Task {
            id,
            op: op.to_owned(),
            status: TaskStatus::Working,
            message: None,
            created_ms: now,
            updated_ms: now,
            ttl_ms,
            poll_ms: self.config.poll_interval_ms,
            tool_error: false,
        };
        let (ack, written) = oneshot::channel();
        let rec = record(owner, &task, None);
        self.store.put_task(id, Some(&rec), When::Durable(ack));
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Store(e.to_string())),
            Err(_) => return Err(Error::Store("the store writer stopped".into())),
        }
        let (status, _) = watch::channel(TaskStatus::Working);
        self.table.lock().insert(
            id,
            Slot {
                owner: owner.clone(),
                task: task.clone(),
                cancel: cancel.clone(),
                status,
            },
        );
        debug!(task = %id, %owner, op, ttl_ms, "task created");
        Ok(task)
    }

    fn check_ttl(&self, ttl_ms: Option<u64>) -> Result<u64> {
        match ttl_ms {
            None => Ok(self.config.default_ttl_ms),
            Some(0) => Err(Error::invalid(
                "ttl",
                "0 ms would expire the task before it could be asked about; give at least 1",
            )),
            Some(t) if t > self.config.max_ttl_ms => Err(Error::invalid(
                "ttl",
                format!(
                    "{t} ms is above the most this server keeps a task, {} ms (tasks.max_ttl_ms)",
                    self.config.max_ttl_ms
                ),
            )),
            Some(t) => Ok(t),
        }
    }

    /// Records the end of a task's work: its status, whether the result reports a tool
    /// error, a message, and the outcome in the front end's encoding. A task that was
    /// cancelled meanwhile stays cancelled (its outcome is dropped).
    pub fn finish(
        &self,
        id: TaskId,
        status: TaskStatus,
        tool_error: bool,
        message: Option<String>,
        outcome: String,
    ) {
        let mut table = self.table.lock();
        let Some(slot) = table.get_mut(&id) else {
            return;
        };
        if slot.task.status.is_terminal() {
            return;
        }
        slot.task.status = status;
        slot.task.tool_error = tool_error;
        slot.task.message = message;
        slot.task.updated_ms = now_ms();
        let rec = record(&slot.owner, &slot.task, Some(outcome));
        self.store.put_task(id, Some(&rec), When::Now);
        slot.status.send_replace(status);
        debug!(task = %id, %status, "task finished");
    }

    /// `owner`'s task `id`.
    pub fn get(&self, owner: &Owner, id: &str) -> Result<Task> {
        let id = parse(id)?;
        let table = self.table.lock();
        table
            .get(&id)
            .filter(|s| s.owner == *owner)
            .map(|s| s.task.clone())
            .ok_or_else(|| not_found(id))
    }

    /// Task `id` whoever owns it (for the front end that runs it).
    pub fn get_any(&self, id: TaskId) -> Result<Task> {
        let table = self.table.lock();
        table
            .get(&id)
            .map(|s| s.task.clone())
            .ok_or_else(|| not_found(id))
    }

    /// `owner`'s task `id` once it is over (waiting for that), with its outcome (`None` for
    /// a cancelled task, or one that failed without one).
    pub async fn outcome(&self, owner: &Owner, id: &str) -> Result<(Task, Option<String>)> {
        let task = self.wait(owner, id).await?;
        let store = self.store.clone();
        let tid = task.id;
        let rec = tokio::task::spawn_blocking(move || store.task(tid))
            .await
            .map_err(|e| Error::Store(format!("reading task {tid}: {e}")))?
            .map_err(|e| Error::Store(e.to_string()))?;
        Ok((task, rec.and_then(|r| r.outcome)))
    }

    /// Waits until `owner`'s task `id` is over; returns it then.
    pub async fn wait(&self, owner: &Owner, id: &str) -> Result<Task> {
        let mut status = {
            let id = parse(id)?;
            let table = self.table.lock();
            let slot = table
                .get(&id)
                .filter(|s| s.owner == *owner)
                .ok_or_else(|| not_found(id))?;
            slot.status.subscribe()
        };
        // The sender goes when the task is purged: it is over either way.
        let _ = status.wait_for(|s| s.is_terminal()).await;
        self.get(owner, id)
    }

    /// Changes of `owner`'s task `id`'s status, for notifications.
    pub fn watch(&self, owner: &Owner, id: TaskId) -> Option<watch::Receiver<TaskStatus>> {
        let table = self.table.lock();
        table
            .get(&id)
            .filter(|s| s.owner == *owner)
            .map(|s| s.status.subscribe())
    }

    /// `owner`'s tasks, oldest first, at most `limit` after the task `after` (a cursor: the
    /// last id of the previous page); and the cursor of the next page if there is one.
    pub fn list(
        &self,
        owner: &Owner,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Task>, Option<String>)> {
        let mut mine: Vec<Task> = {
            let table = self.table.lock();
            table
                .values()
                .filter(|s| s.owner == *owner)
                .map(|s| s.task.clone())
                .collect()
        };
        mine.sort_by_key(|t| (t.created_ms, t.id));
        let start = match after {
            None => 0,
            Some(cursor) => {
                let bad = || {
                    Error::invalid(
                        "cursor",
                        format!("{cursor:?} is not a cursor this server returned"),
                    )
                };
                let (created, id) = cursor.split_once('-').ok_or_else(bad)?;
                let key = (
                    created.parse::<u64>().map_err(|_| bad())?,
                    id.parse::<TaskId>().map_err(|_| bad())?,
                );
                mine.partition_point(|t| (t.created_ms, t.id) <= key)
            }
        };
        let page: Vec<Task> = mine.iter().skip(start).take(limit).cloned().collect();
        let next = (start + page.len() < mine.len())
            .then(|| page.last().map(|t| format!("{}-{}", t.created_ms, t.id)))
            .flatten();
        Ok((page, next))
    }

    /// Cancels `owner`'s task `id`: its work is told to stop and the task is Cancelled at
    /// once. Returns the task as it was before when it was already over (nothing changes).
    pub fn cancel(&self, owner: &Owner, id: &str) -> Result<std::result::Result<Task, Task>> {
        let id = parse(id)?;
        let mut table = self.table.lock();
        let slot = table
            .get_mut(&id)
            .filter(|s| s.owner == *owner)
            .ok_or_else(|| not_found(id))?;
        if slot.task.status.is_terminal() {
            return Ok(Err(slot.task.clone()));
        }
        slot.task.status = TaskStatus::Cancelled;
        slot.task.message = Some("cancelled by the client".into());
        slot.task.updated_ms = now_ms();
        slot.cancel.cancel();
        let rec = record(&slot.owner, &slot.task, None);
        self.store.put_task(id, Some(&rec), When::Now);
        slot.status.send_replace(TaskStatus::Cancelled);
        debug!(task = %id, "task cancelled");
        Ok(Ok(slot.task.clone()))
    }

    /// Removes the tasks whose time to live has run out and that are over; returns how many.
    pub fn sweep(&self) -> usize {
        let now = now_ms();
        let mut table = self.table.lock();
        let before = table.len();
        table.retain(|id, slot| {
            let t = &slot.task;
            let keep = !t.status.is_terminal() || t.created_ms.saturating_add(t.ttl_ms) > now;
            if !keep {
                self.store.put_task(*id, None, When::Lazy);
            }
            keep
        });
        before - table.len()
    }

    /// Tasks held (all principals).
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// True when no task is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweeps expired tasks every `every` while the table lives.
pub(crate) async fn sweep_loop(tasks: Weak<Tasks>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tasks) = tasks.upgrade() else { return };
        let purged = tasks.sweep();
        if purged > 0 {
            debug!(purged, "expired tasks purged");
        }
    }
}

fn parse(id: &str) -> Result<TaskId> {
    if let Some(e) = Error::wrong_node(id) {
        return Err(e);
    }
    id.parse()
        .map_err(|_| Error::TaskNotFound { id: id.to_owned() })
}

fn not_found(id: TaskId) -> Error {
    Error::TaskNotFound { id: id.to_string() }
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn view(id: TaskId, rec: &TaskRecord) -> Task {
    Task {
        id,
        op: rec.op.clone(),
        status: rec.status,
        message: rec.message.clone(),
        created_ms: rec.created_ms,
        updated_ms: rec.updated_ms,
        ttl_ms: rec.ttl_ms,
        poll_ms: rec.poll_ms,
        tool_error: rec.tool_error,
    }
}

fn record(owner: &Owner, task: &Task, outcome: Option<String>) -> TaskRecord {
    TaskRecord {
        id: task.id.to_string(),
        owner: owner.as_str().to_owned(),
        op: task.op.clone(),
        status: task.status,
        message: task.message.clone(),
        created_ms: task.created_ms,
        updated_ms: task.updated_ms,
        ttl_ms: task.ttl_ms,
        poll_ms: task.poll_ms,
        tool_error: task.tool_error,
        outcome,
    }
}
