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

/// Id → session, shared by the registry (writer) and every handle (readers).
#[derive(Debug, Default)]
pub struct Index {
    map: RwLock<HashMap<SessionId, Entry>>,
}

impl Index {
    /// The session `id` if it belongs to `owner`; another owner's session is "not found".
    pub fn get(&self, owner: &Owner, id: SessionId) -> Result<Entry> {
        let map = self.map.read();
        match map.get(&id) {
            Some(e) if &e.shared.owner == owner => Ok(e.clone()),
            _ => Err(Error::NotFound { id: id.to_string() }),
        }
    }

    /// Every indexed session's summary.
    pub fn all(&self) -> Vec<Arc<Shared>> {
        self.map
            .read()
            .values()
            .map(|e| Arc::clone(&e.shared))
            .collect()
    }

    /// Number of indexed sessions.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// Counts sessions matching `pred`, without copying the index.
    pub(crate) fn count(&self, pred: impl Fn(&Shared) -> bool) -> usize {
        self.map.read().values().filter(|e| pred(&e.shared)).count()
    }

    /// The session matching `pred` with the smallest `key`, without copying the index.
    pub(crate) fn min_by(
        &self,
        pred: impl Fn(&Shared) -> bool,
        key: impl Fn(&Shared) -> u64,
    ) -> Option<SessionId> {
        let map = self.map.read();
        map.values()
            .filter(|e| pred(&e.shared))
            .min_by_key(|e| key(&e.shared))
            .map(|e| e.shared.id)
    }

    pub(crate) fn entry(&self, id: SessionId) -> Option<Entry> {
        self.map.read().get(&id).cloned()
    }

    pub(crate) fn insert(&self, entry: Entry) {
        self.map.write().insert(entry.shared.id, entry);
    }

    /// Forgets a session's actor, keeping its record.
    pub(crate) fn detach(&self, id: SessionId) {
        if let Some(e) = self.map.write().get_mut(&id) {
            e.addr = None;
        }
    }

    pub(crate) fn remove(&self, id: SessionId) -> Option<Entry> {
        self.map.write().remove(&id)
    }
}
