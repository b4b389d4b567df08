//! Starting the runtime inside an actix System, and the cloneable [`Handle`] through which
//! callers (the MCP front end, embedding applications, tests) use it.

use std::sync::Arc;

use actix::prelude::*;
use actix::ArbiterHandle;
use tracing::{info, warn};

use crate::config::{Config, Durability};
use crate::ids::{Owner, SessionId};
pub use crate::model::audit::Via;
use crate::process::{self, Signal};
use crate::registry::{
    self, Create, EndRecord, Entry, Index, ListRequest, ListResult, Registry, Resume, Shutdown,
};
use crate::session::messages::{
    BreakpointsResult, Continue, CreateRequest, DebugOutcome, End, EndResult, Evaluate,
    EvaluateResult, Exec, ExecResult, GetInfo, Pause, Read, ReadResult, SendInput, SendResult,
    SendSignal, SessionInfo, SetBreakpoints, SignalResult, Step, TerminalResize, TerminalScreen,
    TerminalSend, TerminalView,
};
use crate::session::snapshot::{NamespaceSnapshot, SnapshotNamespace};
use crate::session::state::{Event, Refused};
use crate::session::{stored, Kind, Session, StateKind};
use crate::store::{Store, StoreStats};
use crate::tasks::Tasks;
use crate::{Error, Result};

/// A running runtime: the registry, the session arbiters, and a handle to use them.
#[derive(Debug)]
pub struct Runtime {
    handle: Handle,
    arbiters: Vec<Arbiter>,
}

impl Runtime {
    /// Starts the runtime in the current actix System: one arbiter per configured core for
    /// sessions, and the registry on the current arbiter.
    ///
    /// # Panics
    /// When called outside a running actix System.
    pub fn start(config: Config) -> Result<Self> {
        config
            .validate()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        if config.runtime.subreaper {
            match process::become_subreaper() {
                Ok(()) => {
                    if let Err(e) = process::reaper::start() {
                        warn!(error = %e, "cannot start the reaper; orphans adopted as a child subreaper stay zombies");
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot become a child subreaper; orphaned grandchildren are left to init");
                }
            }
        }
        // A file-size limit must be an error the store reports, not a signal that kills the
        // process (children get the default back).
        process::ignore_file_size_signal();
        if config.runtime.guardian {
            if let Err(e) = process::guardian::start() {
                warn!(error = %e, "cannot start the guardian; processes of sessions may outlive a killed server");
            }
        }
        let (store, records) =
            Store::open(&config.store).map_err(|e| Error::Store(e.to_string()))?;
        let node = node_id(&config, store.stats().path.as_deref())?;
        info!(
            node,
            "node id: the prefix of every handle this server hands out"
        );
        let tasks = Tasks::load(store.clone(), config.tasks.clone())?;
        actix::spawn(crate::tasks::sweep_loop(
            Arc::downgrade(&tasks),
            std::time::Duration::from_millis(config.runtime.sweep_interval_ms),
        ));
        let principals = crate::registry::principals::Principals::resolve(
            &config,
            &crate::registry::principals::base_dir(&config),
        )?;
        let enforcer = Arc::new(
            process::limits::Enforcer::new(config.session.limits.mechanism)
                .map_err(|e| Error::invalid("config", e))?,
        );
        let l = &config.session.limits;
        info!(
            mechanism = enforcer.mechanism().as_str(),
            memory_mib = l.memory_mib,
            processes = l.processes,
            "session limits: {}",
            enforcer.describe()
        );
        let n = config.arbiter_count();
        let arbiters: Vec<Arbiter> = (0..n).map(|_| Arbiter::new()).collect();
        for (slot, arbiter) in arbiters.iter().enumerate() {
            arbiter.spawn(async move { CURRENT_ARBITER.set(Some(slot)) });
        }
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let config = Arc::new(config);
        let index = Arc::new(Index::default());
        let registry = Registry::new(Arc::clone(&config), Arc::clone(&index), handles.clone())
            .with_store(store.clone(), records)
            .with_principals(principals)
            .with_limits(Arc::clone(&enforcer))
            .start();
        info!(
            arbiters = n,
            max_sessions = config.runtime.max_sessions,
            durability = ?config.store.durability,
            "stablehand runtime started"
        );
        Ok(Self {
            handle: Handle {
                registry,
                index,
                owner: Owner::default(),
                durable: config.store.durability == Durability::Always,
                config,
                arbiters: handles.into(),
                store,
                via: Via::Library,
                limits: enforcer,
                tasks,
            },
            arbiters,
        })
    }

    /// A handle acting for the default local owner.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Ends every session (TERM, grace, KILL, reap), keeping each live one as a Suspended
    /// record, writes everything to the store, and stops the session arbiters.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
        self.handle.store.close();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// The file in a data dir that remembers the node id it is served under.
pub const NODE_FILE: &str = "node-id";

/// This node's id: the configured one, else the one the data dir remembers, else the host
/// name's. A data dir keeps the id its handles were given: another explicit id is refused.
/// Sets the process's node id (the first runtime's stays).
fn node_id(config: &Config, dir: Option<&std::path::Path>) -> Result<String> {
    let file = dir.map(|d| d.join(NODE_FILE));
    let remembered = file
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| crate::model::node::check(s).is_ok());
    let id = match (&config.runtime.node_id, &remembered) {
        (Some(asked), Some(had)) if asked != had => {
            return Err(Error::invalid(
                "runtime.node_id",
                format!(
                    "the data dir {} belongs to node {had:?} (the handles of its sessions name \
                     it): start it with --node-id {had}, or give node {asked:?} a data dir of \
                     its own",
                    dir.map_or_else(String::new, |d| d.display().to_string())
                ),
            ))
        }
        (Some(asked), _) => asked.clone(),
        (None, Some(had)) => had.clone(),
        (None, None) => crate::model::node::default_id(),
    };
    if let (Some(f), None) = (&file, &remembered) {
        std::fs::write(f, format!("{id}\n"))
            .map_err(|e| Error::Store(format!("cannot write {}: {e}", f.display())))?;
    }
    let in_force = crate::model::node::set(&id);
    if in_force != id {
        warn!(
            node = in_force,
            asked = id,
            "this process already serves as another node: its id stays"
        );
    }
    Ok(in_force.to_owned())
}

/// How sessions' limits are enforced, with the configured defaults and maxima.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LimitsSummary {
    /// `cgroup-v2`, `cgroup-v1`, `rlimit` or `off`.
    pub mechanism: crate::model::limits::Mechanism,
    /// What that covers, in words.
    pub detail: String,
    /// Default memory of a session, MiB.
    pub memory_mib: u64,
    /// Default process limit of a session.
    pub processes: u64,
    /// The most memory a session may ask for, MiB.
    pub max_memory_mib: u64,
    /// The most processes a session may ask for.
    pub max_processes: u64,
}

/// A cloneable, `Send` handle to the runtime, acting for one owner. Operations on existing
/// sessions go straight to the session's actor; only create and shutdown visit the registry.
#[derive(Debug, Clone)]
pub struct Handle {
    registry: Addr<Registry>,
    index: Arc<Index>,
    owner: Owner,
    config: Arc<Config>,
    arbiters: Arc<[ArbiterHandle]>,
    store: Store,
    /// Every acknowledged change waits for the store's flush (`durability = "always"`).
    durable: bool,
    /// The door this handle's calls come through, for the audit trail.
    via: Via,
    /// How sessions' memory and process limits are enforced.
    limits: Arc<process::limits::Enforcer>,
    /// The runtime's tasks (every principal's; methods take the owner).
    tasks: Arc<Tasks>,
}

thread_local! {
    /// The index of the session arbiter this thread is, if it is one.
    static CURRENT_ARBITER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Spawns `fut` as a task of this thread: on a session arbiter a local task, so the wakes
/// between it and the actors of the same thread stay in the thread's run queue (a task
/// spawned on the runtime instead wakes the thread's reactor with a syscall for every
/// message it sends to an actor); elsewhere a runtime task.
pub(crate) fn spawn_here<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    if CURRENT_ARBITER.get().is_some() {
        tokio::task::spawn_local(fut)
    } else {
        tokio::spawn(fut)
    }
}

impl Handle {
    /// The same runtime, acting for `owner`: it sees and touches only `owner`'s sessions.
    pub fn with_owner(&self, owner: Owner) -> Handle {
        Handle {
            owner,
            ..self.clone()
        }
    }

    /// This handle with the door its calls come through named in the audit trail (a front
    /// end sets it; an embedding program's calls are [`Via::Library`]).
    pub fn with_via(&self, via: Via) -> Handle {
        Handle {
            via,
            ..self.clone()
        }
    }

    /// Stops (`true`) or resumes taking new sessions: while draining, `create` is refused
    /// with [`Error::Draining`] and every existing session keeps working, so a node can be
    /// emptied before an upgrade. The binary drains on SIGUSR1 and resumes on SIGUSR2.
    pub fn set_draining(&self, on: bool) {
        if self.index.draining() != on {
            info!(
                node = crate::model::node::id(),
                draining = on,
                "{}",
                if on {
                    "draining: no new sessions"
                } else {
                    "ready: taking new sessions"
                }
            );
        }
        self.index.set_draining(on);
    }

    /// True while the node takes no new sessions ([`Handle::set_draining`]).
    pub fn draining(&self) -> bool {
        self.index.draining()
    }

    /// The owner this handle acts for.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The runtime's tasks: operations whose outcome outlives their call. Its methods take
    /// the owner; pass [`Handle::owner`].
    pub fn tasks(&self) -> &Arc<Tasks> {
        &self.tasks
    }

    /// The configuration the runtime runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The session arbiters. Front ends may run connections on them, so that a client's
    /// requests to sessions created over that connection never cross threads.
    pub fn arbiters(&self) -> &[ArbiterHandle] {
        &self.arbiters
    }

    /// The registry actor, for callers that prefer messages.
    pub fn registry(&self) -> &Addr<Registry> {
        &self.registry
    }

    /// The address of one of this owner's sessions, for callers that prefer messages. A
    /// session without a process (Suspended) has none.
    pub fn addr(&self, id: SessionId) -> Result<Addr<Session>> {
        let entry = self.index.get(&self.owner, id)?;
        entry
            .addr
            .clone()
            .ok_or_else(|| no_process("be messaged", &entry))
    }

    /// Changes of one of this owner's sessions (its output grew, its state changed): the
    /// value counts them. It follows the session across a resume and closes when the session
    /// is purged.
    pub fn changes(&self, id: SessionId) -> Result<tokio::sync::watch::Receiver<u64>> {
        Ok(self.index.get(&self.owner, id)?.shared.changes())
    }

    /// Creates a session (or returns the live one with the same name) and waits until it is
    /// Ready.
    pub async fn create(&self, req: CreateRequest) -> Result<SessionInfo> {
        let info = self
            .registry
            .send(Create {
                owner: self.owner.clone(),
                via: self.via,
                req,
                // Called from a session arbiter (a front-end connection runs there): place the
                // session on the same thread.
                prefer_arbiter: CURRENT_ARBITER.get(),
            })
            .await
            .map_err(|_| Error::ShuttingDown)??;
        self.durable_ok(info).await
    }

    /// Resumes a Suspended session: the same spec is spawned again (a shell in its last
    /// working directory) under the same id, keeping its transcript and counters.
    pub async fn resume(&self, id: SessionId) -> Result<SessionInfo> {
        self.resume_with(id, false).await
    }

    /// [`Handle::resume`]; with `fresh`, an agent session starts a new conversation instead
    /// of continuing its own (its `agent_session_id` is forgotten).
    pub async fn resume_with(&self, id: SessionId, fresh: bool) -> Result<SessionInfo> {
        let info = self
            .registry
            .send(Resume {
                owner: self.owner.clone(),
                via: self.via,
                id,
                prefer_arbiter: CURRENT_ARBITER.get(),
                fresh,
            })
            .await
            .map_err(|_| Error::ShuttingDown)??;
        self.durable_ok(info).await
    }

    /// Runs a command (shell) or writes a line and collects what follows (process).
    pub async fn exec(&self, id: SessionId, req: Exec) -> Result<ExecResult> {
        let result = self.call(id, "exec", req).await?;
        self.durable_ok(result).await
    }

    /// Runs a command like [`Handle::exec`]; when `cancel` fires, its command is interrupted
    /// if it runs, or it leaves the queue if it waits (another exec is never touched), and
    /// the call ends with [`Error::Cancelled`].
    pub async fn exec_until(
        &self,
        id: SessionId,
        req: Exec,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<ExecResult> {
        let msg = crate::session::messages::ExecUntil { exec: req, cancel };
        let result = self.call(id, "exec", msg).await?;
        self.durable_ok(result).await
    }

    /// Writes to the session's stdin.
    pub async fn send(&self, id: SessionId, req: SendInput) -> Result<SendResult> {
        let result = self.call(id, "send", req).await?;
        self.durable_ok(result).await
    }

    /// Reads output by cursor, optionally long-polling. A Suspended session's output comes
    /// from its stored transcript.
    pub async fn read(&self, id: SessionId, req: Read) -> Result<ReadResult> {
        let entry = self.index.get(&self.owner, id)?;
        if let Some(result) = self.try_actor(&entry, req.clone()).await {
            return result;
        }
        let max = crate::session::page_size(&req)?;
        let shared = Arc::clone(&entry.shared);
        self.store
            .off_thread(move |store| {
                let record = stored_record(store, id)?;
                let mut page = stored::Page::new(&record, &req, max);
                store
                    .scan_events(id, |e| page.push(e))
                    .map_err(|e| Error::Store(e.to_string()))?;
                Ok(page.finish(&shared, &record))
            })
            .await
    }

    /// State, timings and metrics of a session.
    pub async fn state(&self, id: SessionId) -> Result<SessionInfo> {
        let entry = self.index.get(&self.owner, id)?;
        if let Some(result) = self.try_actor(&entry, GetInfo).await {
            return result;
        }
        let shared = Arc::clone(&entry.shared);
        self.store
            .off_thread(move |store| Ok(stored::info(&shared, &stored_record(store, id)?)))
            .await
    }

    /// Types text and keys into a terminal session, then waits for its screen.
    pub async fn terminal_send(&self, id: SessionId, req: TerminalSend) -> Result<TerminalView> {
        self.call(id, "terminal_send", req).await
    }

    /// The screen of a terminal session. A terminal without a process (Suspended, or
    /// stopped) answers with the screen it stored last.
    pub async fn terminal_screen(
        &self,
        id: SessionId,
        req: TerminalScreen,
    ) -> Result<TerminalView> {
        let entry = self.index.get(&self.owner, id)?;
        if let Some(result) = self.try_actor(&entry, req.clone()).await {
            return result;
        }
        let shared = Arc::clone(&entry.shared);
        if shared.kind != Kind::Terminal {
            return Err(Error::Unsupported {
                op: "terminal_screen",
                kind: shared.kind,
            });
        }
        self.store
            .off_thread(move |store| {
                let state = shared.state();
                let blob = store
                    .blob(id, crate::session::terminal::SCREEN_BLOB)
                    .map_err(|e| Error::Store(e.to_string()))?
                    .ok_or_else(|| {
                        Error::WrongState(Refused {
                            verb: "terminal_screen",
                            current: state.to_string(),
                            needed: "live or Suspended (an ended terminal's output stays \
                                     readable with read)",
                        })
                    })?;
                let lines = req.scrollback as usize;
                crate::session::terminal::stored_view(&blob, lines, state)
            })
            .await
    }

    /// Resizes a terminal session.
    pub async fn terminal_resize(
        &self,
        id: SessionId,
        req: TerminalResize,
    ) -> Result<TerminalView> {
        self.call(id, "terminal_resize", req).await
    }

    /// Sends a signal to the session's process group.
    pub async fn signal(&self, id: SessionId, signal: Signal) -> Result<SignalResult> {
        let req = SendSignal {
            signal,
            via: self.via,
            until_exec_ends: false,
        };
        let result = self.call(id, "signal", req).await?;
        self.durable_ok(result).await
    }

    /// Interrupts the exec running now (SIGINT), again every 500 ms while that same exec
    /// still runs (at most four interrupts): for a caller that gave up on the exec.
    pub async fn interrupt_exec(&self, id: SessionId) -> Result<SignalResult> {
        let req = SendSignal {
            signal: Signal::Int,
            via: self.via,
            until_exec_ends: true,
        };
        let result = self.call(id, "signal", req).await?;
        self.durable_ok(result).await
    }

    /// Ends a session: TERM to its process group, KILL after the grace period, reap. A
    /// Suspended session has no process and simply becomes Ended.
    pub async fn end(&self, id: SessionId, mut req: End) -> Result<EndResult> {
        req.via = self.via;
        let entry = self.index.get(&self.owner, id)?;
        let result = if let Some(result) = self.try_actor(&entry, req).await {
            result?
        } else {
            self.registry
                .send(EndRecord {
                    owner: self.owner.clone(),
                    via: self.via,
                    id,
                })
                .await
                .map_err(|_| Error::ShuttingDown)??
        };
        self.durable_ok(result).await
    }

    /// REPL sessions: saves the namespace to the store now (a resume restores the latest
    /// snapshot); it queues behind a running exec.
    pub async fn snapshot_namespace(
        &self,
        id: SessionId,
        req: SnapshotNamespace,
    ) -> Result<NamespaceSnapshot> {
        let result = self.call(id, "snapshot", req).await?;
        self.durable_ok(result).await
    }

    /// Debug sessions: sets the breakpoints of one file, replacing the ones it had.
    pub async fn debug_set_breakpoints(
        &self,
        id: SessionId,
        req: SetBreakpoints,
    ) -> Result<BreakpointsResult> {
        let result = self.call(id, "set breakpoints", req).await?;
        self.durable_ok(result).await
    }

    /// Debug sessions: runs the program until it stops or ends (or waits for the next stop
    /// while it runs).
    pub async fn debug_continue(&self, id: SessionId, req: Continue) -> Result<DebugOutcome> {
        self.call(id, "continue", req).await
    }

    /// Debug sessions: steps the paused program (in, over or out).
    pub async fn debug_step(&self, id: SessionId, req: Step) -> Result<DebugOutcome> {
        self.call(id, "step", req).await
    }

    /// Debug sessions: pauses the running program.
    pub async fn debug_pause(&self, id: SessionId, req: Pause) -> Result<DebugOutcome> {
        self.call(id, "pause", req).await
    }

    /// Debug sessions: evaluates an expression in a frame of the paused program.
    pub async fn debug_evaluate(&self, id: SessionId, req: Evaluate) -> Result<EvaluateResult> {
        self.call(id, "evaluate", req).await
    }

    /// The store (test and tooling support).
    #[doc(hidden)]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the store restored at start, what it skipped, and its counters.
    pub fn store_stats(&self) -> StoreStats {
        self.store.stats()
    }

    /// How sessions' memory and process limits are enforced, the configured defaults and
    /// maxima, in the form `stablehand://metrics` shows.
    pub fn limits(&self) -> LimitsSummary {
        let l = &self.config.session.limits;
        LimitsSummary {
            mechanism: self.limits.mechanism(),
            detail: self.limits.describe(),
            memory_mib: l.memory_mib,
            processes: l.processes,
            max_memory_mib: l.max_memory_mib,
            max_processes: l.max_processes,
        }
    }

    /// Lists this owner's sessions, newest first. Reads the index; no actor is asked.
    pub fn list(&self, req: &ListRequest) -> Result<ListResult> {
        registry::list(&self.index, &self.owner, req)
    }

    /// Number of sessions in each state, over all owners.
    pub fn counts(&self) -> Vec<(StateKind, usize)> {
        let all = self.index.all();
        StateKind::ALL
            .iter()
            .map(|&k| (k, all.iter().filter(|s| s.state() == k).count()))
            .collect()
    }

    /// Ends every session and refuses new ones.
    pub async fn shutdown(&self) {
        let _ = self.registry.send(Shutdown).await;
    }

    async fn call<M, R>(&self, id: SessionId, verb: &'static str, msg: M) -> Result<R>
    where
        M: Message<Result = Result<R>> + Send + 'static,
        R: Send + 'static,
        Session: Handler<M>,
    {
        let entry = self.index.get(&self.owner, id)?;
        match self.try_actor(&entry, msg).await {
            Some(result) => result,
            None => Err(no_process(verb, &entry)),
        }
    }

    /// Sends `msg` to the session's actor; `None` when it has none (any more) because the
    /// session is a stored record.
    async fn try_actor<M, R>(&self, entry: &Entry, msg: M) -> Option<Result<R>>
    where
        M: Message<Result = Result<R>> + Send + 'static,
        R: Send + 'static,
        Session: Handler<M>,
    {
        let addr = entry.addr.as_ref().filter(|a| a.connected())?;
        match addr.send(msg).await {
            Ok(result) => Some(result),
            // The actor died while its session was live: a crash, reported as such.
            Err(_) if entry.shared.state().is_live() => {
                let lost = Event::Fail("its actor stopped unexpectedly".into());
                if let Ok(failed) = entry.shared.state().apply(&lost) {
                    entry.shared.set_state(failed);
                }
                Some(Err(Error::ActorGone {
                    id: entry.shared.id.to_string(),
                }))
            }
            // The actor stopped after its session settled (Suspended, or Failed by a crash
            // already reported): the record lives on in the store.
            Err(_) => None,
        }
    }

    /// With `durability = "always"`, waits until the change behind `value` is on disk.
    async fn durable_ok<T>(&self, value: T) -> Result<T> {
        if self.durable {
            match self.store.sync().await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Store(e.to_string())),
                Err(_) => return Err(Error::Store("the store writer stopped".into())),
            }
        }
        Ok(value)
    }
}

/// A session's stored record (blocking: call it off the runtime's threads).
fn stored_record(store: &Store, id: SessionId) -> Result<crate::store::Record> {
    store
        .record(id)
        .map_err(|e| Error::Store(e.to_string()))?
        .ok_or_else(|| Error::Store(format!("session {id} has no stored record")))
}

/// The refusal for an operation on a session that has no process.
fn no_process(verb: &'static str, entry: &Entry) -> Error {
    let state = entry.shared.state();
    Error::WrongState(Refused {
        verb,
        current: state.to_string(),
        needed: if state == StateKind::Suspended {
            "live: resume it first"
        } else {
            "live"
        },
    })
}
