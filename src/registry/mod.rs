//! The registry actor: creates sessions (with limits and LRU eviction), keeps the shared
//! index, supervises (settled and vanished sessions), sweeps idle timeouts and retention, and
//! ends everything at shutdown. It is on the lifecycle path only, never on the path of an
//! operation on an existing session.

mod agent;
mod create;
mod index;
mod list;
pub(crate) mod principals;
mod resume;
pub mod sweep;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

pub use index::{Entry, Index};
pub use list::{list, ListRequest, ListResult, MAX_LIMIT};
pub use resume::{EndRecord, Resume};

use crate::config::{Config, SessionConfig};
use crate::ids::{Owner, SessionId};
use crate::model::audit::Via;
use crate::process::limits::Enforcer;
use crate::session::messages::{CreateRequest, End, EndMode, GetInfo, SessionInfo};
use crate::session::shared::unix_ms;
use crate::session::{self, Boot, Persist, SessionSpec, Shared, StateKind};
use crate::store::{RecordHead, SpecRecord, Store};
use crate::{Error, Result};

/// Creates a session for `owner` (or returns the live one with the same name).
#[derive(Debug, Message)]
#[rtype(result = "Result<SessionInfo>")]
pub struct Create {
    /// Who will own it.
    pub owner: Owner,
    /// The door the request came through (for the audit trail).
    pub via: Via,
    /// What to run.
    pub req: CreateRequest,
    /// Place the session on this arbiter (the caller's own thread) instead of round-robin.
    pub prefer_arbiter: Option<usize>,
}

/// Ends every session (TERM, grace, KILL) and refuses new ones.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

pub use crate::session::messages::SessionEvent;

/// The registry actor.
pub struct Registry {
    config: Arc<Config>,
    session_config: Arc<SessionConfig>,
    index: Arc<Index>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    names: HashMap<(Owner, String), SessionId>,
    /// Sessions asked to suspend for room, not yet settled (not counted as live).
    evicting: HashSet<SessionId>,
    /// Sessions whose resume is reading their record.
    resuming: HashSet<SessionId>,
    /// The store is purging ended sessions for its size cap.
    shrinking: bool,
    seq: u64,
    base_env: Vec<(String, String)>,
    shutting_down: bool,
    store: Option<Store>,
    /// Which Unix user each principal's sessions run as.
    principals: Arc<principals::Principals>,
    /// How sessions' memory and process limits are enforced.
    enforcer: Arc<Enforcer>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("sessions", &self.index.len())
            .field("arbiters", &self.arbiters.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry placing sessions on `arbiters` round-robin.
    pub fn new(config: Arc<Config>, index: Arc<Index>, arbiters: Vec<ArbiterHandle>) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter is needed");
        Self {
            session_config: Arc::new(config.session.clone()),
            base_env: create::base_env(&config),
            config,
            index,
            arbiters,
            next_arbiter: 0,
            names: HashMap::new(),
            evicting: HashSet::new(),
            resuming: HashSet::new(),
            shrinking: false,
            seq: 0,
            shutting_down: false,
            store: None,
            principals: Arc::default(),
            enforcer: Arc::new(Enforcer::off()),
        }
    }

    /// Enforces sessions' memory and process limits with `enforcer` (none by default).
    pub fn with_limits(mut self, enforcer: Arc<Enforcer>) -> Self {
        self.enforcer = enforcer;
        self
    }

    /// Runs mapped principals' sessions as their Unix users.
    pub(crate) fn with_principals(mut self, principals: principals::Principals) -> Self {
        self.principals = Arc::new(principals);
        self
    }

    /// Snapshots sessions to `store`, and indexes the `records` it restored: sessions that
    /// were live come back Suspended (their processes are gone), the others as they were.
    pub fn with_store(mut self, store: Store, records: Vec<RecordHead>) -> Self {
        self.restore(records);
        self.store = Some(store);
        self
    }

    fn views(&self) -> Vec<sweep::View> {
        self.index
            .all()
            .iter()
            .map(|s| sweep::View {
                id: s.id,
                state: s.state(),
                last_active_ms: s.last_active_ms(),
                idle_timeout_ms: s.idle_timeout_ms,
                settled_ms: s.settled_ms(),
            })
            .collect()
    }

    /// Makes room for one more live session, evicting the LRU idle one if needed. Runs on
    /// every create, so it reads the index in place instead of copying it.
    fn make_room(&mut self, ctx: &mut Context<Self>) -> Result<()> {
        let evicting = &self.evicting;
        let live = self.index.count(|s| {
            matches!(
                s.state(),
                StateKind::Starting | StateKind::Ready | StateKind::Busy | StateKind::Paused
            ) && !evicting.contains(&s.id)
        });
        let limit = self.config.runtime.max_sessions;
        if live < limit {
            return Ok(());
        }
        let victim = self
            .index
            .min_by(
                |s| {
                    matches!(s.state(), StateKind::Ready | StateKind::Paused)
                        && !evicting.contains(&s.id)
                },
                Shared::last_active_seq,
            )
            .ok_or(Error::AtCapacity { limit })?;
        info!(session = %victim, "at capacity: evicting the least-recently-used idle session");
        self.evict(victim, ctx);
        Ok(())
    }

    /// Asks an idle session to suspend. The session refuses if it became busy meanwhile.
    fn evict(&mut self, id: SessionId, ctx: &mut Context<Self>) {
        let Some(addr) = self.index.entry(id).and_then(|e| e.addr) else {
            return;
        };
        self.evicting.insert(id);
        let end = addr.send(End {
            grace_ms: None,
            mode: EndMode::Evict,
            via: Via::Runtime,
        });
        ctx.spawn(end.into_actor(self).map(move |res, act, _| {
            if !matches!(res, Ok(Ok(_))) {
                debug!(session = %id, outcome = ?res, "eviction refused; the session stays");
                act.evicting.remove(&id);
            }
        }));
    }

    fn purge(&mut self, id: SessionId) {
        self.forget(id);
        if let Some(store) = &self.store {
            store.purge(id);
        }
    }

    /// Removes a session from the index (its stored data is purged, or being purged).
    fn forget(&mut self, id: SessionId) {
        if let Some(entry) = self.index.remove(id) {
            debug!(session = %id, "purging settled session");
            self.forget_name(&entry.shared);
        }
        self.evicting.remove(&id);
    }

    /// Drops the name of a session that no longer answers to it.
    fn forget_name(&mut self, shared: &Shared) {
        if let Some(name) = shared.name() {
            let key = (shared.owner.clone(), name.to_owned());
            if self.names.get(&key) == Some(&shared.id) {
                self.names.remove(&key);
            }
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let now = unix_ms(SystemTime::now());
        for action in sweep::due(now, self.config.runtime.retention_ms, &self.views()) {
            match action {
                sweep::Action::Evict(id) => {
                    if !self.evicting.contains(&id) {
                        info!(session = %id, "idle timeout: evicting");
                        self.evict(id, ctx);
                    }
                }
                sweep::Action::Purge(id) => self.purge(id),
            }
        }
        self.enforce_store_cap(ctx);
    }

    /// Has the store purge the oldest Ended and Failed sessions while it is over its size
    /// cap (the store measures and deletes on its own thread).
    fn enforce_store_cap(&mut self, ctx: &mut Context<Self>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let cap = self.config.store.max_bytes;
        if cap == 0 || self.shrinking || store.bytes() <= cap {
            return;
        }
        let mut ended: Vec<(u64, SessionId)> = self
            .index
            .all()
            .iter()
            .filter(|s| s.state().is_terminal())
            .map(|s| (s.settled_ms().unwrap_or(0), s.id))
            .collect();
        if ended.is_empty() {
            debug!(
                cap_bytes = cap,
                "the store is over its size cap, with no ended session to purge"
            );
            return;
        }
        ended.sort_unstable();
        self.shrinking = true;
        let candidates = ended.into_iter().map(|(_, id)| id).collect();
        ctx.spawn(
            store
                .shrink(candidates, cap)
                .into_actor(self)
                .map(move |purged, act, _| {
                    act.shrinking = false;
                    let purged = purged.unwrap_or_default();
                    if !purged.is_empty() {
                        warn!(
                            purged = purged.len(),
                            cap_bytes = cap,
                            "the store is over its size cap: purged the oldest ended sessions"
                        );
                    }
                    for id in purged {
                        act.forget(id);
                    }
                }),
        );
    }

    /// Builds the stored parts of a new session: its spec record and its link to the store.
    fn persist_for(&self, shared: &Shared, spec: &SessionSpec) -> Option<Persist> {
        let store = self.store.as_ref()?;
        let record = SpecRecord {
            id: shared.id,
            owner: shared.owner.as_str().to_owned(),
            kind: spec.kind,
            name: shared.name().map(str::to_owned),
            argv: spec.argv.clone(),
            cwd: spec.cwd.clone(),
            env: spec.env.clone(),
            rlimits: spec.rlimits.clone(),
            idle_timeout_ms: shared.idle_timeout_ms,
            seq: shared.seq,
            created_at_ms: unix_ms(shared.created_at()),
            options: spec.options.clone(),
            limits: Some(spec.limits),
        };
        Some(self.persist_with(store, Arc::new(record), None))
    }

    fn persist_with(
        &self,
        store: &Store,
        spec: Arc<SpecRecord>,
        resumed: Option<&crate::store::LiveRecord>,
    ) -> Persist {
        let c = &self.config.store;
        Persist::new(
            store.clone(),
            spec,
            resumed,
            Duration::from_millis(c.flush_interval_ms),
            c.transcript_cap_bytes,
        )
    }

    /// A live session with this owner and name, if any.
    fn live_named(&self, owner: &Owner, name: &str) -> Option<index::Entry> {
        let id = self.names.get(&(owner.clone(), name.to_owned()))?;
        self.index
            .entry(*id)
            .filter(|e| e.shared.state().is_live() && e.shared.state() != StateKind::Ending)
    }

    /// The next arbiter, round-robin, with its index.
    fn next_arbiter(&mut self) -> (usize, ArbiterHandle) {
        let slot = self.next_arbiter % self.arbiters.len();
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        (slot, self.arbiters[slot].clone())
    }

    /// The arbiter `prefer` names when it exists, else the next one round-robin, with its
    /// index.
    fn arbiter_for(&mut self, prefer: Option<usize>) -> (usize, ArbiterHandle) {
        match prefer.filter(|&k| k < self.arbiters.len()) {
            Some(k) => (k, self.arbiters[k].clone()),
            None => self.next_arbiter(),
        }
    }

    /// Starts the actor of a new session for `msg` and indexes it (and its name): returns
    /// its id, its address and where its start-up outcome arrives.
    fn start_session(
        &mut self,
        id: SessionId,
        msg: &Create,
        spec: SessionSpec,
        ctx: &mut Context<Self>,
    ) -> (Addr<session::Session>, oneshot::Receiver<Result<()>>) {
        self.seq += 1;
        let idle = msg
            .req
            .idle_timeout_ms
            .unwrap_or(self.session_config.idle_timeout_ms);
        let (slot, arbiter) = self.arbiter_for(msg.prefer_arbiter);
        let shared = Arc::new(Shared::new(
            id,
            msg.owner.clone(),
            spec.kind,
            msg.req.name.clone(),
            self.seq,
            idle,
            slot,
        ));
        let (ready_tx, ready_rx) = oneshot::channel();
        let persist = self.persist_for(&shared, &spec);
        let addr = session::start_on(
            &arbiter,
            Boot {
                shared: Arc::clone(&shared),
                spec,
                config: Arc::clone(&self.session_config),
                events: ctx.address().recipient(),
                ready: ready_tx,
                persist,
                resumed: None,
                via: msg.via,
                enforcer: Arc::clone(&self.enforcer),
            },
        );
        self.index.insert(index::Entry {
            addr: Some(addr.clone()),
            shared: Arc::clone(&shared),
        });
        if let Some(name) = &msg.req.name {
            self.names.insert((msg.owner.clone(), name.clone()), id);
        }
        (addr, ready_rx)
    }

    /// The directory an agent session `id` keeps its CLI's files in, when there is a store.
    fn agent_dir(&self, id: SessionId) -> Option<std::path::PathBuf> {
        self.store.as_ref().map(|s| s.agent_dir(id))
    }

    /// Creates a session; `parent` is the record of the session a fork continues.
    fn create(
        &mut self,
        mut msg: Create,
        parent: Option<crate::store::Record>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<SessionInfo>> {
        let _span = tracing::debug_span!("create", owner = %msg.owner).entered();
        if self.shutting_down {
            return Box::pin(actix::fut::ready(Err(Error::ShuttingDown)));
        }
        if self.index.draining() {
            return Box::pin(actix::fut::ready(Err(Error::Draining {
                node: crate::model::node::id().to_owned(),
            })));
        }
        let id = SessionId::new();
        let spec = (|| {
            let base_env = match &parent {
                Some(p) => agent::fork_request(&mut msg.req, p)?,
                None => self.base_env.clone(),
            };
            let mut spec = create::resolve(&self.config, &base_env, &msg.req)?;
            let default_cwd = msg.req.cwd.is_none();
            self.principals
                .apply(msg.owner.as_str(), &mut spec, default_cwd)?;
            agent::for_create(&self.config, &mut spec, self.agent_dir(id))?;
            if let Some(p) = &parent {
                agent::for_fork(&mut spec, p, self.agent_dir(p.spec.id))?;
            }
            Ok(spec)
        })();
        let spec = match spec {
            Ok(spec) => spec,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        if let Some(existing) = msg
            .req
            .name
            .as_deref()
            .and_then(|n| self.live_named(&msg.owner, n))
        {
            debug!(session = %existing.shared.id, "get-or-create: returning the live session");
            if let Some(addr) = existing.addr {
                return Box::pin(info_of(addr, existing.shared.id).into_actor(self));
            }
        }
        if let Err(short) = crate::process::check_session_room(self.config.runtime.fd_reserve) {
            return Box::pin(actix::fut::ready(Err(short.into())));
        }
        if let Err(e) = self.make_room(ctx) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let (addr, ready_rx) = self.start_session(id, &msg, spec, ctx);
        Box::pin(
            when_ready(ready_rx, addr, id)
                .into_actor(self)
                .map(move |res, act, _| {
                    if res.is_err() {
                        // A session that never started is forgotten, not listed as Failed.
                        act.purge(id);
                    }
                    res
                }),
        )
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let every = Duration::from_millis(self.config.runtime.sweep_interval_ms);
        ctx.run_interval(every, |act, ctx| act.sweep(ctx));
    }
}

impl Handler<Create> for Registry {
    type Result = ResponseActFuture<Self, Result<SessionInfo>>;

    fn handle(&mut self, msg: Create, ctx: &mut Self::Context) -> Self::Result {
        let Some(parent) = agent::fork_source(&msg.req) else {
            return self.create(msg, None, ctx);
        };
        // A fork reads the record of the session it continues (its own principal's only).
        if let Err(e) = self.index.get(&msg.owner, parent) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let record = self.read_record(parent);
        Box::pin(
            record
                .into_actor(self)
                .then(move |record, act, ctx| match record {
                    Ok(record) => act.create(msg, Some(record), ctx),
                    Err(e) => Box::pin(actix::fut::ready(Err(Error::invalid(
                        "agent.fork_from",
                        format!("cannot read session {parent}: {e}"),
                    )))),
                }),
        )
    }
}

async fn when_ready(
    ready: oneshot::Receiver<Result<()>>,
    addr: Addr<session::Session>,
    id: SessionId,
) -> Result<SessionInfo> {
    match ready.await {
        Ok(Ok(())) => info_of(addr, id).await,
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::ActorGone { id: id.to_string() }),
    }
}

async fn info_of(addr: Addr<session::Session>, id: SessionId) -> Result<SessionInfo> {
    addr.send(GetInfo)
        .await
        .map_err(|_| Error::ActorGone { id: id.to_string() })?
}

impl Handler<SessionEvent> for Registry {
    type Result = ();

    fn handle(&mut self, msg: SessionEvent, ctx: &mut Self::Context) {
        let now = unix_ms(SystemTime::now());
        match msg {
            SessionEvent::Settled(id) => {
                self.evicting.remove(&id);
                let Some(entry) = self.index.entry(id) else {
                    return;
                };
                entry.shared.set_settled(Some(now));
                let state = entry.shared.state();
                if state.is_terminal() {
                    self.forget_name(&entry.shared);
                }
                if self.store.is_some() && (state.is_terminal() || state == StateKind::Suspended) {
                    // Its record and transcript are in the store and its actor stops: reads
                    // are served from the store, and a resume starts a new actor.
                    self.index.detach(id);
                }
            }
            SessionEvent::Vanished(id) => {
                error!(session = %id, "session actor stopped unexpectedly; session marked Failed");
                if let Some(entry) = self.index.entry(id) {
                    entry.shared.set_settled(Some(now));
                    self.forget_name(&entry.shared);
                }
                let Some(store) = self.store.clone() else {
                    return;
                };
                ctx.spawn(
                    async move {
                        let record = store.off_thread(move |s| s.record(id)).await;
                        let lost = crate::model::state::Event::Fail(String::new());
                        if let Ok(Some(mut record)) = record {
                            // A record that already settled keeps its state.
                            let Ok(failed) = record.live.state.apply(&lost) else {
                                return;
                            };
                            record.live.state = failed;
                            record.live.state_detail =
                                "Failed (its actor stopped unexpectedly)".into();
                            record.live.settled_at_ms = Some(now);
                            store.put(record, Vec::new(), crate::store::When::Now);
                        }
                    }
                    .into_actor(self),
                );
            }
        }
    }
}

impl Handler<Shutdown> for Registry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let live: Vec<_> = self
            .index
            .all()
            .into_iter()
            .filter(|s| s.state().is_live())
            .filter_map(|s| self.index.entry(s.id))
            .filter_map(|e| Some((e.addr?, e.shared)))
            .collect();
        // With a store, sessions survive the restart as Suspended records; without one they end.
        let mode = if self.store.is_some() {
            EndMode::Shutdown
        } else {
            EndMode::End
        };
        info!(sessions = live.len(), "shutting down: ending every session");
        let store = self.store.clone();
        Box::pin(async move {
            let ends = live.iter().map(|(addr, _)| {
                addr.send(End {
                    grace_ms: None,
                    mode,
                    via: Via::Runtime,
                })
            });
            let ended = join_all(ends).await;
            if let Some(store) = store {
                if let Ok(Err(e)) = store.sync().await {
                    error!(error = %e, "the final store flush failed");
                }
            }
            for (res, (_, shared)) in ended.into_iter().zip(&live) {
                match res {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => {
                        warn!(session = %shared.id, error = %err, "ending at shutdown failed")
                    }
                    Err(err) => {
                        warn!(session = %shared.id, error = %err, "session gone at shutdown")
                    }
                }
            }
        })
    }
}
