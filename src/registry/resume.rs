//! Stored sessions: indexing the records restored at start, resuming a Suspended session
//! (a new actor and process with the same id, spec, transcript and counters), and ending a
//! record that has no process.

use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{create, index, when_ready, Registry};
use crate::ids::{Owner, SessionId};
use crate::session::messages::{EndResult, SessionInfo};
use crate::session::shared::unix_ms;
use crate::session::state::{Event, State};
use crate::session::{self, Boot, Shared, StateKind};
use crate::store::{Record, RecordHead, When};
use crate::{Error, Result};

/// Resumes a Suspended session: respawns it with the same spec (a shell in its last working
/// directory), keeping its id, transcript and counters.
#[derive(Debug, Message)]
#[rtype(result = "Result<SessionInfo>")]
pub struct Resume {
    /// Who asks (only the owner may resume).
    pub owner: Owner,
    /// The session.
    pub id: SessionId,
    /// Place it on this arbiter instead of round-robin.
    pub prefer_arbiter: Option<usize>,
}

/// Ends a session that has no process (a Suspended record): it becomes Ended.
#[derive(Debug, Message)]
#[rtype(result = "Result<EndResult>")]
pub struct EndRecord {
    /// Who asks.
    pub owner: Owner,
    /// The session.
    pub id: SessionId,
}

impl Registry {
    /// Indexes restored records. Sessions that were live are Suspended now: their processes
    /// did not survive the restart.
    pub(super) fn restore(&mut self, records: Vec<RecordHead>) {
        let mut suspended = 0;
        for r in &records {
            let stored = r.live.state;
            let state = if stored.is_live() {
                suspended += 1;
                StateKind::Suspended
            } else {
                stored
            };
            let shared = Shared::from_head(&r.spec, state, r.live.last_active_ms, 0);
            if let Some(name) = &r.spec.name {
                self.names
                    .insert((shared.owner.clone(), name.clone()), r.spec.id);
            }
            let settled = r.live.settled_at_ms.unwrap_or(r.live.last_active_ms);
            self.settled.insert(r.spec.id, settled);
            self.seq = self.seq.max(r.spec.seq);
            self.index.insert(index::Entry {
                addr: None,
                shared: Arc::new(shared),
            });
        }
        if !records.is_empty() {
            info!(
                records = records.len(),
                suspended, "restored sessions from the store; live ones are Suspended"
            );
        }
    }

    fn stored(&self, owner: &Owner, id: SessionId) -> Result<(index::Entry, Record)> {
        let entry = self.index.get(owner, id)?;
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| Error::Store("the runtime runs without a store".into()))?;
        let record = store
            .record(id)
            .map_err(|e| Error::Store(e.to_string()))?
            .ok_or_else(|| Error::Store(format!("session {id} has no stored record")))?;
        Ok((entry, record))
    }
}

impl Handler<Resume> for Registry {
    type Result = ResponseActFuture<Self, Result<SessionInfo>>;

    fn handle(&mut self, msg: Resume, ctx: &mut Self::Context) -> Self::Result {
        let fail = |e| -> Self::Result { Box::pin(actix::fut::ready(Err(e))) };
        if self.shutting_down {
            return fail(Error::ShuttingDown);
        }
        let entry = match self.index.get(&msg.owner, msg.id) {
            Ok(e) => e,
            Err(e) => return fail(e),
        };
        let state = entry.shared.state();
        let stopping = entry.addr.as_ref().is_some_and(|a| a.connected());
        if state != StateKind::Suspended || stopping {
            let current = match state {
                StateKind::Suspended => "Suspended (still stopping)".to_owned(),
                other => other.to_string(),
            };
            return fail(Error::WrongState(crate::session::state::Refused {
                verb: "resume",
                current,
                needed: "Suspended",
            }));
        }
        let (_, record) = match self.stored(&msg.owner, msg.id) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let spec = match create::respec(&self.config, &record) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        if let Err(e) = self.make_room(ctx) {
            return fail(e);
        }
        let (slot, arbiter) = match msg.prefer_arbiter.filter(|&k| k < self.arbiters.len()) {
            Some(k) => (k, self.arbiters[k].clone()),
            None => self.next_arbiter(),
        };
        let now = unix_ms(SystemTime::now());
        let shared = Arc::new(Shared::from_record(
            &record.spec,
            StateKind::Starting,
            now,
            slot,
        ));
        info!(session = %msg.id, cwd = %spec.cwd.display(), "resuming a suspended session");
        let persist = self
            .store
            .as_ref()
            .map(|store| self.persist_with(store, Arc::clone(&record.spec), Some(&record.live)));
        let (ready_tx, ready_rx) = oneshot::channel();
        let addr = session::start_on(
            &arbiter,
            Boot {
                shared: Arc::clone(&shared),
                spec,
                config: Arc::clone(&self.session_config),
                events: ctx.address().recipient(),
                ready: ready_tx,
                persist,
                resumed: Some(record.live.clone()),
            },
        );
        self.settled.remove(&msg.id);
        self.index.insert(index::Entry {
            addr: Some(addr.clone()),
            shared: Arc::clone(&shared),
        });
        let id = msg.id;
        Box::pin(
            when_ready(ready_rx, addr, id)
            .into_actor(self)
            .map(move |res, act, _| {
                if let Err(e) = &res {
                    // The record stays resumable; the failed attempt is reported.
                    warn!(session = %id, error = %e, "resume failed; the session stays Suspended");
                    act.settled.insert(id, now);
                    act.index.insert(index::Entry {
                        addr: None,
                        shared: Arc::new(Shared::from_record(
                            &record.spec,
                            StateKind::Suspended,
                            now,
                            0,
                        )),
                    });
                    if let Some(store) = &act.store {
                        store.put(record, Vec::new(), When::Now);
                    }
                }
                res
            }),
        )
    }
}

impl Handler<EndRecord> for Registry {
    type Result = Result<EndResult>;

    fn handle(&mut self, msg: EndRecord, _: &mut Self::Context) -> Self::Result {
        let (entry, mut record) = self.stored(&msg.owner, msg.id)?;
        if entry.addr.as_ref().is_some_and(|a| a.connected()) {
            return Err(Error::Store(
                "the session has a process; end it through its actor".into(),
            ));
        }
        let state = entry.shared.state();
        let current = match state {
            StateKind::Suspended => State::Suspended,
            other => {
                return Ok(EndResult {
                    ended: true,
                    exit_code: record.live.exit.and_then(|e| e.code),
                    signal: None,
                    state: other,
                })
            }
        };
        let next = current.apply(&Event::End { suspend: false })?;
        let now = unix_ms(SystemTime::now());
        entry.shared.set_state(next.kind());
        record.live.state = next.kind();
        record.live.state_detail = next.to_string();
        record.live.settled_at_ms = Some(now);
        self.settled.insert(msg.id, now);
        if let Some(store) = &self.store {
            store.put(record, Vec::new(), When::Now);
        }
        Ok(EndResult {
            ended: true,
            exit_code: None,
            signal: None,
            state: next.kind(),
        })
    }
}
