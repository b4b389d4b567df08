//! The store: session records, transcripts and driver blobs in sled (DESIGN §5). This is the
//! only module that touches sled.
//!
//! Trees: `sessions` (id → [`Record`]), `transcripts` (id ‖ seq → [`Event`]), `blobs`
//! (id ‖ name → bytes, for driver state such as a REPL namespace) and `meta` (schema version).
//! Every value is sealed with a format byte and a CRC-32 ([`codec`]): a damaged value is
//! reported and skipped, never decoded into garbage.
//!
//! Files: `mod.rs` opening (lock, quarantine, restore) and reading; `writer.rs` the batching
//! writer thread; `record.rs` the stored forms; `codec.rs` the envelope; `lock.rs` the data
//! directory lock.

pub mod codec;
mod lock;
pub mod record;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use tracing::{error, info, warn};

pub use codec::DecodeError;
pub use lock::LOCK_FILE;
pub use record::{
    DebugRecord, Dir, Event, LiveHead, LiveRecord, Record, RecordHead, SpecHead, SpecRecord,
    StoredBreakpoint,
};
pub use writer::{Ack, Counters, When};

use crate::config::StoreConfig;
use crate::ids::SessionId;

/// Version of the tree layout; a store written by a newer layout is refused, not guessed at.
pub const SCHEMA_VERSION: u32 = 1;

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
    /// Batches that failed.
    pub failures: u64,
}

/// The sled trees.
#[derive(Debug, Clone)]
struct Trees {
    db: sled::Db,
    sessions: sled::Tree,
    transcripts: sled::Tree,
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
    trees: Trees,
    shared: Arc<writer::Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    opened: StoreStats,
    _lock: Option<lock::DirLock>,
}

impl Store {
    /// Opens (or creates) the store the config names and loads every record.
    ///
    /// A directory held by another server is refused at once. A store that fails to open
    /// (corruption) is moved aside to `<data_dir>/quarantine-<time>` and a fresh one is
    /// started. Damaged records are reported in [`StoreStats::skipped`] and left out.
    pub fn open(config: &StoreConfig) -> Result<(Store, Vec<RecordHead>), StoreError> {
        let started = std::time::Instant::now();
        let (trees, lock, path, quarantined) = if config.in_memory {
            let trees = open_trees(sled_config(config).temporary(true))?;
            (trees, None, None, None)
        } else {
            let dir = config.resolved_data_dir().ok_or(StoreError::NoDataDir)?;
            create_private_dir(&dir)?;
            let lock = lock::DirLock::acquire(&dir)?;
            let path = dir.join(STORE_DIR);
            let (trees, quarantined) = open_or_quarantine(config, &dir, &path)?;
            (trees, Some(lock), Some(path), quarantined)
        };
        let opened_ms = started.elapsed().as_millis() as u64;
        let (records, skipped, sizes) = load(&trees)?;
        info!(
            open_ms = opened_ms,
            load_ms = started.elapsed().as_millis() as u64 - opened_ms,
            path = %path.as_deref().map_or("(temporary)".into(), |p| p.display().to_string()),
            restored = records.len(),
            skipped = skipped.len(),
            "store opened"
        );
        let shared = Arc::new(writer::Shared {
            sizes: Mutex::new(sizes),
            ..writer::Shared::default()
        });
        let thread = writer::Thread {
            shared: Arc::clone(&shared),
            trees: trees.clone(),
            interval: Duration::from_millis(config.flush_interval_ms.max(1)),
            transcript_cap: config.transcript_cap_bytes,
        }
        .spawn()
        .map_err(|e| StoreError::Io {
            path: PathBuf::from("(writer thread)"),
            message: e.to_string(),
        })?;
        let opened = StoreStats {
            path,
            restored: records.len(),
            skipped,
            quarantined,
            ..StoreStats::default()
        };
        let inner = Inner {
            trees,
            shared,
            thread: Mutex::new(Some(thread)),
            opened,
            _lock: lock,
        };
        Ok((
            Store {
                inner: Arc::new(inner),
            },
            records,
        ))
    }

    /// Queues a session's record and new transcript events.
    pub fn put(&self, record: Record, events: Vec<Event>, when: When) {
        let id = record.spec.id;
        let mut st = self.inner.shared.state.lock();
        st.pending.records.insert(id, record);
        st.pending
            .events
            .extend(events.into_iter().map(|e| (id, e)));
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

    /// Queues the removal of everything stored about a session. Its bytes stop counting
    /// against the size cap at once.
    pub fn purge(&self, id: SessionId) {
        {
            let mut sizes = self.inner.shared.sizes.lock();
            sizes.remove(&id);
            self.inner.shared.recount(&sizes);
        }
        let mut st = self.inner.shared.state.lock();
        st.pending.records.remove(&id);
        st.pending.events.retain(|(i, _)| *i != id);
        st.pending.blobs.retain(|(i, _, _)| *i != id);
        st.pending.purges.push(id);
    }

    /// Resolves once everything queued so far is on disk.
    pub fn sync(&self) -> tokio::sync::oneshot::Receiver<Result<(), StoreError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut st = self.inner.shared.state.lock();
        self.wake(&mut st, When::Durable(tx));
        rx
    }

    fn wake(&self, st: &mut writer::State, when: When) {
        match when {
            When::Lazy => return,
            When::Now => {}
            When::Durable(ack) => st.pending.acks.push(ack),
        }
        st.pending.urgent = true;
        self.inner.shared.wake.notify_one();
    }

    /// Writes everything pending, flushes, and stops the writer thread. Blocks until done.
    pub fn close(&self) {
        self.inner.close();
    }

    /// The stored record of a session (what is queued counts as stored).
    pub fn record(&self, id: SessionId) -> Result<Option<Record>, StoreError> {
        if let Some(r) = self.inner.shared.state.lock().pending.records.get(&id) {
            return Ok(Some(r.clone()));
        }
        let Some(value) = self.inner.trees.sessions.get(record::session_key(id))? else {
            return Ok(None);
        };
        codec::open_json(&value)
            .map(Some)
            .map_err(|e| StoreError::Sled(format!("record of session {id}: {e}")))
    }

    /// A session's transcript events in order (queued ones included). Damaged events are
    /// left out and logged.
    pub fn events(&self, id: SessionId) -> Result<Vec<Event>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .inner
            .trees
            .transcripts
            .scan_prefix(record::session_key(id))
        {
            let (k, v) = kv?;
            let seq = record::seq_of(&k).unwrap_or(0);
            match Event::decode(seq, &v) {
                Ok(e) => out.push(e),
                Err(e) => {
                    warn!(session = %id, seq, error = %e, "skipping a damaged transcript event")
                }
            }
        }
        let st = self.inner.shared.state.lock();
        out.extend(
            st.pending
                .events
                .iter()
                .filter(|(i, _)| *i == id)
                .map(|(_, e)| e.clone()),
        );
        Ok(out)
    }

    /// A driver blob.
    pub fn blob(&self, id: SessionId, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        {
            let st = self.inner.shared.state.lock();
            if let Some((_, _, v)) = st
                .pending
                .blobs
                .iter()
                .find(|(i, n, _)| *i == id && n == name)
            {
                return Ok(v.clone());
            }
        }
        let Some(value) = self.inner.trees.blobs.get(record::blob_key(id, name))? else {
            return Ok(None);
        };
        codec::open(&value)
            .map(|p| Some(p.to_vec()))
            .map_err(|e| StoreError::Sled(format!("blob {name} of session {id}: {e}")))
    }

    /// Stored bytes as the store accounts them (what `max_bytes` caps).
    pub fn bytes(&self) -> u64 {
        self.inner.shared.counters.bytes.load(Ordering::Relaxed)
    }

    /// Stored bytes of one session.
    pub fn session_bytes(&self, id: SessionId) -> u64 {
        self.inner
            .shared
            .sizes
            .lock()
            .get(&id)
            .map_or(0, |s| s.total())
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
            ..self.inner.opened.clone()
        }
    }
}

impl Inner {
    fn close(&self) {
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        if thread.join().is_err() {
            error!("the store writer thread panicked; the last batch may be lost");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

fn sled_config(config: &StoreConfig) -> sled::Config {
    sled::Config::new()
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(None)
        .mode(sled::Mode::HighThroughput)
}

fn open_trees(config: sled::Config) -> Result<Trees, StoreError> {
    // sled may panic on some kinds of damage instead of returning an error.
    let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
        .map_err(|_| StoreError::Sled("sled panicked while opening the store".into()))??;
    let meta = db.open_tree("meta")?;
    match meta.get("schema")? {
        None => {
            meta.insert("schema", codec::seal(&SCHEMA_VERSION.to_le_bytes()))?;
        }
        Some(v) => {
            let payload = codec::open(&v).map_err(|e| StoreError::Sled(format!("meta: {e}")))?;
            let found = u32::from_le_bytes(
                payload
                    .try_into()
                    .map_err(|_| StoreError::Sled("meta: schema version is not 4 bytes".into()))?,
            );
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema { found });
            }
        }
    }
    Ok(Trees {
        sessions: db.open_tree("sessions")?,
        transcripts: db.open_tree("transcripts")?,
        blobs: db.open_tree("blobs")?,
        db,
    })
}

/// Opens the store at `path`; if that fails for any reason other than a newer schema, moves
/// it aside and starts a fresh one.
fn open_or_quarantine(
    config: &StoreConfig,
    dir: &Path,
    path: &Path,
) -> Result<(Trees, Option<PathBuf>), StoreError> {
    // sled's own file lock: held by a store of this process that is still closing. That is
    // not damage — wait for it (bounded) rather than quarantine a healthy store.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut opened = open_trees(sled_config(config).path(path));
    while matches!(&opened, Err(StoreError::Sled(m)) if m.contains("could not acquire lock")) {
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Locked {
                dir: dir.to_owned(),
                holder: format!("{} (sled's lock is still held)", std::process::id()),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
        opened = open_trees(sled_config(config).path(path));
    }
    match opened {
        Ok(trees) => Ok((trees, None)),
        Err(e @ StoreError::NewerSchema { .. }) => Err(e),
        Err(e) => {
            let aside = lock::quarantine_dir(dir);
            std::fs::rename(path, &aside).map_err(|re| StoreError::Io {
                path: path.to_owned(),
                message: format!(
                    "the store failed to open ({e}) and could not be moved aside: {re}"
                ),
            })?;
            error!(
                error = %e,
                quarantined = %aside.display(),
                "THE STORE FAILED TO OPEN AND WAS MOVED ASIDE; starting on a fresh, empty store. \
                 Sessions recorded before are in the quarantined copy"
            );
            let trees = open_trees(sled_config(config).path(path))?;
            Ok((trees, Some(aside)))
        }
    }
}

type Loaded = (
    Vec<RecordHead>,
    Vec<Skipped>,
    HashMap<SessionId, writer::Sizes>,
);

/// Loads the head of every record, decoding on every core; damaged ones are reported and
/// skipped.
fn load(trees: &Trees) -> Result<Loaded, StoreError> {
    let raw = trees.sessions.iter().collect::<Result<Vec<_>, _>>()?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(raw.len() / 4096 + 1);
    let chunk = raw.len().div_ceil(threads).max(1);
    let decoded: Vec<Vec<Result<RecordHead, Skipped>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = raw
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|(k, v)| decode_head(k, v)).collect()))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("decoding does not panic"))
            .collect()
    });
    let mut records = Vec::with_capacity(raw.len());
    let mut skipped = Vec::new();
    let mut sizes = HashMap::with_capacity(raw.len());
    for (outcome, (_, v)) in decoded.into_iter().flatten().zip(&raw) {
        match outcome {
            Ok(r) => {
                sizes.insert(
                    r.spec.id,
                    writer::Sizes {
                        record: v.len() as u64,
                        transcript: r.live.transcript_bytes,
                        blobs: 0,
                    },
                );
                records.push(r);
            }
            Err(s) => {
                error!(tree = s.tree, key = %s.key, reason = %s.reason, "skipping a damaged session record");
                skipped.push(s);
            }
        }
    }
    Ok((records, skipped, sizes))
}

fn decode_head(k: &[u8], v: &[u8]) -> Result<RecordHead, Skipped> {
    let key = match <[u8; 16]>::try_from(k) {
        Ok(b) => uuid::Uuid::from_bytes(b).to_string(),
        Err(_) => k.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let skip = |reason: String| Skipped {
        tree: "sessions",
        key: key.clone(),
        reason,
    };
    match codec::open_json::<RecordHead>(v) {
        Ok(r) if r.spec.id.0.as_bytes() == k => Ok(r),
        Ok(r) => Err(skip(format!(
            "the record names another session ({})",
            r.spec.id
        ))),
        Err(e) => Err(skip(e.to_string())),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Io {
            path: dir.to_owned(),
            message: format!("cannot create the data directory: {e}"),
        })
}
