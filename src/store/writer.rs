//! The writer thread: changed records and new transcript events wait in a pending set and are
//! written as one batch per `flush_interval_ms`, or at once when a push is urgent (lifecycle
//! events) or durable (a caller waits for the flush). Pushing never touches sled and never
//! wakes the thread unless the push is urgent, so the hot path pays for a short lock only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;
use tracing::{debug, error};

use super::record::{self, Event, Record};
use super::{codec, StoreError, Trees};
use crate::ids::SessionId;

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

/// Changes not yet written.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub records: HashMap<SessionId, Record>,
    pub events: Vec<(SessionId, Event)>,
    pub blobs: Vec<(SessionId, String, Option<Vec<u8>>)>,
    pub purges: Vec<SessionId>,
    pub acks: Vec<Ack>,
    pub urgent: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.events.is_empty()
            && self.blobs.is_empty()
            && self.purges.is_empty()
            && self.acks.is_empty()
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub pending: Pending,
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
    /// Failed batches.
    pub failures: AtomicU64,
}

/// What the pushers and the thread share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub state: Mutex<State>,
    pub wake: Condvar,
    pub counters: Counters,
    /// Stored bytes per session; written by the thread, read for the size cap.
    pub sizes: Mutex<HashMap<SessionId, Sizes>>,
}

impl Shared {
    pub(super) fn recount(&self, sizes: &HashMap<SessionId, Sizes>) {
        let c = &self.counters;
        c.bytes
            .store(sizes.values().map(|s| s.total()).sum(), Ordering::Relaxed);
        c.records.store(sizes.len() as u64, Ordering::Relaxed);
    }
}

/// Bytes stored for one session.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sizes {
    pub record: u64,
    pub transcript: u64,
    pub blobs: u64,
}

impl Sizes {
    pub(super) fn total(self) -> u64 {
        self.record + self.transcript + self.blobs
    }
}

/// The thread's own state.
pub(super) struct Thread {
    pub shared: Arc<Shared>,
    pub trees: Trees,
    pub interval: Duration,
    pub transcript_cap: u64,
}

impl Thread {
    pub(super) fn spawn(self) -> std::io::Result<JoinHandle<()>> {
        self.shared.recount(&self.shared.sizes.lock());
        std::thread::Builder::new()
            .name("stablehand-store".into())
            .spawn(move || self.run())
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + self.interval;
        loop {
            let (pending, stop) = {
                let mut st = self.shared.state.lock();
                while !st.stop && !st.pending.urgent {
                    let now = Instant::now();
                    if now >= next_tick {
                        break;
                    }
                    self.shared.wake.wait_for(&mut st, next_tick - now);
                }
                (std::mem::take(&mut st.pending), st.stop)
            };
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + self.interval;
            }
            if !pending.is_empty() {
                self.write(pending);
            }
            if stop {
                let st = self.shared.state.lock();
                if st.pending.is_empty() {
                    debug!("store writer stopped");
                    return;
                }
            }
        }
    }

    /// Writes one batch, flushes it, and answers its waiters.
    fn write(&mut self, mut p: Pending) {
        let acks = std::mem::take(&mut p.acks);
        let outcome = self.apply(p);
        if let Err(e) = &outcome {
            self.shared
                .counters
                .failures
                .fetch_add(1, Ordering::Relaxed);
            error!(error = %e, "writing a snapshot batch failed");
        }
        for ack in acks {
            let _ = ack.send(outcome.clone());
        }
    }

    fn apply(&mut self, p: Pending) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        let c = &shared.counters;
        let mut sizes = shared.sizes.lock();
        let mut events = sled::Batch::default();
        let mut touched = Vec::new();
        for (id, e) in &p.events {
            let value = e.encode();
            sizes.entry(*id).or_default().transcript += value.len() as u64;
            events.insert(&record::event_key(*id, e.seq), value);
            touched.push(*id);
        }
        let mut blobs = sled::Batch::default();
        for (id, name, value) in &p.blobs {
            let key = record::blob_key(*id, name);
            let old = self.trees.blobs.get(&key)?.map_or(0, |v| v.len() as u64);
            let sizes = sizes.entry(*id).or_default();
            sizes.blobs = sizes.blobs.saturating_sub(old);
            match value {
                Some(v) => {
                    let sealed = codec::seal(v);
                    sizes.blobs += sealed.len() as u64;
                    blobs.insert(key, sealed);
                }
                None => blobs.remove(key),
            }
        }
        self.trees.transcripts.apply_batch(events)?;
        self.trees.blobs.apply_batch(blobs)?;
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            self.trim(id, &mut sizes)?;
        }
        let mut sessions = sled::Batch::default();
        for (id, mut rec) in p.records {
            let sizes = sizes.entry(id).or_default();
            rec.live.transcript_bytes = sizes.transcript;
            let value = codec::seal_json(&rec);
            sizes.record = value.len() as u64;
            sessions.insert(&record::session_key(id), value);
            c.records_written.fetch_add(1, Ordering::Relaxed);
        }
        for id in &p.purges {
            sessions.remove(&record::session_key(*id));
            self.remove_prefix(&self.trees.transcripts, *id)?;
            self.remove_prefix(&self.trees.blobs, *id)?;
            sizes.remove(id);
        }
        self.trees.sessions.apply_batch(sessions)?;
        self.trees.db.flush()?;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.events_written
            .fetch_add(p.events.len() as u64, Ordering::Relaxed);
        shared.recount(&sizes);
        Ok(())
    }

    /// Drops a session's oldest transcript events until it is within the cap.
    fn trim(&self, id: SessionId, sizes: &mut HashMap<SessionId, Sizes>) -> Result<(), StoreError> {
        let Some(sizes) = sizes.get_mut(&id) else {
            return Ok(());
        };
        if sizes.transcript <= self.transcript_cap {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for kv in self.trees.transcripts.scan_prefix(record::session_key(id)) {
            if sizes.transcript <= self.transcript_cap {
                break;
            }
            let (k, v) = kv?;
            sizes.transcript = sizes.transcript.saturating_sub(v.len() as u64);
            batch.remove(k);
        }
        self.trees.transcripts.apply_batch(batch)?;
        Ok(())
    }

    fn remove_prefix(&self, tree: &sled::Tree, id: SessionId) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in tree.scan_prefix(record::session_key(id)).keys() {
            batch.remove(k?);
        }
        tree.apply_batch(batch)?;
        Ok(())
    }
}
