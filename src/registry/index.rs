//! The registry's shared, read-mostly index: session id → address and live summary.
//!
//! Only the registry actor writes it; every caller reads it directly, so an operation on an
//! existing session goes from the caller to the session's mailbox without a registry hop.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use parking_lot::RwLock;

use crate::ids::{Owner, SessionId};
use crate::session::{Session, Shared};
use crate::{Error, Result};

/// One indexed session.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The session actor; `None` for a record without a process (Suspended in the store,
    /// or restored after a restart).
    pub addr: Option<Addr<Session>>,
    /// Its identity and lock-free summary.
    pub shared: Arc<Shared>,
}

/// Id → session, shared by the registry (writer) and every handle (readers). Every indexed
/// session costs one summary; only sessions with an actor also hold its address, so an ended
/// session costs about 170 bytes until it is purged.
#[derive(Debug, Default)]
pub struct Index {
    map: RwLock<Maps>,
    /// The node takes no new sessions (its own keep working).
    draining: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Maps {
    shared: HashMap<SessionId, Arc<Shared>>,
    addrs: HashMap<SessionId, Addr<Session>>,
}

impl Maps {
    fn entry(&self, id: SessionId) -> Option<Entry> {
        Some(Entry {
            shared: Arc::clone(self.shared.get(&id)?),
            addr: self.addrs.get(&id).cloned(),
        })
    }
}

impl Index {
    /// True while the node takes no new sessions.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Starts (`true`) or ends draining.
    pub fn set_draining(&self, on: bool) {
        self.draining
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The session `id` if it belongs to `owner`; another owner's session is "not found".
    pub fn get(&self, owner: &Owner, id: SessionId) -> Result<Entry> {
        match self.map.read().entry(id) {
            Some(e) if &e.shared.owner == owner => Ok(e),
            _ => Err(Error::NotFound { id: id.to_string() }),
        }
    }

    /// Every indexed session's summary.
    pub fn all(&self) -> Vec<Arc<Shared>> {
        self.map.read().shared.values().cloned().collect()
    }

    /// Number of indexed sessions.
    pub fn len(&self) -> usize {
        self.map.read().shared.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.map.read().shared.is_empty()
    }

    /// Counts sessions matching `pred`, without copying the index.
    pub(crate) fn count(&self, pred: impl Fn(&Shared) -> bool) -> usize {
        self.map.read().shared.values().filter(|s| pred(s)).count()
    }

    /// The session matching `pred` with the smallest `key`, without copying the index.
    pub(crate) fn min_by(
        &self,
        pred: impl Fn(&Shared) -> bool,
        key: impl Fn(&Shared) -> u64,
    ) -> Option<SessionId> {
        let map = self.map.read();
        map.shared
            .values()
            .filter(|s| pred(s))
            .min_by_key(|s| key(s))
            .map(|s| s.id)
    }

    pub(crate) fn entry(&self, id: SessionId) -> Option<Entry> {
        self.map.read().entry(id)
    }

    pub(crate) fn insert(&self, entry: Entry) {
        let id = entry.shared.id;
        let mut map = self.map.write();
        if let Some(old) = map.shared.insert(id, entry.shared) {
            // A resumed session keeps its watchers.
            map.shared[&id].adopt_watchers(&old);
        }
        match entry.addr {
            Some(addr) => map.addrs.insert(id, addr),
            None => map.addrs.remove(&id),
        };
    }

    /// Forgets a session's actor, keeping its record.
    pub(crate) fn detach(&self, id: SessionId) {
        let mut map = self.map.write();
        map.addrs.remove(&id);
        // The live set shrinks after a burst: do not keep its largest table.
        let live = map.addrs.len();
        map.addrs.shrink_to(live * 2);
    }

    pub(crate) fn remove(&self, id: SessionId) -> Option<Entry> {
        let mut map = self.map.write();
        let entry = map.entry(id);
        map.shared.remove(&id);
        map.addrs.remove(&id);
        entry
    }
}
