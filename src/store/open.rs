//! Opening the store: the data directory and its lock (or a temporary directory), sled with
//! its schema check (a store that fails to open is moved aside), the move of a schema-1
//! store's transcripts out of sled into segment files, and the restore of every record head
//! (from sled, and from the final record files of ended sessions).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{error, info, warn};

use super::files::tasks::{TaskFiles, TASKS_DIR};
use super::files::{SessionFiles, AGENTS_DIR, SESSIONS_DIR};
use super::record::{self, Event, Record, RecordHead};
use super::{
    codec, lock, writer, Inner, Skipped, Store, StoreError, StoreStats, Trees, SCHEMA_VERSION,
    STORE_DIR,
};
use crate::config::StoreConfig;
use crate::ids::SessionId;

/// A temporary data directory (`--in-memory`), removed when the store closes. Directories
/// left by killed servers are removed by the next one.
#[derive(Debug)]
pub(super) struct TempDir(PathBuf);

const TEMP_PREFIX: &str = "stablehand-mem-";

impl TempDir {
    fn new() -> Result<TempDir, StoreError> {
        let base = std::env::temp_dir();
        remove_stale_temp_dirs(&base);
        let mut rand = [0u8; 8];
        getrandom::fill(&mut rand).map_err(|e| StoreError::Io {
            path: base.clone(),
            message: format!("no randomness for a temporary directory name: {e}"),
        })?;
        let name = format!(
            "{TEMP_PREFIX}{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(rand)
        );
        let dir = base.join(name);
        create_private_dir(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            warn!(dir = %self.0.display(), error = %e, "cannot remove the temporary store");
        }
    }
}

fn remove_stale_temp_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::process::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Store {
    /// Opens (or creates) the store the config names and loads every record's head.
    ///
    /// A directory held by another server is refused at once. A store that fails to open
    /// (corruption) is moved aside to `<data_dir>/quarantine-<time>/` with its transcripts,
    /// and a fresh one is started. A schema-1 store's transcripts are moved into segment
    /// files. Damaged records are reported in [`StoreStats::skipped`] and left out.
    pub fn open(config: &StoreConfig) -> Result<(Store, Vec<RecordHead>), StoreError> {
        let started = Instant::now();
        let (dir, lock, temp) = data_dir(config)?;
        let sled_path = dir.join(STORE_DIR);
        let files = SessionFiles::new(
            dir.join(SESSIONS_DIR),
            config.segment_bytes,
            config.transcript_cap_bytes,
        )
        .with_agents(dir.join(AGENTS_DIR));
        let tasks = TaskFiles::new(dir.join(TASKS_DIR));
        let (trees, schema, quarantined) = open_or_quarantine(config, &dir, &sled_path)?;
        files.create_root().map_err(|e| io_error(files.root(), e))?;
        tasks.create_root().map_err(|e| io_error(tasks.root(), e))?;
        let migrated_events = if schema < SCHEMA_VERSION {
            migrate_v1(&trees, &files)?
        } else {
            0
        };
        let opened_ms = started.elapsed().as_millis() as u64;
        let (records, skipped, bytes) = load(&trees, &files)?;
        info!(
            open_ms = opened_ms,
            load_ms = started.elapsed().as_millis() as u64 - opened_ms,
            path = %if temp.is_some() { "(temporary)".into() } else { dir.display().to_string() },
            restored = records.len(),
            skipped = skipped.len(),
            "store opened"
        );
        let (shared, thread) = start_writer(
            config,
            trees,
            (files, tasks),
            sled_path,
            bytes,
            records.len() as u64,
        )?;
        let opened = StoreStats {
            path: temp.is_none().then(|| dir.clone()),
            restored: records.len(),
            skipped,
            quarantined,
            migrated_events,
            ..StoreStats::default()
        };
        let inner = Inner {
            shared,
            thread: Mutex::new(Some(thread)),
            opened,
            agents: dir.join(AGENTS_DIR),
            _lock: lock,
            _temp: temp,
        };
        Ok((
            Store {
                inner: Arc::new(inner),
            },
            records,
        ))
    }
}

/// The data directory: the configured one, created and locked, or a new temporary one.
fn data_dir(
    config: &StoreConfig,
) -> Result<(PathBuf, Option<lock::DirLock>, Option<TempDir>), StoreError> {
    Ok(if config.in_memory {
        let temp = TempDir::new()?;
        (temp.0.clone(), None, Some(temp))
    } else {
        let dir = config.resolved_data_dir().ok_or(StoreError::NoDataDir)?;
        create_private_dir(&dir)?;
        let lock = lock::DirLock::acquire(&dir)?;
        (dir, Some(lock), None)
    })
}

/// Shares the opened trees and files with a new writer thread, its counters starting from
/// the stored bytes and records loaded; the thread reopens sled at `sled_path` after errors.
fn start_writer(
    config: &StoreConfig,
    trees: Trees,
    (files, tasks): (SessionFiles, TaskFiles),
    sled_path: PathBuf,
    bytes: u64,
    records: u64,
) -> Result<(Arc<writer::Exchange>, JoinHandle<()>), StoreError> {
    let shared = Arc::new(writer::Exchange {
        state: Mutex::default(),
        wake: Condvar::new(),
        counters: writer::Counters::default(),
        trees: RwLock::new(Some(Arc::new(trees))),
        files,
        tasks,
        last_error: Mutex::new(None),
        cap: config.transcript_cap_bytes,
        hold: Mutex::default(),
        hold_changed: Condvar::new(),
    });
    shared
        .counters
        .bytes
        .store(bytes, std::sync::atomic::Ordering::Relaxed);
    shared
        .counters
        .records
        .store(records, std::sync::atomic::Ordering::Relaxed);
    let reopen_config = config.clone();
    let thread = writer::Thread::new(
        Arc::clone(&shared),
        Duration::from_millis(config.flush_interval_ms.max(1)),
        Box::new(move || open_waiting(&reopen_config, &sled_path).map(|(t, _)| t)),
    )
    .spawn()
    .map_err(|e| io_error(Path::new("(writer thread)"), e))?;
    Ok((shared, thread))
}

fn sled_config(config: &StoreConfig) -> sled::Config {
    sled::Config::new()
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(None)
}

/// Opens sled and checks the schema; returns the trees and the schema found (a new store
/// gets the current one).
fn open_trees(config: sled::Config) -> Result<(Trees, u32), StoreError> {
    // sled may panic on some kinds of damage instead of returning an error.
    let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
        .map_err(|_| StoreError::Sled("sled panicked while opening the store".into()))??;
    let meta = db.open_tree("meta")?;
    let schema = match meta.get("schema")? {
        None => {
            meta.insert("schema", codec::seal(&SCHEMA_VERSION.to_le_bytes()))?;
            SCHEMA_VERSION
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
            found
        }
    };
    Ok((
        Trees {
            sessions: db.open_tree("sessions")?,
            blobs: db.open_tree("blobs")?,
            db,
        },
        schema,
    ))
}

/// Opens sled at `path`, waiting (bounded) for its file lock: a store of this process that
/// is still closing holds it, and that is not damage.
fn open_waiting(config: &StoreConfig, path: &Path) -> Result<(Trees, u32), StoreError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match open_trees(sled_config(config).path(path)) {
            Err(StoreError::Sled(m))
                if m.contains("could not acquire lock") && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(StoreError::Sled(m)) if m.contains("could not acquire lock") => {
                return Err(StoreError::Locked {
                    dir: path.to_owned(),
                    holder: format!("{} (sled's lock is still held)", std::process::id()),
                })
            }
            other => return other,
        }
    }
}

/// Opens the store at `path`; if that fails for any reason other than a newer schema or a
/// lock, moves it (and the transcripts) aside and starts a fresh one.
fn open_or_quarantine(
    config: &StoreConfig,
    dir: &Path,
    path: &Path,
) -> Result<(Trees, u32, Option<PathBuf>), StoreError> {
    match open_waiting(config, path) {
        Ok((trees, schema)) => Ok((trees, schema, None)),
        Err(e @ (StoreError::NewerSchema { .. } | StoreError::Locked { .. })) => Err(e),
        Err(e) => {
            let aside = lock::quarantine_dir(dir);
            create_private_dir(&aside)?;
            for name in [STORE_DIR, SESSIONS_DIR, AGENTS_DIR] {
                let from = dir.join(name);
                if !from.exists() {
                    continue;
                }
                std::fs::rename(&from, aside.join(name)).map_err(|re| StoreError::Io {
                    path: from.clone(),
                    message: format!(
                        "the store failed to open ({e}) and could not be moved aside: {re}"
                    ),
                })?;
            }
            error!(
                error = %e,
                quarantined = %aside.display(),
                "THE STORE FAILED TO OPEN AND WAS MOVED ASIDE; starting on a fresh, empty store. \
                 Sessions recorded before are in the quarantined copy"
            );
            let (trees, schema) = open_waiting(config, path)?;
            Ok((trees, schema, Some(aside)))
        }
    }
}

/// Moves a schema-1 store's transcripts (one sled key per event) into segment files, one
/// session at a time, then drops the old tree and records schema 2. Safe to interrupt: a
/// rerun appends only what is missing. Returns the events moved.
fn migrate_v1(trees: &Trees, files: &SessionFiles) -> Result<u64, StoreError> {
    let started = Instant::now();
    let old = trees.db.open_tree("transcripts")?;
    let mut moved = 0;
    let mut sessions = 0;
    let mut batch: Vec<Event> = Vec::new();
    let mut current: Option<SessionId> = None;
    for kv in old.iter() {
        let (k, v) = kv?;
        let Some(id) = <[u8; 16]>::try_from(&k[..16.min(k.len())])
            .ok()
            .map(|b| SessionId(uuid::Uuid::from_bytes(b)))
        else {
            warn!("skipping a transcript key of the old layout that names no session");
            continue;
        };
        if current != Some(id) {
            if let Some(prev) = current {
                moved += move_events(trees, files, prev, &mut batch)?;
                sessions += 1;
            }
            current = Some(id);
        }
        let seq = record::seq_of(&k).unwrap_or(0);
        match Event::decode(seq, &v) {
            Ok(e) => batch.push(e),
            Err(e) => warn!(session = %id, seq, error = %e, "skipping a damaged transcript event"),
        }
    }
    if let Some(prev) = current {
        moved += move_events(trees, files, prev, &mut batch)?;
        sessions += 1;
    }
    files.sync().map_err(|e| io_error(files.root(), e))?;
    trees.db.drop_tree("transcripts")?;
    trees
        .db
        .open_tree("meta")?
        .insert("schema", codec::seal(&SCHEMA_VERSION.to_le_bytes()))?;
    trees.db.flush()?;
    info!(
        sessions,
        events = moved,
        ms = started.elapsed().as_millis() as u64,
        "moved the transcripts of a schema-1 store into segment files"
    );
    Ok(moved)
}

/// Appends one session's old events to its segment files and updates its record's count of
/// transcript bytes.
fn move_events(
    trees: &Trees,
    files: &SessionFiles,
    id: SessionId,
    events: &mut Vec<Event>,
) -> Result<u64, StoreError> {
    let io = |e| io_error(files.root(), e);
    let mut log = files.open_log(id).map_err(io)?;
    files.append(&mut log, events).map_err(io)?;
    files.trim(&mut log).map_err(io)?;
    let n = events.len() as u64;
    events.clear();
    let key = record::session_key(id);
    if let Some(v) = trees.sessions.get(key)? {
        if let Ok(mut rec) = codec::open_json::<Record>(&v) {
            rec.live.transcript_bytes = log.bytes();
            trees.sessions.insert(key, codec::seal_json(&rec))?;
        }
    }
    Ok(n)
}

type Loaded = (Vec<RecordHead>, Vec<Skipped>, u64);

/// Record heads by session, with the bytes each record takes.
type Heads = HashMap<SessionId, (RecordHead, u64)>;

/// Loads the head of every record (sled's, then the final record files), decoding on every
/// core; damaged ones are reported and skipped. A final record still in sled (a crash
/// between writing its file and removing its key, or a schema-1 store) moves to its file.
/// Also returns the stored bytes.
fn load(trees: &Trees, files: &SessionFiles) -> Result<Loaded, StoreError> {
    let (mut heads, mut skipped) = load_sled(trees, files)?;
    load_files(files, &mut heads, &mut skipped)?;
    for s in &skipped {
        error!(tree = s.tree, key = %s.key, reason = %s.reason, "skipping a damaged session record");
    }
    let blob_bytes = blob_bytes(trees)?;
    let mut bytes = 0;
    let records = heads
        .into_values()
        .map(|(r, len)| {
            bytes +=
                len + r.live.transcript_bytes + blob_bytes.get(&r.spec.id).copied().unwrap_or(0);
            r
        })
        .collect();
    Ok((records, skipped, bytes))
}

/// The heads of the records in sled, and the damaged ones; final records found there move
/// to their files.
fn load_sled(trees: &Trees, files: &SessionFiles) -> Result<(Heads, Vec<Skipped>), StoreError> {
    let raw = trees.sessions.iter().collect::<Result<Vec<_>, _>>()?;
    let decoded = decode_all(&raw, |(k, v)| decode_head(k, v));
    let mut heads: Heads = HashMap::with_capacity(raw.len());
    let mut skipped = Vec::new();
    let io = |e| io_error(files.root(), e);
    let mut finals = Vec::new();
    for (outcome, (k, v)) in decoded.into_iter().zip(&raw) {
        match outcome {
            Ok(r) if r.live.state.is_terminal() => {
                files.stage_record(r.spec.id, v).map_err(io)?;
                finals.push((r.spec.id, k));
            }
            Ok(r) => {
                heads.insert(r.spec.id, (r, v.len() as u64));
            }
            Err(s) => skipped.push(s),
        }
    }
    if !finals.is_empty() {
        files.sync().map_err(io)?;
        for (id, key) in finals {
            files.commit_record(id).map_err(io)?;
            trees.sessions.remove(key)?;
        }
        trees.db.flush()?;
    }
    Ok((heads, skipped))
}

/// Adds the heads of the final record files to `heads` (and the damaged ones to `skipped`).
fn load_files(
    files: &SessionFiles,
    heads: &mut Heads,
    skipped: &mut Vec<Skipped>,
) -> Result<(), StoreError> {
    let finals = files.all_records().map_err(|e| io_error(files.root(), e))?;
    let decoded = decode_all(&finals, |(id, v)| match v {
        Ok(v) => decode_head(id.0.as_bytes(), v),
        Err(e) => Err(Skipped {
            tree: "sessions/*/record",
            key: id.0.to_string(),
            reason: e.to_string(),
        }),
    });
    for (outcome, (_, v)) in decoded.into_iter().zip(&finals) {
        match outcome {
            Ok(r) => {
                let len = v.as_ref().map_or(0, |v| v.len() as u64);
                heads.insert(r.spec.id, (r, len));
            }
            Err(s) => skipped.push(s),
        }
    }
    Ok(())
}

/// The bytes of each session's blobs in sled.
fn blob_bytes(trees: &Trees) -> Result<HashMap<SessionId, u64>, StoreError> {
    let mut blob_bytes: HashMap<SessionId, u64> = HashMap::new();
    for kv in trees.blobs.iter() {
        let (k, v) = kv?;
        if let Ok(b) = <[u8; 16]>::try_from(&k[..16.min(k.len())]) {
            *blob_bytes
                .entry(SessionId(uuid::Uuid::from_bytes(b)))
                .or_default() += v.len() as u64;
        }
    }
    Ok(blob_bytes)
}

/// Decodes `items` on every core, keeping their order.
fn decode_all<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / 4096 + 1);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("decoding does not panic"))
            .collect()
    })
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

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
