//! The store: session records and driver blobs in sled, transcripts in per-session segment
//! files beside it (DESIGN §5). This is the only module that touches sled or those files.
//!
//! Data directory: `store/` (sled: trees `sessions` id → [`Record`], `blobs` id ‖ name →
//! bytes, `meta` schema version), `transcripts/<id>/*.seg` (each session's transcript,
//! `transcript`), `stablehand.lock`. sled holds few keys, each rewritten in place, so its
//! memory stays flat; transcripts, which grow with every call, live in files and are read
//! through the page cache. Every stored value and every transcript frame carries a checksum:
//! damage is reported and skipped, never decoded into garbage.
//!
//! Reads (`record`, `blob`, `scan_events`) touch the disk and block: call them off the
//! runtime's threads ([`Store::off_thread`]). They see pending ∪ in flight ∪ stored.
//!
//! Files: `mod.rs` the handle, pushes and reads; `open.rs` opening (lock, quarantine,
//! migration, restore); `writer.rs` the batching writer thread; `transcript/` the segment
//! files; `record.rs` the stored forms; `codec.rs` the envelope; `lock.rs` the data
//! directory lock.

pub mod codec;
pub(crate) mod files;
mod lock;
mod open;
pub mod record;
mod writer;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::error;

pub use codec::DecodeError;
pub use files::{AGENTS_DIR, SESSIONS_DIR};
pub use lock::LOCK_FILE;
pub use record::{
    AgentRecord, DebugRecord, Dir, Event, LiveHead, LiveRecord, Record, RecordHead, SpecHead,
    SpecRecord, StoredAudit, StoredBreakpoint, TaskRecord,
};
pub use writer::{Ack, Counters, When};

use crate::ids::{SessionId, TaskId};

/// Version of the layout; a store written by a newer layout is refused, not guessed at.
/// 1: transcripts in a sled tree; 2: transcripts in segment files.
pub const SCHEMA_VERSION: u32 = 2;

/// Name of the sled directory inside the data directory.
pub const STORE_DIR: &str = "store";

/// Why the store could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another server holds the data directory.
    #[error(
        "data dir {dir} is in use by another stablehand server (pid {holder}); stop it, or \
         give this one its own --data-dir (or --in-memory)"
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about its holder (a pid).
        holder: String,
    },
    /// No data directory is configured and none can be derived (no `HOME`).
    #[error("no data directory: set --data-dir (or XDG_DATA_HOME / HOME), or use --in-memory")]
    NoDataDir,
    /// A file operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The store was written by a newer schema.
    #[error("the store has schema version {found}; this build reads up to {SCHEMA_VERSION}. Use a newer stablehand or another --data-dir")]
    NewerSchema {
        /// The version found.
        found: u32,
    },
    /// sled reported an error.
    #[error("store: {0}")]
    Sled(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// A stored value that could not be used when the store was opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The tree.
    pub tree: &'static str,
    /// The key, as a session id when it is one, else hex.
    pub key: String,
    /// What was wrong.
    pub reason: String,
}

/// What happened when the store was opened, and its counters since.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StoreStats {
    /// Where the store lives (`None` for a temporary store).
    pub path: Option<PathBuf>,
    /// Records loaded at start.
    pub restored: usize,
    /// Damaged values skipped at start.
    pub skipped: Vec<Skipped>,
    /// Where a store that failed to open was moved.
    pub quarantined: Option<PathBuf>,
    /// Transcript events moved out of a schema-1 store at start.
    pub migrated_events: u64,
    /// Sessions with a stored record.
    pub records: u64,
    /// Stored bytes as the store accounts them.
    pub bytes: u64,
    /// Batches written.
    pub batches: u64,
    /// Record writes.
    pub records_written: u64,
    /// Transcript events written.
    pub events_written: u64,
    /// Write attempts that failed.
    pub failures: u64,
    /// Runs of failing writes, each ended by a success.
    pub failure_episodes: u64,
    /// True while writes fail (changes wait in memory and are retried).
    pub failing: bool,
    /// The error of the last failed write, while writes fail.
    pub last_error: Option<String>,
    /// Damaged transcript frames or segments met by reads (each is skipped and logged).
    pub damaged: u64,
}

/// The sled trees.
#[derive(Debug, Clone)]
struct Trees {
    db: sled::Db,
    sessions: sled::Tree,
    blobs: sled::Tree,
}

/// A handle to the open store; clones share it. The writer thread stops, after writing
/// everything pending, when the last clone is dropped or [`Store::close`] is called.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<writer::Exchange>,
    thread: Mutex<Option<JoinHandle<()>>>,
    opened: StoreStats,
    /// `<data dir>/agents`: agent sessions' own directories.
    agents: PathBuf,
    _lock: Option<lock::DirLock>,
    /// The directory of a temporary store, removed last.
    _temp: Option<open::TempDir>,
}

impl Store {
    /// Queues a session's record and new transcript events.
    pub fn put(&self, record: Record, events: Vec<Event>, when: When) {
        let id = record.spec.id;
        let mut st = self.inner.shared.state.lock();
        st.pending.records.insert(id, record);
        if !events.is_empty() {
            st.pending.events.entry(id).or_default().extend(events);
        }
        self.wake(&mut st, when);
    }

    /// Queues a driver blob (`None` deletes it).
    pub fn put_blob(&self, id: SessionId, name: &str, value: Option<Vec<u8>>, when: When) {
        let mut st = self.inner.shared.state.lock();
        st.pending
            .blobs
            .retain(|(i, n, _)| !(*i == id && n == name));
        st.pending.blobs.push((id, name.to_owned(), value));
        self.wake(&mut st, when);
    }

    /// Queues a task's record (`None` removes the task). A task's creation is pushed with
    /// [`When::Durable`], so its id is handed out only once a restart would find it.
    pub fn put_task(&self, id: TaskId, record: Option<&TaskRecord>, when: When) {
        let value = record.map(codec::seal_json);
        let mut st = self.inner.shared.state.lock();
        st.pending.tasks.retain(|(i, _)| *i != id);
        st.pending.tasks.push((id, value));
        self.wake(&mut st, when);
    }

    /// A task's record: pending, in flight or on disk. Blocks: call it off the runtime's
    /// threads.
    pub fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let queued = {
            let st = self.inner.shared.state.lock();
            let is = |(i, _): &&(TaskId, Option<Vec<u8>>)| *i == id;
            st.pending
                .tasks
                .iter()
                .rfind(is)
                .or_else(|| st.in_flight.as_ref().and_then(|b| b.tasks.iter().rfind(is)))
                .map(|(_, v)| v.clone())
        };
        let value = match queued {
            Some(v) => v,
            None => {
                let t = &self.inner.shared.tasks;
                t.read(id).map_err(|e| StoreError::Io {
                    path: t.root().to_owned(),
                    message: e.to_string(),
                })?
            }
        };
        value
            .map(|v| codec::open_json(&v))
            .transpose()
            .map_err(|e| StoreError::Sled(format!("task {id}: {e}")))
    }

    /// Every stored task (read at start). Damaged or unreadable ones are logged and left
    /// out. Blocks.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let t = &self.inner.shared.tasks;
        let all = t.all().map_err(|e| StoreError::Io {
            path: t.root().to_owned(),
            message: e.to_string(),
        })?;
        Ok(all
            .into_iter()
            .filter_map(|(id, read)| {
                let decoded = read
                    .map_err(|e| e.to_string())
                    .and_then(|v| codec::open_json::<TaskRecord>(&v).map_err(|e| e.to_string()));
                decoded
                    .map_err(|e| error!(task = %id, error = %e, "a stored task cannot be read; it is left out"))
                    .ok()
            })
            .collect())
    }

    /// The directory an agent session keeps its CLI's own files in (made when the session
    /// starts, removed when it is purged).
    pub fn agent_dir(&self, id: SessionId) -> PathBuf {
        self.inner.agents.join(id.0.to_string())
    }

    /// Queues the removal of everything stored about a session.
    pub fn purge(&self, id: SessionId) {
        let mut st = self.inner.shared.state.lock();
        st.pending.records.remove(&id);
        st.pending.events.remove(&id);
        st.pending.blobs.retain(|(i, _, _)| *i != id);
        st.pending.purges.push(id);
        self.wake(&mut st, When::Now);
    }

    /// Purges `candidates` (oldest first) until the stored bytes are within `cap`; resolves
    /// to the ones purged.
    pub fn shrink(
        &self,
        candidates: Vec<SessionId>,
        cap: u64,
    ) -> oneshot::Receiver<Vec<SessionId>> {
        let (done, rx) = oneshot::channel();
        let mut st = self.inner.shared.state.lock();
        st.shrinks.push(writer::Shrink {
            candidates,
            cap,
            done,
        });
        self.wake(&mut st, When::Now);
        rx
    }

    /// Resolves once everything queued so far is on disk (or its write failed).
    pub fn sync(&self) -> oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.inner.shared.state.lock();
        self.wake(&mut st, When::Durable(tx));
        rx
    }

    fn wake(&self, st: &mut writer::Queue, when: When) {
        match when {
            When::Lazy => return,
            When::Now => {}
            When::Durable(ack) => st.acks.push(ack),
        }
        st.urgent = true;
        self.inner.shared.wake.notify_one();
    }

    /// Writes everything pending, flushes, and stops the writer thread. Blocks until done.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Runs `f` (blocking reads) on tokio's blocking pool, so no runtime thread waits for
    /// the disk.
    pub async fn off_thread<T, F>(&self, f: F) -> T
    where
        F: FnOnce(&Store) -> T + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The stored record of a session (what is queued counts as stored). Blocks.
    pub fn record(&self, id: SessionId) -> Result<Option<Record>, StoreError> {
        {
            let st = self.inner.shared.state.lock();
            let queued = st.pending.records.get(&id).or_else(|| {
                st.in_flight
                    .as_ref()
                    .and_then(|batch| batch.records.get(&id))
            });
            if let Some(r) = queued {
                return Ok(Some(r.clone()));
            }
        }
        let shared = &self.inner.shared;
        let value = match shared.trees()?.sessions.get(record::session_key(id))? {
            Some(v) => v.to_vec(),
            None => match shared.files.read_record(id).map_err(|e| StoreError::Io {
                path: shared.files.root().join(id.0.to_string()),
                message: e.to_string(),
            })? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        codec::open_json(&value)
            .map(Some)
            .map_err(|e| StoreError::Sled(format!("record of session {id}: {e}")))
    }

    /// Visits a session's transcript events in order: those on disk, then those queued or
    /// being written. Damaged frames are skipped, logged and counted. Blocks.
    pub fn scan_events(
        &self,
        id: SessionId,
        mut visit: impl FnMut(&Event) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        // Memory first, then disk: an event written in between is seen twice, never missed,
        // and the second sighting is skipped by its sequence number.
        let queued: Vec<Event> = {
            let st = self.inner.shared.state.lock();
            let in_flight = st
                .in_flight
                .as_ref()
                .and_then(|b| b.events.get(&id))
                .into_iter()
                .flatten();
            in_flight
                .chain(st.pending.events.get(&id).into_iter().flatten())
                .cloned()
                .collect()
        };
        let shared = &self.inner.shared;
        let mut on_disk = OnDisk::default();
        let mut stopped = false;
        let damage = shared
            .files
            .scan(id, |e| {
                on_disk.saw(&e);
                let flow = visit(&e);
                stopped = flow.is_break();
                flow
            })
            .map_err(|e| StoreError::Io {
                path: shared.files.root().join(id.0.to_string()),
                message: e.to_string(),
            })?;
        if damage.any() {
            shared
                .counters
                .damaged
                .fetch_add(damage.frames + damage.segments, Ordering::Relaxed);
        }
        if !stopped {
            for e in queued.iter().filter_map(|e| on_disk.rest(e)) {
                if visit(&e).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// A session's transcript events in order (see [`Store::scan_events`]). Blocks.
    pub fn events(&self, id: SessionId) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        self.scan_events(id, |e| {
            out.push(e.clone());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// A driver blob. Blocks.
    pub fn blob(&self, id: SessionId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        {
            let st = self.inner.shared.state.lock();
            let is = |(i, n, _): &&(SessionId, String, Option<Vec<u8>>)| *i == id && n == name;
            let queued = st
                .pending
                .blobs
                .iter()
                .rfind(is)
                .or_else(|| st.in_flight.as_ref().and_then(|b| b.blobs.iter().rfind(is)));
            if let Some((_, _, v)) = queued {
                return Ok(v.clone());
            }
        }
        let trees = self.inner.shared.trees()?;
        let Some(value) = trees.blobs.get(record::blob_key(id, name))? else {
            return Ok(None);
        };
        codec::open(&value)
            .map(|p| Some(p.to_vec()))
            .map_err(|e| StoreError::Sled(format!("blob {name} of session {id}: {e}")))
    }

    /// Where a session's transcript ends on disk, for a resume after a crash. Asks the
    /// writer (which cuts a torn tail first), after everything queued so far is written.
    pub fn tail(&self, id: SessionId) -> oneshot::Receiver<Result<(u64, [u64; 2]), StoreError>> {
        let (done, rx) = oneshot::channel();
        let mut st = self.inner.shared.state.lock();
        st.tails.push((id, done));
        self.wake(&mut st, When::Now);
        rx
    }

    /// Stored bytes as the store accounts them (what `max_bytes` caps).
    pub fn bytes(&self) -> u64 {
        self.inner.shared.counters.bytes.load(Ordering::Relaxed)
    }

    /// What happened at open, and the counters since.
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.shared.counters;
        StoreStats {
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            records_written: c.records_written.load(Ordering::Relaxed),
            events_written: c.events_written.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            failure_episodes: c.failure_episodes.load(Ordering::Relaxed),
            failing: c.failing.load(Ordering::Relaxed),
            last_error: self.inner.shared.last_error.lock().clone(),
            damaged: c.damaged.load(Ordering::Relaxed),
            ..self.inner.opened.clone()
        }
    }
}

/// Test support: while alive, the writer parks with the next batch it takes in flight (taken
/// from the pending set, not yet written). Dropping it lets the writer go on.
#[doc(hidden)]
#[derive(Debug)]
pub struct WriteHold {
    shared: Arc<writer::Exchange>,
}

impl Drop for WriteHold {
    fn drop(&mut self) {
        self.shared.hold.lock().held = false;
        self.shared.hold_changed.notify_all();
    }
}

impl Store {
    /// Test support: holds the writer (see [`WriteHold`]).
    #[doc(hidden)]
    pub fn hold_writes(&self) -> WriteHold {
        self.inner.shared.hold.lock().held = true;
        WriteHold {
            shared: Arc::clone(&self.inner.shared),
        }
    }

    /// Test support: waits (up to `timeout`) until the writer is parked with a batch in
    /// flight; true if it is.
    #[doc(hidden)]
    pub fn wait_parked(&self, timeout: std::time::Duration) -> bool {
        let shared = &self.inner.shared;
        let deadline = std::time::Instant::now() + timeout;
        let mut hold = shared.hold.lock();
        while !hold.parked {
            if shared
                .hold_changed
                .wait_until(&mut hold, deadline)
                .timed_out()
            {
                return hold.parked;
            }
        }
        true
    }
}

impl Inner {
    fn close(&self) {
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        self.shared.hold.lock().held = false;
        self.shared.hold_changed.notify_all();
        if thread.join().is_err() {
            error!("the store writer thread panicked; the last batch may be lost");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
        // sled's files are closed before a temporary directory is removed.
        self.shared.trees.write().take();
    }
}

/// What a scan of the disk saw, to merge the events in memory with: the next sequence
/// number, and how many bytes of the last event are there. A large event is written as
/// several frames, so a scan that races the writer may see only its first ones.
#[derive(Debug, Default)]
struct OnDisk {
    next_seq: u64,
    last_bytes: usize,
}

impl OnDisk {
    fn saw(&mut self, e: &Event) {
        if e.seq + 1 == self.next_seq {
            self.last_bytes += e.data.len();
        } else if e.seq >= self.next_seq {
            (self.next_seq, self.last_bytes) = (e.seq + 1, e.data.len());
        }
    }

    /// What of an event in memory is not on disk: all of a newer one, the rest of a partly
    /// written one, nothing of an older one.
    fn rest<'e>(&self, e: &'e Event) -> Option<std::borrow::Cow<'e, Event>> {
        if e.seq >= self.next_seq {
            return Some(std::borrow::Cow::Borrowed(e));
        }
        if e.seq + 1 != self.next_seq || e.data.len() <= self.last_bytes {
            return None;
        }
        let skip = self.last_bytes;
        // Output continues at its stream offset; an input's pieces keep the input's offset,
        // as its frames do.
        let offset = match e.dir {
            Dir::Input => e.offset,
            Dir::Stdout | Dir::Stderr => e.offset + skip as u64,
        };
        Some(std::borrow::Cow::Owned(Event {
            seq: e.seq,
            t_ms: e.t_ms,
            dir: e.dir,
            offset,
            data: e.data[skip..].to_vec(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, offset: u64, data: &[u8]) -> Event {
        Event {
            seq,
            t_ms: 0,
            dir: Dir::Stdout,
            offset,
            data: data.to_vec(),
        }
    }

    #[test]
    fn the_rest_of_an_event_partly_on_disk_comes_from_memory() {
        let mut disk = OnDisk::default();
        // Event 0 whole, event 1 in two of its three frames.
        disk.saw(&event(0, 0, b"ab"));
        disk.saw(&event(1, 2, b"cd"));
        disk.saw(&event(1, 4, b"ef"));
        assert!(disk.rest(&event(0, 0, b"ab")).is_none());
        let whole = event(1, 2, b"cdefg");
        let rest = disk.rest(&whole).unwrap();
        assert_eq!((rest.offset, &rest.data[..]), (6, &b"g"[..]));
        assert!(disk.rest(&event(1, 2, b"cdef")).is_none());
        let next = event(2, 7, b"h");
        let newer = disk.rest(&next).unwrap();
        assert_eq!((newer.offset, &newer.data[..]), (7, &b"h"[..]));
    }
}
