//! The part of a session that others may read without asking its actor: identity plus a few
//! atomics the actor keeps current. The registry's index holds one per session, which is how
//! lookups, listing and eviction decisions avoid actor round trips.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Kind, StateKind};
use crate::ids::{Owner, SessionId};

/// Identity and live summary of one session.
#[derive(Debug)]
pub struct Shared {
    /// The id.
    pub id: SessionId,
    /// Who may see and use it.
    pub owner: Owner,
    /// Its kind.
    pub kind: Kind,
    /// Creation order, for newest-first listing with a stable cursor.
    pub seq: u64,
    /// Idle time before eviction, ms (0 = never).
    pub idle_timeout_ms: u64,
    // Kept compact: one of these stays in memory for every session until it is purged.
    name: Option<Box<str>>,
    created_ms: u64,
    arbiter: u16,
    state: AtomicU8,
    last_active_ms: AtomicU64,
    /// Position in the runtime-wide order of activity (for LRU: milliseconds tie).
    last_active_seq: AtomicU64,
    /// When the session settled (Ended, Failed or Suspended), ms since the epoch; 0 = not.
    settled_ms: AtomicU64,
    pid: AtomicU32,
    /// Counts changes (output, state) once somebody watches; made by the first watcher, so
    /// an unwatched session pays one atomic load per change.
    changes: OnceLock<watch::Sender<u64>>,
}

/// A listing row, read from the index without messaging the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionSummary {
    /// The id.
    pub session_id: SessionId,
    /// Its label.
    pub name: Option<String>,
    /// Its kind.
    pub kind: Kind,
    /// Its state.
    pub state: StateKind,
    /// Child pid while it runs.
    pub pid: Option<u32>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Last activity, RFC 3339 UTC.
    pub last_active_at: String,
}

impl Shared {
    /// A new record in state Starting.
    pub fn new(
        id: SessionId,
        owner: Owner,
        kind: Kind,
        name: Option<String>,
        seq: u64,
        idle_timeout_ms: u64,
        arbiter: usize,
    ) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            owner,
            kind,
            name: name.map(String::into_boxed_str),
            created_ms: unix_ms(now),
            seq,
            idle_timeout_ms,
            arbiter: arbiter_slot(arbiter),
            state: AtomicU8::new(StateKind::Starting.code()),
            last_active_ms: AtomicU64::new(unix_ms(now)),
            last_active_seq: AtomicU64::new(next_activity()),
            settled_ms: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            changes: OnceLock::new(),
        }
    }

    /// The summary of a stored session, for a resume.
    pub(crate) fn from_record(
        spec: &crate::store::SpecRecord,
        state: StateKind,
        last_active_ms: u64,
        arbiter: usize,
    ) -> Self {
        let head = crate::store::SpecHead {
            id: spec.id,
            owner: spec.owner.clone(),
            kind: spec.kind,
            name: spec.name.clone(),
            idle_timeout_ms: spec.idle_timeout_ms,
            seq: spec.seq,
            created_at_ms: spec.created_at_ms,
        };
        Self::from_head(&head, state, last_active_ms, arbiter)
    }

    /// The summary of a stored session, as it comes back after a restart.
    pub(crate) fn from_head(
        spec: &crate::store::SpecHead,
        state: StateKind,
        last_active_ms: u64,
        arbiter: usize,
    ) -> Self {
        Self {
            id: spec.id,
            owner: Owner::from_stored(&spec.owner),
            kind: spec.kind,
            name: spec.name.as_deref().map(Box::from),
            created_ms: spec.created_at_ms,
            seq: spec.seq,
            idle_timeout_ms: spec.idle_timeout_ms,
            arbiter: arbiter_slot(arbiter),
            state: AtomicU8::new(state.code()),
            last_active_ms: AtomicU64::new(last_active_ms),
            last_active_seq: AtomicU64::new(next_activity()),
            settled_ms: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            changes: OnceLock::new(),
        }
    }

    /// Its label.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Creation time.
    pub fn created_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.created_ms)
    }

    /// Index of the arbiter (thread) hosting the session.
    pub fn arbiter(&self) -> usize {
        usize::from(self.arbiter)
    }

    /// Current state.
    pub fn state(&self) -> StateKind {
        StateKind::from_code(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_state(&self, state: StateKind) {
        self.state.store(state.code(), Ordering::Release);
        self.changed();
    }

    /// Changes of the session (its output grew or its state changed): the value counts them.
    /// Closed when this summary goes (the session was purged, or resumed under a new one).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.get_or_init(|| watch::channel(0).0).subscribe()
    }

    /// Takes over `old`'s watchers (the summary of the same session it replaces).
    pub(crate) fn adopt_watchers(&self, old: &Shared) {
        if let Some(tx) = old.changes.get() {
            let _ = self.changes.set(tx.clone());
            self.changed();
        }
    }

    /// Tells watchers the session changed.
    pub(crate) fn changed(&self) {
        if let Some(tx) = self.changes.get() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Last activity, ms since the Unix epoch.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Activity order: a larger value was active more recently.
    pub fn last_active_seq(&self) -> u64 {
        self.last_active_seq.load(Ordering::Relaxed)
    }

    pub(crate) fn touch(&self) {
        self.last_active_ms
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        self.last_active_seq
            .store(next_activity(), Ordering::Relaxed);
    }

    /// When the session settled (Ended, Failed or Suspended), ms since the epoch.
    pub fn settled_ms(&self) -> Option<u64> {
        match self.settled_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    pub(crate) fn set_settled(&self, ms: Option<u64>) {
        self.settled_ms.store(
            ms.unwrap_or(0).max(u64::from(ms.is_some())),
            Ordering::Relaxed,
        );
    }

    /// The child's pid while one runs.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(pid),
        }
    }

    pub(crate) fn set_pid(&self, pid: Option<u32>) {
        self.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
    }

    /// The listing row.
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            session_id: self.id,
            name: self.name().map(str::to_owned),
            kind: self.kind,
            state: self.state(),
            pid: self.pid(),
            created_at: rfc3339(self.created_at()),
            last_active_at: rfc3339(UNIX_EPOCH + Duration::from_millis(self.last_active_ms())),
        }
    }
}

/// An arbiter index as stored (there are never more than a few hundred arbiters).
fn arbiter_slot(arbiter: usize) -> u16 {
    u16::try_from(arbiter).unwrap_or(u16::MAX)
}

/// The next value of the runtime-wide activity counter.
fn next_activity() -> u64 {
    static ACTIVITY: AtomicU64 = AtomicU64::new(0);
    ACTIVITY.fetch_add(1, Ordering::Relaxed)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// RFC 3339 UTC with millisecond precision.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
