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
use crate::model::audit::{AuditAction, AuditEntry, Via};
use crate::session::messages::{EndResult, SessionInfo};
use crate::session::shared::unix_ms;
use crate::session::state::{Event, State};
use crate::session::{self, Boot, SessionSpec, Shared, StateKind};
use crate::store::{Record, RecordHead, StoredAudit, When};
use crate::{Error, Result};

/// Resumes a Suspended session: respawns it with the same spec (a shell in its last working
/// directory), keeping its id, transcript and counters.
#[derive(Debug, Message)]
#[rtype(result = "Result<SessionInfo>")]
pub struct Resume {
    /// Who asks (only the owner may resume).
    pub owner: Owner,
    /// The door the request came through (for the audit trail).
    pub via: Via,
    /// The session.
    pub id: SessionId,
    /// Place it on this arbiter instead of round-robin.
    pub prefer_arbiter: Option<usize>,
    /// An agent session starts a new conversation instead of continuing its own.
    pub fresh: bool,
}

/// Ends a session that has no process (a Suspended record): it becomes Ended.
#[derive(Debug, Message)]
#[rtype(result = "Result<EndResult>")]
pub struct EndRecord {
    /// Who asks.
    pub owner: Owner,
    /// The door the request came through (for the audit trail).
    pub via: Via,
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
            if let (Some(name), false) = (&r.spec.name, state.is_terminal()) {
                self.names
                    .insert((shared.owner.clone(), name.clone()), r.spec.id);
            }
            shared.set_settled(Some(r.live.settled_at_ms.unwrap_or(r.live.last_active_ms)));
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

    /// Reads a session's record off the registry's thread.
    pub(super) fn read_record(
        &self,
        id: SessionId,
    ) -> impl std::future::Future<Output = Result<Record>> {
        let store = self.store.clone();
        async move {
            let store =
                store.ok_or_else(|| Error::Store("the runtime runs without a store".into()))?;
            store
                .off_thread(move |s| s.record(id))
                .await
                .map_err(|e| Error::Store(e.to_string()))?
                .ok_or_else(|| Error::Store(format!("session {id} has no stored record")))
        }
    }

    /// Refuses a resume unless the session is Suspended, without an actor, and not already
    /// being resumed.
    fn check_resumable(&self, owner: &Owner, id: SessionId) -> Result<()> {
        let entry = self.index.get(owner, id)?;
        let state = entry.shared.state();
        let stopping = entry.addr.as_ref().is_some_and(|a| a.connected());
        if state != StateKind::Suspended || stopping || self.resuming.contains(&id) {
            let current = match state {
                StateKind::Suspended if stopping => "Suspended (still stopping)".to_owned(),
                StateKind::Suspended => "Suspended (being resumed)".to_owned(),
                other => other.to_string(),
            };
            return Err(Error::WrongState(crate::session::state::Refused {
                verb: "resume",
                current,
                needed: "Suspended",
            }));
        }
        Ok(())
    }

    /// Starts a new actor for a Suspended session from its record.
    fn start_resumed(
        &mut self,
        msg: Resume,
        record: Record,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<SessionInfo>> {
        let spec = match self.admit_resume(&msg, &record, ctx) {
            Ok(s) => s,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let now = unix_ms(SystemTime::now());
        let (addr, ready_rx) = self.start_resumed_actor(&msg, &record, spec, now, ctx);
        let id = msg.id;
        Box::pin(
            when_ready(ready_rx, addr, id)
                .into_actor(self)
                .map(move |res, act, _| {
                    if let Err(e) = &res {
                        act.resume_failed(id, record, now, e);
                    }
                    res
                }),
        )
    }

    /// Checks, once the record is read, that the resume may go on, makes room for the
    /// session, and returns the spec it resumes with.
    fn admit_resume(
        &mut self,
        msg: &Resume,
        record: &Record,
        ctx: &mut Context<Self>,
    ) -> Result<SessionSpec> {
        if self.shutting_down {
            return Err(Error::ShuttingDown);
        }
        // The record was read off the thread: the session may have changed meanwhile.
        self.check_resumable(&msg.owner, msg.id)?;
        let mut spec = create::respec(&self.config, record)?;
        self.principals
            .apply(msg.owner.as_str(), &mut spec, false)?;
        let dir = self.agent_dir(msg.id);
        super::agent::for_resume(&self.config, &mut spec, record, dir, msg.fresh);
        self.make_room(ctx)?;
        Ok(spec)
    }

    /// Starts the resumed session's actor (Starting since `now`) and indexes it: returns its
    /// address and where its start-up outcome arrives.
    fn start_resumed_actor(
        &mut self,
        msg: &Resume,
        record: &Record,
        spec: SessionSpec,
        now: u64,
        ctx: &mut Context<Self>,
    ) -> (Addr<session::Session>, oneshot::Receiver<Result<()>>) {
        let (slot, arbiter) = self.arbiter_for(msg.prefer_arbiter);
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
                via: msg.via,
                enforcer: Arc::clone(&self.enforcer),
            },
        );
        self.index.insert(index::Entry {
            addr: Some(addr.clone()),
            shared: Arc::clone(&shared),
        });
        (addr, ready_rx)
    }

    /// After a failed resume: indexes the session as Suspended again, without an actor, and
    /// stores its record back.
    fn resume_failed(&mut self, id: SessionId, record: Record, now: u64, e: &Error) {
        // The record stays resumable; the failed attempt is reported.
        warn!(session = %id, error = %e, "resume failed; the session stays Suspended");
        let shared = Shared::from_record(&record.spec, StateKind::Suspended, now, 0);
        shared.set_settled(Some(now));
        self.index.insert(index::Entry {
            addr: None,
            shared: Arc::new(shared),
        });
        if let Some(store) = &self.store {
            store.put(record, Vec::new(), When::Now);
        }
    }
}

impl Handler<Resume> for Registry {
    type Result = ResponseActFuture<Self, Result<SessionInfo>>;

    fn handle(&mut self, msg: Resume, _: &mut Self::Context) -> Self::Result {
        if self.shutting_down {
            return Box::pin(actix::fut::ready(Err(Error::ShuttingDown)));
        }
        if let Err(e) = self.check_resumable(&msg.owner, msg.id) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let id = msg.id;
        self.resuming.insert(id);
        let store = self.store.clone();
        let record = self.read_record(id);
        let read = async move {
            let mut record = record.await?;
            // After a crash the transcript may hold more than the record says: continue
            // after what is on disk.
            if let Some(store) = store {
                let (next_seq, ends) = store
                    .tail(id)
                    .await
                    .map_err(|_| Error::Store("the store writer stopped".into()))?
                    .map_err(|e| Error::Store(e.to_string()))?;
                let live = &mut record.live;
                live.transcript_seq = live.transcript_seq.max(next_seq);
                for (end, disk) in live.output_end.iter_mut().zip(ends) {
                    *end = (*end).max(disk);
                }
            }
            Ok(record)
        };
        Box::pin(read.into_actor(self).then(move |res, act, ctx| {
            act.resuming.remove(&id);
            match res {
                Ok(record) => act.start_resumed(msg, record, ctx),
                Err(e) => Box::pin(actix::fut::ready(Err(e))),
            }
        }))
    }
}

impl Handler<EndRecord> for Registry {
    type Result = ResponseActFuture<Self, Result<EndResult>>;

    fn handle(&mut self, msg: EndRecord, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.index.get(&msg.owner, msg.id) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let record = self.read_record(msg.id);
        Box::pin(
            record
                .into_actor(self)
                .map(move |record, act, _| act.end_record(&msg, record?)),
        )
    }
}

impl Registry {
    /// Ends a session that has no process, from its record.
    fn end_record(&mut self, msg: &EndRecord, mut record: Record) -> Result<EndResult> {
        let entry = self.index.get(&msg.owner, msg.id)?;
        if entry.addr.as_ref().is_some_and(|a| a.connected()) || self.resuming.contains(&msg.id) {
            return Err(Error::WrongState(crate::session::state::Refused {
                verb: "end",
                current: format!("{} (being resumed)", entry.shared.state()),
                needed: "a session without a process, or a live one",
            }));
        }
        let state = entry.shared.state();
        let current = match state {
            StateKind::Suspended => State::Suspended { note: None },
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
        entry.shared.set_settled(Some(now));
        self.forget_name(&entry.shared);
        record.live.state = next.kind();
        record.live.state_detail = next.to_string();
        record.live.settled_at_ms = Some(now);
        let mut trail: Vec<AuditEntry> = record
            .live
            .audit
            .iter()
            .filter_map(StoredAudit::entry)
            .collect();
        let ended = AuditAction::Ended;
        session::record_audit(&mut trail, msg.id, &msg.owner, ended, msg.via, None);
        record.live.audit = trail.iter().map(Into::into).collect();
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
