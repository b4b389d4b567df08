//! The session actor: one per session, owning its child process, its state machine and its
//! output logs. Operations arrive as messages ([`messages`]); the kind-specific protocol lives
//! in a [`kind`] driver.
//!
//! Files: `mod.rs` the actor and its lifecycle; `io.rs` pipes in and out; `exec.rs` exec, its
//! queue and results; `control.rs` send, read, signal, end, info (the state machine is
//! `model/state.rs`); `output.rs` the capped log; `shared.rs` the lock-free summary the
//! registry indexes; `persist.rs` snapshots for the store; `stored.rs` answers for sessions
//! without a process; `kind/` the drivers, each kind in one place (`kind/repl/` with its
//! Python driver and namespace snapshots, `kind/debug/` with DAP framing and the client).

pub mod agent;
mod control;
mod exec;
mod io;
pub mod kind;
mod limits;
pub mod messages;
pub mod output;
mod persist;
pub(crate) mod shared;
pub(crate) mod terminal;
pub use crate::model::state;
pub(crate) mod stored;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::{oneshot, watch, Notify};
use tracing::{debug, info, warn};

pub use kind::repl::snapshot;
pub use kind::{debug, Kind, Stream};
pub use shared::{SessionSummary, Shared};
pub use state::{State, StateKind};

pub(crate) use self::control::page_size;
use self::exec::{Queued, Running};
use self::kind::{driver_for, Driver};
use self::messages::SessionEvent;
use self::messages::{Metrics, Timings};
use self::output::OutputLog;
pub(crate) use self::persist::Persist;
use self::shared::rfc3339;
use crate::config::SessionConfig;
use crate::model::audit::{push_audit, AuditAction, AuditEntry, Via, RUNTIME_PRINCIPAL};
use crate::model::limits::Limits;
use crate::process::limits::Enforcer;
use crate::process::{self, ExitStatus, Rlimits, Signal, SpawnSpec};
use crate::store::{LiveRecord, StoredAudit, When};
use crate::{Error, Result};

/// A fully resolved description of what a session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The kind.
    pub kind: Kind,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory at creation.
    pub cwd: PathBuf,
    /// Complete environment of the child.
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// Kind-specific options.
    pub options: kind::KindOptions,
    /// The Unix user its owner's sessions run as, if the config maps the owner to one.
    pub run_as: Option<process::RunAs>,
    /// Memory and process limits of the whole session.
    pub limits: Limits,
    /// An agent session with a profile: what this launch does with its conversation.
    pub agent: Option<agent::AgentLaunch>,
}

/// The live child and the parent ends of its pipes.
struct ChildIo {
    pid: u32,
    stdin: Option<Rc<tokio::net::unix::pipe::Sender>>,
    /// Read ends of stdout and stderr; each is closed (`None`) at its EOF, so an ended
    /// session holds no file descriptors.
    pipes: [Option<Rc<tokio::net::unix::pipe::Receiver>>; 2],
    exit: watch::Receiver<Option<ExitStatus>>,
    /// A terminal session's pseudo-terminal master, for resizing.
    terminal: Option<std::os::fd::OwnedFd>,
}

/// One session: an actix actor on one of the runtime's arbiters.
pub struct Session {
    shared: Arc<Shared>,
    spec: SessionSpec,
    config: Arc<SessionConfig>,
    state: State,
    driver: Box<dyn Driver>,
    child: Option<ChildIo>,
    logs: [OutputLog; 2],
    eof: [bool; 2],
    read_cursor: [u64; 2],
    writes: io::WriteQueue,
    running: Option<Running>,
    queue: VecDeque<Queued>,
    next_seq: u64,
    changed: Arc<Notify>,
    cwd: Option<String>,
    exit: Option<ExitStatus>,
    stderr_tail: Option<String>,
    metrics: Metrics,
    timings: Timings,
    events: Recipient<SessionEvent>,
    ready: Option<oneshot::Sender<Result<()>>>,
    persist: Option<Persist>,
    /// The DAP client of a debug session.
    debug: Option<debug::Debugger>,
    /// Who created, resumed, signalled, suspended and ended it.
    audit: Vec<AuditEntry>,
    /// Its limits: the cgroup of its child and what they have done.
    bounds: limits::Bounds,
    /// An agent session's conversation.
    agent: Option<agent::AgentState>,
}

/// Everything a session actor starts from.
#[derive(Debug)]
pub(crate) struct Boot {
    /// Identity and lock-free summary (shared with the index).
    pub shared: Arc<Shared>,
    /// What to run.
    pub spec: SessionSpec,
    /// Per-session settings.
    pub config: Arc<SessionConfig>,
    /// Where lifecycle reports go (the registry).
    pub events: Recipient<SessionEvent>,
    /// Told once the session is Ready or failed to start.
    pub ready: oneshot::Sender<Result<()>>,
    /// The link to the store, if snapshots are kept.
    pub persist: Option<Persist>,
    /// The stored record this session resumes from.
    pub resumed: Option<LiveRecord>,
    /// The door the create or resume came through (for the audit trail).
    pub via: Via,
    /// How its limits are enforced.
    pub enforcer: Arc<Enforcer>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("kind", &self.spec.kind)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session that will spawn its spec when started and report readiness.
    pub(crate) fn new(boot: Boot) -> Self {
        let Boot {
            shared,
            spec,
            config,
            events,
            ready,
            persist,
            resumed,
            via,
            enforcer,
        } = boot;
        let cap = config.output_cap_bytes;
        let ends = resumed.as_ref().map_or([0, 0], |r| r.output_end);
        // Until a kind reports another (the shell after each exec), the start directory.
        let cwd = resumed
            .as_ref()
            .and_then(|r| r.cwd.clone())
            .unwrap_or_else(|| spec.cwd.display().to_string());
        let mut session = Self {
            bounds: limits::Bounds::new(enforcer, spec.limits),
            driver: driver_for(spec.kind, &spec.options, &config, spec.agent.as_ref()),
            agent: spec.agent.as_ref().map(agent::AgentState::new),
            debug: debug::Debugger::new(&spec.options, &spec.cwd, resumed.as_ref()),
            shared,
            spec,
            config,
            state: State::Starting,
            child: None,
            logs: [
                OutputLog::starting_at(cap, ends[0]),
                OutputLog::starting_at(cap, ends[1]),
            ],
            eof: [false, false],
            read_cursor: ends,
            writes: io::WriteQueue::default(),
            running: None,
            queue: VecDeque::new(),
            next_seq: 0,
            changed: Arc::new(Notify::new()),
            cwd: Some(cwd),
            exit: None,
            stderr_tail: None,
            metrics: resumed
                .as_ref()
                .map_or_else(Metrics::default, |r| r.metrics.into()),
            timings: resumed
                .as_ref()
                .map_or_else(Timings::default, |r| r.timings.into()),
            events,
            ready: Some(ready),
            persist,
            audit: resumed.as_ref().map_or_else(Vec::new, |r| {
                r.audit.iter().filter_map(StoredAudit::entry).collect()
            }),
        };
        let action = if resumed.is_some() {
            AuditAction::Resumed
        } else {
            AuditAction::Created
        };
        session.audit(action, via, None);
        session
    }

    /// Adds an entry to the audit trail (and the log, at info level). The principal is the
    /// owner for a caller (only the owner reaches a session), the runtime's for its own
    /// actions.
    fn audit(&mut self, action: AuditAction, via: Via, signal: Option<Signal>) {
        let (id, owner) = (self.shared.id, &self.shared.owner);
        record_audit(&mut self.audit, id, owner, action, via, signal);
    }
}

/// Logs (at info) and appends to `trail` what was done to session `id` now. The principal is
/// its `owner` for a caller (only the owner reaches a session), the runtime's for its own
/// actions.
pub(crate) fn record_audit(
    trail: &mut Vec<AuditEntry>,
    id: crate::ids::SessionId,
    owner: &crate::ids::Owner,
    action: AuditAction,
    via: Via,
    signal: Option<Signal>,
) {
    let principal = match via {
        Via::Runtime => RUNTIME_PRINCIPAL.to_owned(),
        _ => owner.as_str().to_owned(),
    };
    tracing::info!(session = %id, %principal, via = via.as_str(), action = ?action, signal = signal.map(Signal::name), "audit");
    push_audit(
        trail,
        AuditEntry {
            action,
            principal,
            via,
            at: rfc3339(SystemTime::now()),
            signal: signal.map(|s| s.name().to_owned()),
        },
    );
}

impl Session {
    /// Applies `event` through the state machine; every state change goes through here.
    fn transition(&mut self, event: state::Event) -> Result<()> {
        let next = self.state.apply(&event)?;
        debug!(session = %self.shared.id, from = %self.state, to = %next, "transition");
        self.state = next;
        self.shared.set_state(self.state.kind());
        if self.state.kind().is_terminal() || self.state.kind() == StateKind::Suspended {
            self.shared.set_pid(None);
            self.persist(When::Now);
            self.events.do_send(SessionEvent::Settled(self.shared.id));
        }
        self.changed.notify_waiters();
        Ok(())
    }

    fn spawn_child(&mut self, ctx: &mut Context<Self>) -> Result<()> {
        let mut argv = self.spec.argv.clone();
        self.driver.prepare_argv(&mut argv);
        let program = || self.spec.argv.first().cloned().unwrap_or_default();
        let mut env = self.spec.env.clone();
        if let Some(launch) = &self.spec.agent {
            argv.extend(launch.args.iter().cloned());
            if let Some((var, dir)) = &launch.config_dir {
                agent::prepare_dir(dir, launch.copy_from.as_deref(), self.spec.run_as.as_ref())
                    .map_err(|e| Error::Spawn {
                        program: program(),
                        reason: format!(
                            "cannot make the agent's directory {} ({var}): {e}",
                            dir.display()
                        ),
                    })?;
                env.retain(|(k, _)| k != var);
                env.push((var.clone(), dir.display().to_string()));
            }
        }
        let mut rlimits = self.spec.rlimits.clone();
        let own_user = self.spec.run_as.as_ref().is_some_and(|u| u.uid != 0);
        let join = self
            .bounds
            .prepare(&mut rlimits, own_user)
            .map_err(|e| Error::Spawn {
                program: program(),
                reason: format!("cannot make the session's cgroup: {e}"),
            })?;
        let spawn_spec = SpawnSpec {
            argv,
            cwd: self.spec.cwd.clone(),
            env,
            rlimits,
            run_as: self.spec.run_as.clone(),
            join: process::limits::raw(&join),
            terminal: match &self.spec.options {
                kind::KindOptions::Terminal(t) => Some(process::pty::TermSize {
                    cols: t.cols,
                    rows: t.rows,
                }),
                _ => None,
            },
            batch: self.config.batch_scheduling,
        };
        let spawned = process::spawn(&spawn_spec);
        drop(join);
        self.bounds.spawned(spawned.as_ref().ok().map(|s| s.pid));
        let spawned = spawned.map_err(|e| Error::Spawn {
            program: program(),
            reason: spawn_reason(&e),
        })?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let stdin = Rc::new(spawned.stdin);
        if let Some(d) = &self.debug {
            d.attach(Rc::clone(&stdin));
        }
        self.child = Some(ChildIo {
            pid: spawned.pid,
            stdin: Some(stdin),
            pipes: [Some(Rc::new(spawned.stdout)), Some(Rc::new(spawned.stderr))],
            exit: exit_rx,
            terminal: spawned.terminal,
        });
        self.shared.set_pid(Some(spawned.pid));
        info!(session = %self.shared.id, kind = %self.spec.kind, pid = spawned.pid, "session started");
        let child = spawned.child;
        ctx.spawn(async move { child.wait().await }.into_actor(self).map(
            move |status, act, ctx| {
                let status = match status {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(session = %act.shared.id, error = %e, "waiting for child failed");
                        ExitStatus {
                            code: None,
                            signal: None,
                        }
                    }
                };
                let _ = exit_tx.send(Some(status));
                act.on_exit(status, ctx);
            },
        ));
        self.arm_reader(Stream::Stdout, ctx);
        self.arm_reader(Stream::Stderr, ctx);
        Ok(())
    }

    /// Reports the start-up outcome to the creator, once.
    fn report_ready(&mut self, outcome: Result<()>) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(outcome);
        }
    }

    fn start_failed(&mut self, err: Error, ctx: &mut Context<Self>) {
        warn!(session = %self.shared.id, error = %err, "session failed to start");
        let _ = self.transition(state::Event::Fail(err.to_string()));
        self.report_ready(Err(err));
        self.kill_now();
        ctx.stop();
    }

    /// The child exited: drain what it wrote, settle the running exec and the state.
    fn on_exit(&mut self, status: ExitStatus, ctx: &mut Context<Self>) {
        debug!(session = %self.shared.id, %status, "child exited");
        // A debug session's exit status is its program's, when the adapter reported it.
        let status = self.debugger_exited(status);
        self.exit = Some(status);
        self.drain(Stream::Stdout);
        self.drain(Stream::Stderr);
        for s in [Stream::Stdout, Stream::Stderr] {
            let (driver, logs) = (&mut self.driver, &mut self.logs);
            driver.flush(s, &mut |b| logs[s.index()].append(b, |_, _| {}));
        }
        self.stderr_tail = Some(self.tail_text(Stream::Stderr, 2048));
        if let Some(child) = &mut self.child {
            child.stdin = None;
        }
        if self.state.kind() == StateKind::Starting {
            let noise = self.driver.startup_noise();
            let err = Error::StartFailed {
                reason: format!("the child exited during start-up ({status}): {noise}"),
            };
            if self.ready.is_some() {
                self.start_failed(err, ctx);
                return;
            }
        }
        let reached = self.bounds.check();
        let refused = match self.state.kind() {
            StateKind::Starting | StateKind::Ready | StateKind::Busy => {
                let stderr = self.stderr_tail.as_deref().unwrap_or_default();
                let a = self.agent.as_mut();
                a.and_then(|a| {
                    a.refusal = a.refused(&status.to_string(), stderr);
                    a.refusal.clone()
                })
            }
            _ => None,
        };
        self.finish_running_on_exit(status);
        self.bounds.release(true);
        self.fail_queue();
        if let Some(why) = refused {
            warn!(session = %self.shared.id, reason = %why, "the agent refused to continue its conversation; the session is Suspended");
            self.audit(AuditAction::Suspended, Via::Runtime, None);
            let _ = self.transition(state::Event::Unresumed(why));
            ctx.run_later(RETIRE_AFTER, |act, ctx| act.retire_if_settled(ctx));
            return;
        }
        let _ = self.transition(match reached {
            // The memory limit killed the session's own process: say so, not just "SIGKILL".
            Some(r) if status.signal == Some(libc::SIGKILL) && r.starts_with("memory") => {
                state::Event::Fail(format!("{r}, the session's own process among them"))
            }
            _ => state::Event::Exited(Some(status)),
        });
        // Callers woken by the exit (an end waiting for it, long-poll reads) answer first.
        ctx.run_later(RETIRE_AFTER, |act, ctx| act.retire_if_settled(ctx));
    }

    /// Stops the actor of a session that has settled (Ended, Failed or Suspended) when its
    /// record and transcript are in the store: what it knows is read from there, so an
    /// ended session costs an index entry, not an actor and its logs.
    pub(super) fn retire_if_settled(&mut self, ctx: &mut Context<Self>) {
        let state = self.state.kind();
        if self.persist.is_some() && (state.is_terminal() || state == StateKind::Suspended) {
            ctx.stop();
        }
    }

    /// Last `max` bytes of a stream as text.
    fn tail_text(&self, stream: Stream, max: usize) -> String {
        let log = &self.logs[stream.index()];
        let from = log.end().saturating_sub(max as u64);
        String::from_utf8_lossy(&log.read(from, max).data)
            .trim_end()
            .to_owned()
    }

    /// SIGKILL to the group without waiting: the floor under every other way of ending.
    fn kill_now(&mut self) {
        if let Some(child) = &self.child {
            if child.exit.borrow().is_none() {
                process::signal_group(child.pid, Signal::Kill);
            }
        }
        if let Some(g) = self.debug.as_ref().and_then(|d| d.program_group()) {
            process::signal_group(g, Signal::Kill);
        }
    }

    /// Writes the driver's start-up bytes (Ready follows when the driver says so), or becomes
    /// Ready at once for a kind without a handshake.
    fn start_up(&mut self, ctx: &mut Context<Self>) {
        if self.debug.is_some() {
            self.start_debugger(ctx);
            self.startup_timer(ctx);
            return;
        }
        match self.driver.startup() {
            Some(bytes) => match self.write(bytes, ctx) {
                Ok(_) => self.startup_timer(ctx),
                Err(e) => self.start_failed(e, ctx),
            },
            None => {
                let _ = self.transition(state::Event::Started);
                self.persist(When::Now);
                self.report_ready(Ok(()));
            }
        }
    }

    fn startup_timer(&mut self, ctx: &mut Context<Self>) {
        let ms = self.config.startup_timeout_ms;
        ctx.run_later(Duration::from_millis(ms), move |act, ctx| {
            if act.state.kind() == StateKind::Starting {
                let detail = act.driver.startup_noise();
                act.start_failed(Error::StartupTimeout { ms, detail }, ctx);
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Children are spawned here, on the session's own arbiter: their pipes belong to this
        // thread's reactor, and PR_SET_PDEATHSIG is tied to this long-lived thread.
        ctx.set_mailbox_capacity(64);
        if let Err(e) = self.spawn_child(ctx) {
            self.start_failed(e, ctx);
            return;
        }
        // A resumed REPL loads its namespace snapshot first, then starts up (snapshot.rs).
        if !self.restore_namespace(ctx) {
            self.start_up(ctx);
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        debug!(session = %self.shared.id, "session actor stopped");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // An actor that dies while its session is live (a panic in a handler) must not leave
        // its process behind or its record pretending to be healthy.
        let lost = state::Event::Fail("its actor stopped unexpectedly".into());
        if let Ok(next) = self.state.apply(&lost) {
            self.kill_now();
            self.state = next;
            self.shared.set_state(self.state.kind());
            self.shared.set_pid(None);
            self.events.do_send(SessionEvent::Vanished(self.shared.id));
        }
    }
}

/// How long a settled session's actor stays after its process exited on its own, so that
/// callers already woken by the exit get their answers from it.
const RETIRE_AFTER: Duration = Duration::from_millis(100);

/// Builds a `Session` on the arbiter and returns its address.
pub(crate) fn start_on(arbiter: &actix::ArbiterHandle, boot: Boot) -> Addr<Session> {
    Session::start_in_arbiter(arbiter, move |_| Session::new(boot))
}

fn spawn_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "program not found (not on PATH or no such file)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied (not executable?)".into(),
        _ => e.to_string(),
    }
}

/// Monotonic milliseconds between two instants.
pub(crate) fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
