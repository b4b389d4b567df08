//! The writer thread: changed records, new transcript events and blobs wait in a pending set
//! and are written as one batch per `flush_interval_ms`, or at once when a push is urgent
//! (lifecycle events) or durable (a caller waits for the flush). Pushing never touches the
//! disk and never wakes the thread unless the push is urgent, so the hot path pays for a
//! short lock only.
//!
//! A batch being written stays visible to readers (`in_flight`) until it is on disk, so a
//! reader sees pending ∪ in flight ∪ stored. A batch that fails is not dropped: it goes back
//! in front of the pending set and is retried with backoff, while sessions keep working;
//! the failure is logged once per episode and counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::files::tasks::TaskFiles;
use super::files::{Log, SessionFiles};
use super::record::{self, Event, Record};
use super::{codec, StoreError, Trees};
use crate::ids::{SessionId, TaskId};

/// A waiter for the flush that makes its push durable.
pub type Ack = oneshot::Sender<Result<(), StoreError>>;

/// How soon a push must reach the disk.
#[derive(Debug)]
pub enum When {
    /// With the next periodic batch.
    Lazy,
    /// Now (lifecycle events), without waiting.
    Now,
    /// Now, and `Ack` is told once it is flushed.
    Durable(Ack),
}

/// Changes not yet on disk.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub records: HashMap<SessionId, Record>,
    /// Each session's new events, in order.
    pub events: HashMap<SessionId, Vec<Event>>,
    /// Blob writes in order (`None` deletes).
    pub blobs: Vec<(SessionId, String, Option<Vec<u8>>)>,
    pub purges: Vec<SessionId>,
    /// Task records sealed for writing, in order (`None` removes the task).
    pub tasks: Vec<(TaskId, Option<Vec<u8>>)>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.events.is_empty()
            && self.blobs.is_empty()
            && self.purges.is_empty()
            && self.tasks.is_empty()
    }

    /// Puts an older batch that failed back in front of these (newer) changes.
    fn put_back(&mut self, older: Changes) {
        for (id, rec) in older.records {
            if !self.purges.contains(&id) {
                self.records.entry(id).or_insert(rec);
            }
        }
        for (id, mut events) in older.events {
            if self.purges.contains(&id) {
                continue;
            }
            let newer = self.events.remove(&id).unwrap_or_default();
            events.extend(newer);
            self.events.insert(id, events);
        }
        let newer_blobs = std::mem::take(&mut self.blobs);
        let kept: Vec<_> = older
            .blobs
            .into_iter()
            .filter(|(id, name, _)| {
                !self.purges.contains(id)
                    && !newer_blobs.iter().any(|(i, n, _)| i == id && n == name)
            })
            .collect();
        self.blobs = kept.into_iter().chain(newer_blobs).collect();
        let mut purges = older.purges;
        purges.append(&mut self.purges);
        self.purges = purges;
        let newer_tasks = std::mem::take(&mut self.tasks);
        let mut tasks: Vec<_> = older
            .tasks
            .into_iter()
            .filter(|(id, _)| !newer_tasks.iter().any(|(i, _)| i == id))
            .collect();
        tasks.extend(newer_tasks);
        self.tasks = tasks;
    }

    /// Drops a session's oldest pending events beyond `cap` bytes (they would be trimmed
    /// from its transcript anyway): what bounds memory while the disk refuses writes.
    fn cap_events(&mut self, id: SessionId, cap: u64) {
        let Some(events) = self.events.get_mut(&id) else {
            return;
        };
        let mut held: u64 = events.iter().map(|e| e.data.len() as u64).sum();
        let mut drop = 0;
        while held > cap && drop < events.len() {
            held -= events[drop].data.len() as u64;
            drop += 1;
        }
        events.drain(..drop);
    }
}

/// The answer to a tail request: one past the last sequence number and stream bytes on disk.
pub(super) type TailReply = oneshot::Sender<Result<(u64, [u64; 2]), StoreError>>;

/// A request to purge the oldest ended sessions until the store is within its cap.
#[derive(Debug)]
pub(super) struct Shrink {
    /// Candidates, oldest first.
    pub candidates: Vec<SessionId>,
    pub cap: u64,
    pub done: oneshot::Sender<Vec<SessionId>>,
}

/// What waits for the writer: changes, acknowledgements, shrink and tail requests.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pub pending: Changes,
    /// The batch being written now (readers look here too).
    pub in_flight: Option<Arc<Changes>>,
    pub acks: Vec<Ack>,
    pub shrinks: Vec<Shrink>,
    /// Requests for where a session's transcript ends on disk.
    pub tails: Vec<(SessionId, TailReply)>,
    pub urgent: bool,
    pub stop: bool,
}

/// Counters readers may look at without asking the thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Batches written.
    pub batches: AtomicU64,
    /// Record writes (one per changed session per batch).
    pub records_written: AtomicU64,
    /// Transcript events written.
    pub events_written: AtomicU64,
    /// Stored bytes (records, transcripts, blobs) as the store accounts them.
    pub bytes: AtomicU64,
    /// Sessions with a stored record.
    pub records: AtomicU64,
    /// Batches that failed (each attempt counts).
    pub failures: AtomicU64,
    /// Episodes of failing writes (a run of failures ended by a success).
    pub failure_episodes: AtomicU64,
    /// True while writes fail.
    pub failing: AtomicBool,
    /// Damaged transcript frames or segments met by reads.
    pub damaged: AtomicU64,
}

/// What the pushers, the readers and the writer thread share: the queue, its wake-up, the
/// counters, the sled trees and the session files.
#[derive(Debug)]
pub(super) struct Exchange {
    pub state: Mutex<Queue>,
    pub wake: Condvar,
    pub counters: Counters,
    /// The sled trees; `None` while the writer reopens sled after an I/O error.
    pub trees: RwLock<Option<Arc<Trees>>>,
    pub files: SessionFiles,
    pub tasks: TaskFiles,
    /// The last write error, while writes fail.
    pub last_error: Mutex<Option<String>>,
    /// Transcript bytes kept per session (bounds pending events while writes fail).
    pub cap: u64,
    /// Test support: the writer parks with a batch in flight while this is held.
    pub hold: Mutex<Hold>,
    pub hold_changed: Condvar,
}

/// Test support state: held by a test, parked by the writer.
#[derive(Debug, Default)]
pub(super) struct Hold {
    pub held: bool,
    pub parked: bool,
}

impl Exchange {
    /// The current trees, or an error while they are being reopened.
    pub(super) fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.trees
            .read()
            .clone()
            .ok_or_else(|| StoreError::Sled("the store is reopening after a write error".into()))
    }
}

/// The thread's own state.
pub(super) struct Thread {
    pub shared: Arc<Exchange>,
    pub interval: Duration,
    /// Opens sled again after it reported an I/O error (sled refuses every later write).
    pub reopen: Box<dyn Fn() -> Result<Trees, StoreError> + Send>,
    /// The transcript segments of the sessions being written to.
    active: HashMap<SessionId, Log>,
}

/// What the thread takes from the queue for one round.
struct Batch {
    changes: Arc<Changes>,
    acks: Vec<Ack>,
    shrinks: Vec<Shrink>,
    tails: Vec<(SessionId, TailReply)>,
    stop: bool,
}

/// A record sealed for writing: its session, whether it is final, its bytes.
type Sealed = (SessionId, bool, Vec<u8>);

/// First and longest pause before retrying a failed batch.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Thread {
    pub(super) fn new(
        shared: Arc<Exchange>,
        interval: Duration,
        reopen: Box<dyn Fn() -> Result<Trees, StoreError> + Send>,
    ) -> Self {
        Self {
            shared,
            interval,
            reopen,
            active: HashMap::new(),
        }
    }

    pub(super) fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("stablehand-store".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + self.interval;
        let mut retry: Option<(Instant, Duration)> = None;
        loop {
            let Batch {
                changes,
                acks,
                shrinks,
                tails,
                stop,
            } = self.next_batch(next_tick, retry);
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.interval;
            }
            if !changes.is_empty() {
                self.park_while_held();
            }
            let outcome = if changes.is_empty() {
                Ok(())
            } else {
                self.apply(&changes)
            };
            for (id, reply) in tails {
                let _ = reply.send(self.tail(id));
            }
            match outcome {
                Ok(()) => self.written(retry.take().is_some(), acks, shrinks),
                Err(e) => {
                    retry = Some(self.not_written(&e, retry, changes, acks, shrinks));
                    if stop {
                        error!(error = %e, "the store is stopping with changes it could not write");
                        return;
                    }
                }
            }
            if stop {
                let st = self.shared.state.lock();
                if st.pending.is_empty() && st.acks.is_empty() {
                    debug!("store writer stopped");
                    return;
                }
            }
        }
    }

    /// Waits until a batch is due (the tick, an urgent push, a retry or the stop), then takes
    /// the pending changes, in flight from now on, and the requests waiting with them.
    fn next_batch(&self, next_tick: Instant, retry: Option<(Instant, Duration)>) -> Batch {
        let mut st = self.shared.state.lock();
        loop {
            let now = Instant::now();
            let due = match retry {
                Some((at, _)) => at,
                None if st.urgent => now,
                None => next_tick,
            };
            if st.stop || now >= due {
                break;
            }
            self.shared.wake.wait_for(&mut st, due - now);
        }
        st.urgent = false;
        let changes = Arc::new(std::mem::take(&mut st.pending));
        st.in_flight = Some(Arc::clone(&changes));
        Batch {
            changes,
            acks: std::mem::take(&mut st.acks),
            shrinks: std::mem::take(&mut st.shrinks),
            tails: std::mem::take(&mut st.tails),
            stop: st.stop,
        }
    }

    /// After a batch is on disk: it leaves the in-flight view, a failure episode ends, the
    /// waiters are told and the shrinks run.
    fn written(&mut self, was_failing: bool, acks: Vec<Ack>, shrinks: Vec<Shrink>) {
        self.shared.state.lock().in_flight = None;
        if was_failing {
            self.recovered();
        }
        for ack in acks {
            let _ = ack.send(Ok(()));
        }
        for s in shrinks {
            self.shrink(s);
        }
    }

    /// After a batch failed: records the failure, puts the batch (and its shrinks) back in
    /// front of the pending changes, tells the waiters; returns when and after which pause
    /// to retry.
    fn not_written(
        &mut self,
        e: &StoreError,
        retry: Option<(Instant, Duration)>,
        changes: Arc<Changes>,
        acks: Vec<Ack>,
        shrinks: Vec<Shrink>,
    ) -> (Instant, Duration) {
        let pause = retry.map_or(RETRY_FIRST, |(_, p)| (p * 2).min(RETRY_MAX));
        self.failed(e, retry.is_none(), pause);
        let next = (Instant::now() + pause, pause);
        {
            let mut st = self.shared.state.lock();
            st.in_flight = None;
            let changes = Arc::try_unwrap(changes).unwrap_or_else(|c| clone(&c));
            st.pending.put_back(changes);
            let ids: Vec<SessionId> = st.pending.events.keys().copied().collect();
            for id in ids {
                st.pending.cap_events(id, self.shared.cap);
            }
            st.shrinks.extend(shrinks);
        }
        for ack in acks {
            let _ = ack.send(Err(e.clone()));
        }
        next
    }

    /// Test support: waits, with the batch in flight, while a test holds the writer.
    fn park_while_held(&self) {
        let mut hold = self.shared.hold.lock();
        if !hold.held {
            return;
        }
        hold.parked = true;
        self.shared.hold_changed.notify_all();
        while hold.held {
            self.shared.hold_changed.wait(&mut hold);
        }
        hold.parked = false;
    }

    fn failed(&mut self, e: &StoreError, first: bool, pause: Duration) {
        let c = &self.shared.counters;
        c.failures.fetch_add(1, Ordering::Relaxed);
        *self.shared.last_error.lock() = Some(e.to_string());
        if first {
            c.failing.store(true, Ordering::Relaxed);
            c.failure_episodes.fetch_add(1, Ordering::Relaxed);
            error!(
                error = %e,
                "writing to the store failed; changes are kept in memory and retried \
                 (sessions keep working; durable calls report the error)"
            );
        } else {
            debug!(error = %e, retry_in_ms = pause.as_millis() as u64, "store write failed again");
        }
        // Forget what the thread believed about files and sizes: it is read again from disk.
        self.active.clear();
        if matches!(e, StoreError::Sled(_)) {
            self.reopen_sled();
        }
    }

    fn recovered(&self) {
        let c = &self.shared.counters;
        c.failing.store(false, Ordering::Relaxed);
        *self.shared.last_error.lock() = None;
        info!("writing to the store works again; the changes kept meanwhile are on disk");
    }

    /// sled keeps an I/O error and refuses every later write: drop it and open it again.
    fn reopen_sled(&mut self) {
        let old = self.shared.trees.write().take();
        if let Some(mut old) = old {
            // Readers hold the trees only for one read.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match Arc::try_unwrap(old) {
                    Ok(trees) => {
                        drop(trees);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => {
                        warn!("readers hold the store; reopening it anyway");
                        break;
                    }
                }
            }
        }
        match (self.reopen)() {
            Ok(trees) => {
                *self.shared.trees.write() = Some(Arc::new(trees));
                info!("store reopened after a write error");
            }
            Err(e) => warn!(error = %e, "reopening the store failed; trying again later"),
        }
    }

    /// The trees, reopening them first if a previous attempt failed to.
    fn trees(&mut self) -> Result<Arc<Trees>, StoreError> {
        if self.shared.trees.read().is_none() {
            self.reopen_sled();
        }
        self.shared.trees()
    }

    /// The transcript segments of a session, read from disk when not tracked yet (for a new
    /// session, one failed directory lookup).
    fn log(&mut self, id: SessionId) -> Result<&mut Log, StoreError> {
        if !self.active.contains_key(&id) {
            let t = &self.shared.files;
            let log = t.open_log(id).map_err(|e| io_error(t.root(), e))?;
            self.active.insert(id, log);
        }
        Ok(self.active.get_mut(&id).expect("inserted above"))
    }

    /// Writes one batch: transcripts and staged final records first, made durable with one
    /// sync; then the final records take their place; then blobs and records in sled and
    /// sled's flush. A record in sled never names transcript bytes that are not on disk, and a
    /// final record's sled key goes only once its file is durable.
    fn apply(&mut self, p: &Changes) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let events = self.append_events(p)?;
        let (records, settled) = self.stage_records(p)?;
        // Each task file is synced on its own: a task's creation is waited for, and a syncfs
        // would wait for every other program's writes on the file system too.
        self.stage_tasks(p)?;
        if !p.events.is_empty() || records.iter().any(|(_, terminal, _)| *terminal) {
            let t = &self.shared.files;
            t.sync().map_err(|e| io_error(t.root(), e))?;
        }
        self.commit_tasks(p)?;
        self.put_records(&trees, records)?;
        self.put_blobs(&trees, p)?;
        for id in &p.purges {
            self.purge(&trees, *id)?;
        }
        trees.db.flush()?;
        // A settled session writes little more: stop tracking it (its bytes stay counted).
        for id in settled {
            self.active.remove(&id);
        }
        let c = &self.shared.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.events_written.fetch_add(events, Ordering::Relaxed);
        Ok(())
    }

    /// Appends the batch's events to their transcripts (trimmed to the cap); returns how
    /// many were written.
    fn append_events(&mut self, p: &Changes) -> Result<u64, StoreError> {
        let shared = Arc::clone(&self.shared);
        let c = &shared.counters;
        let t = &shared.files;
        let io = |e| io_error(t.root(), e);
        let mut events = 0;
        for (id, evs) in &p.events {
            let log = self.log(*id)?;
            let added = t.append(log, evs).map_err(io)?;
            let freed = t.trim(log).map_err(io)?;
            add(&c.bytes, added, freed);
            events += evs.len() as u64;
        }
        Ok(events)
    }

    /// Seals the batch's records with their transcripts' sizes and stages the final ones as
    /// files (not yet synced); returns the sealed records and the sessions that settle.
    fn stage_records(&mut self, p: &Changes) -> Result<(Vec<Sealed>, Vec<SessionId>), StoreError> {
        let shared = Arc::clone(&self.shared);
        let t = &shared.files;
        let io = |e| io_error(t.root(), e);
        let mut records = Vec::with_capacity(p.records.len());
        let mut settled = Vec::new();
        for (id, rec) in &p.records {
            let mut rec = rec.clone();
            rec.live.transcript_bytes = self.log(*id)?.bytes();
            let value = codec::seal_json(&rec);
            let terminal = rec.live.state.is_terminal();
            if terminal {
                // Final: a file written once, and one key fewer in sled.
                t.stage_record(*id, &value).map_err(io)?;
            }
            if terminal || rec.live.state == crate::model::state::StateKind::Suspended {
                settled.push(*id);
            }
            records.push((*id, terminal, value));
        }
        Ok((records, settled))
    }

    /// Stages the batch's task records (the newest of each task), each synced.
    fn stage_tasks(&self, p: &Changes) -> Result<(), StoreError> {
        let t = &self.shared.tasks;
        for (i, (id, value)) in p.tasks.iter().enumerate() {
            let newer = p.tasks[i + 1..].iter().any(|(n, _)| n == id);
            if let (Some(value), false) = (value, newer) {
                t.stage(*id, value).map_err(|e| io_error(t.root(), e))?;
            }
        }
        Ok(())
    }

    /// Puts the staged (and synced) task records in place and removes expired tasks.
    fn commit_tasks(&self, p: &Changes) -> Result<(), StoreError> {
        let t = &self.shared.tasks;
        for (i, (id, value)) in p.tasks.iter().enumerate() {
            if p.tasks[i + 1..].iter().any(|(n, _)| n == id) {
                continue;
            }
            match value {
                Some(_) => t.commit(*id),
                None => t.remove(*id),
            }
            .map_err(|e| io_error(t.root(), e))?;
        }
        Ok(())
    }

    /// Puts the sealed records in place: a final one's staged file replaces its sled key,
    /// any other goes into sled.
    fn put_records(&self, trees: &Trees, records: Vec<Sealed>) -> Result<(), StoreError> {
        let c = &self.shared.counters;
        let t = &self.shared.files;
        let io = |e| io_error(t.root(), e);
        for (id, terminal, value) in records {
            let key = record::session_key(id);
            let old = if terminal {
                let old_file = t.record_bytes(id).map_err(io)?;
                t.commit_record(id).map_err(io)?;
                trees
                    .sessions
                    .remove(key)?
                    .map_or(old_file, |v| v.len() as u64)
            } else {
                trees
                    .sessions
                    .insert(key, value.as_slice())?
                    .map_or(0, |v| v.len() as u64)
            };
            if old == 0 {
                c.records.fetch_add(1, Ordering::Relaxed);
            }
            add(&c.bytes, value.len() as u64, old);
            c.records_written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes and deletes the batch's blobs in one sled batch.
    fn put_blobs(&self, trees: &Trees, p: &Changes) -> Result<(), StoreError> {
        let c = &self.shared.counters;
        let mut blobs = sled::Batch::default();
        for (id, name, value) in &p.blobs {
            let key = record::blob_key(*id, name);
            let old = trees.blobs.get(&key)?.map_or(0, |v| v.len() as u64);
            let new = value
                .as_ref()
                .map_or(0, |v| codec::SEAL_OVERHEAD + v.len() as u64);
            add(&c.bytes, new, old);
            match value {
                Some(v) => blobs.insert(key, codec::seal(v)),
                None => blobs.remove(key),
            }
        }
        trees.blobs.apply_batch(blobs)?;
        Ok(())
    }

    /// Removes everything stored about a session.
    fn purge(&mut self, trees: &Trees, id: SessionId) -> Result<(), StoreError> {
        let c = &self.shared.counters;
        let t = &self.shared.files;
        let io = |e| io_error(t.root(), e);
        let final_record = t.record_bytes(id).map_err(io)? > 0;
        let mut freed = t.purge(id).map_err(io)?;
        let in_sled = trees.sessions.remove(record::session_key(id))?;
        if let Some(old) = &in_sled {
            freed += old.len() as u64;
        }
        if final_record || in_sled.is_some() {
            c.records
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .ok();
        }
        let mut batch = sled::Batch::default();
        for kv in trees.blobs.scan_prefix(record::session_key(id)) {
            let (k, v) = kv?;
            freed += v.len() as u64;
            batch.remove(k);
        }
        trees.blobs.apply_batch(batch)?;
        self.active.remove(&id);
        add(&c.bytes, 0, freed);
        Ok(())
    }

    /// Where a session's transcript ends on disk (a torn tail is cut first).
    fn tail(&mut self, id: SessionId) -> Result<(u64, [u64; 2]), StoreError> {
        self.active.remove(&id);
        let t = &self.shared.files;
        let tail = t.tail(id).map_err(|e| io_error(t.root(), e))?;
        Ok((tail.next_seq, tail.output_end))
    }

    /// Purges candidates, oldest first, until the stored bytes are within the cap.
    fn shrink(&mut self, s: Shrink) {
        let mut purged = Vec::new();
        let trees = match self.trees() {
            Ok(t) => t,
            Err(_) => {
                let _ = s.done.send(purged);
                return;
            }
        };
        for id in s.candidates {
            if self.shared.counters.bytes.load(Ordering::Relaxed) <= s.cap {
                break;
            }
            match self.purge(&trees, id) {
                Ok(()) => purged.push(id),
                Err(e) => {
                    warn!(session = %id, error = %e, "purging for the size cap failed");
                    break;
                }
            }
        }
        if !purged.is_empty() {
            if let Err(e) = trees.db.flush() {
                warn!(error = %e, "flushing after purges failed");
            }
        }
        let _ = s.done.send(purged);
    }
}

/// `counter += plus - minus`, never below zero.
fn add(counter: &AtomicU64, plus: u64, minus: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some((n + plus).saturating_sub(minus))
    });
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// A copy of changes still shared with a reader.
fn clone(c: &Changes) -> Changes {
    Changes {
        records: c.records.clone(),
        events: c.events.clone(),
        blobs: c.blobs.clone(),
        purges: c.purges.clone(),
        tasks: c.tasks.clone(),
    }
}
