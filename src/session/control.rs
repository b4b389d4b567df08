//! Operations other than exec: send, read (with long-poll), info, signal, end.

use std::time::{Duration, UNIX_EPOCH};

use actix::prelude::*;
use tracing::debug;

use super::messages::{
    Crash, End, EndMode, EndResult, GetInfo, Read, ReadResult, SendInput, SendResult, SendSignal,
    SessionInfo, SignalResult,
};
use super::shared::rfc3339;
use super::state::{Event, Refused};
use super::{Kind, Session, StateKind};
use crate::model::audit::{AuditAction, Via};
use crate::process::{self, Signal};
use crate::store::When;
use crate::{Error, Result};

/// Default page size for reads.
pub(crate) const DEFAULT_MAX_BYTES: usize = 64 * 1024;
/// Largest page a read may ask for.
pub(crate) const MAX_MAX_BYTES: usize = 16 * 1024 * 1024;

/// The page size a read asks for, checked and capped.
pub(crate) fn page_size(msg: &Read) -> Result<usize> {
    match msg.max_bytes.unwrap_or(DEFAULT_MAX_BYTES) {
        0 => Err(Error::invalid("max_bytes", "must be at least 1")),
        n => Ok(n.min(MAX_MAX_BYTES)),
    }
}
/// Longest grace period an end may ask for.
const MAX_GRACE_MS: u64 = 10 * 60 * 1000;

impl Session {
    /// Refuses `verb` unless a child is running.
    pub(super) fn require_live(&self, verb: &'static str) -> Result<u32> {
        let live = matches!(
            self.state.kind(),
            StateKind::Starting | StateKind::Ready | StateKind::Busy | StateKind::Paused
        );
        match (&self.child, live) {
            (Some(child), true) => Ok(child.pid),
            _ => Err(Refused {
                verb,
                current: self.state.to_string(),
                needed: "Starting, Ready, Busy or Paused",
            }
            .into()),
        }
    }

    /// Everything known about the session.
    pub(super) fn info(&self) -> SessionInfo {
        let exit = self.exit;
        SessionInfo {
            session_id: self.shared.id,
            name: self.shared.name().map(str::to_owned),
            kind: self.spec.kind,
            state: self.state.kind(),
            state_detail: self.state.to_string(),
            pid: self.shared.pid(),
            exit_code: exit.and_then(|e| e.code),
            signal: exit.and_then(|e| e.signal).map(Signal::name_of),
            stderr_tail: self.stderr_tail.clone(),
            cwd: self.cwd.clone(),
            command: self.spec.argv.clone(),
            created_at: rfc3339(self.shared.created_at()),
            last_active_at: rfc3339(
                UNIX_EPOCH + Duration::from_millis(self.shared.last_active_ms()),
            ),
            arbiter: self.shared.arbiter(),
            timings: self.timings,
            metrics: self.metrics,
            last_stop: self.debug.as_ref().and_then(|d| d.last_stop()),
            audit: self.audit.clone(),
            limits: Some(self.bounds.info()),
            agent_session_id: self
                .agent
                .as_ref()
                .and_then(|a| a.record.session_id.clone()),
            agent_conversation: self
                .agent
                .as_ref()
                .map(|a| a.record.note.clone())
                .filter(|n| !n.is_empty()),
        }
    }

    fn read_now(&mut self, msg: &Read, cursor: u64, max: usize) -> ReadResult {
        let i = msg.stream.index();
        let log = &self.logs[i];
        let slice = log.read(cursor, max);
        self.read_cursor[i] = slice.next;
        let (data, lossy) = super::output::lossy_text(slice.data);
        ReadResult {
            data,
            cursor: slice.next,
            dropped_bytes: slice.dropped,
            lossy,
            eof: self.eof[i] && slice.next == log.end(),
            state: self.state.kind(),
            exit_code: self.exit.and_then(|e| e.code),
        }
    }

    /// Answers now if there is output at `cursor` (or nothing more can come, or time is up);
    /// otherwise waits for the next change and looks again.
    fn long_poll(
        &mut self,
        msg: Read,
        cursor: u64,
        max: usize,
        deadline: tokio::time::Instant,
    ) -> ResponseActFuture<Self, Result<ReadResult>> {
        let i = msg.stream.index();
        let waiting = cursor >= self.logs[i].end()
            && !self.eof[i]
            && tokio::time::Instant::now() < deadline
            && !self.state.kind().is_terminal();
        if !waiting {
            let result = self.read_now(&msg, cursor, max);
            return Box::pin(actix::fut::ready(Ok(result)));
        }
        let changed = self.changed.clone().notified_owned();
        Box::pin(
            async move {
                let _ = tokio::time::timeout_at(deadline, changed).await;
            }
            .into_actor(self)
            .then(move |(), act, _| act.long_poll(msg, cursor, max, deadline)),
        )
    }

    fn end_result(&self) -> EndResult {
        EndResult {
            ended: !self.state.kind().is_live(),
            exit_code: self.exit.and_then(|e| e.code),
            signal: self.exit.and_then(|e| e.signal).map(Signal::name_of),
            state: self.state.kind(),
        }
    }
}

impl Handler<SendInput> for Session {
    type Result = ResponseActFuture<Self, Result<SendResult>>;

    fn handle(&mut self, msg: SendInput, _: &mut Self::Context) -> Self::Result {
        let _span = tracing::debug_span!("send", session = %self.shared.id).entered();
        if let Err(e) = self.require_live("send") {
            return self.refuse(e);
        }
        if self.debug.is_some() {
            return self.refuse(Error::Unsupported {
                op: "send (the adapter's stdin carries the debug protocol)",
                kind: self.spec.kind,
            });
        }
        if self.spec.kind != Kind::Shell {
            return Box::pin(
                actix::fut::ready(()).map(move |(), act: &mut Self, ctx| act.send_now(msg, ctx)),
            );
        }
        if self.state.kind() != StateKind::Busy {
            return self.refuse(Error::invalid(
                "data",
                "send on a shell session feeds the running command's stdin, and no command is \
                 running; start one with exec and interactive=true",
            ));
        }
        // Input for the command must not reach the shell's own buffered read of its line.
        Box::pin(
            self.line_taken()
                .into_actor(self)
                .map(move |(), act, ctx| act.send_now(msg, ctx)),
        )
    }
}

/// The longest wait for the running exec's line to be taken, which only a machine under
/// heavy load reaches; what waits then goes ahead anyway.
const LINE_WAIT: Duration = Duration::from_secs(5);

impl Session {
    /// Resolves once the child has taken the running exec's line, so input or an interrupt
    /// meant for the command cannot overtake it (or at once when no exec runs).
    ///
    /// A kind that reports when a line starts (the shell's `PS0`) is waited for: bash reads
    /// a line whole and parses it, and an interrupt that lands in between throws away what
    /// was parsed but leaves the rest of the line buffered, which then runs untracked.
    /// Other kinds are waited for until their stdin pipe is empty; their drivers handle an
    /// interrupt that arrives before the code starts.
    fn line_taken(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        if self.driver.reports_start() {
            let Some(running) = self.running.as_mut().filter(|r| !r.line_started) else {
                return Box::pin(std::future::ready(()));
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            running.start_waiters.push(tx);
            return Box::pin(async move {
                // Err: the exec ended first; Elapsed: see LINE_WAIT.
                let _ = tokio::time::timeout(LINE_WAIT, rx).await;
            });
        }
        let stdin = self.child.as_ref().and_then(|c| c.stdin.clone());
        Box::pin(async move {
            use std::os::fd::AsFd;
            let Some(stdin) = stdin else { return };
            let deadline = tokio::time::Instant::now() + LINE_WAIT;
            while process::pipe_unread(stdin.as_fd()) > 0 && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    }

    fn send_now(&mut self, msg: SendInput, ctx: &mut Context<Self>) -> Result<SendResult> {
        self.require_live("send")?;
        let written = if msg.data.is_empty() {
            0
        } else {
            self.note_input(msg.data.as_bytes());
            self.write(msg.data.into_bytes(), ctx)?
        };
        if msg.eof {
            self.close_stdin();
        }
        self.metrics.ops += 1;
        self.shared.touch();
        self.persist(When::Lazy);
        Ok(SendResult {
            bytes_written: written,
            cursor: self.logs[0].end(),
        })
    }
}

impl Handler<Read> for Session {
    type Result = ResponseActFuture<Self, Result<ReadResult>>;

    fn handle(&mut self, msg: Read, _: &mut Self::Context) -> Self::Result {
        let max = match page_size(&msg) {
            Ok(max) => max,
            Err(e) => return self.refuse(e),
        };
        let wait = msg.wait_ms.unwrap_or(0);
        if wait > self.config.max_wait_ms {
            let limit = self.config.max_wait_ms;
            return self.refuse(Error::invalid(
                "wait_ms",
                format!("{wait} ms exceeds the maximum of {limit} ms"),
            ));
        }
        let end = self.logs[msg.stream.index()].end();
        let cursor = msg.cursor.unwrap_or(self.read_cursor[msg.stream.index()]);
        if cursor > end {
            return self.refuse(Error::invalid(
                "cursor",
                format!("{cursor} is past the end of the output ({end} bytes so far)"),
            ));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        self.shared.touch();
        self.long_poll(msg, cursor, max, deadline)
    }
}

impl Handler<GetInfo> for Session {
    type Result = Result<SessionInfo>;

    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        Ok(self.info())
    }
}

impl Handler<SendSignal> for Session {
    type Result = ResponseActFuture<Self, Result<SignalResult>>;

    fn handle(&mut self, msg: SendSignal, _: &mut Self::Context) -> Self::Result {
        let _span =
            tracing::debug_span!("signal", session = %self.shared.id, signal = msg.signal.name())
                .entered();
        let pid = match self.require_live("signal") {
            Ok(pid) => pid,
            Err(e) => return self.refuse(e),
        };
        self.metrics.ops += 1;
        self.shared.touch();
        self.audit(AuditAction::Signalled, msg.via, Some(msg.signal));
        self.persist(When::Lazy);
        // An interrupt that reaches a shell before it has taken the running exec's line
        // would only redraw the prompt, or cut the line, and leave (the rest of) it to run
        // later: wait until the line has been taken.
        let wait_for_line = msg.signal == Signal::Int
            && matches!(self.spec.kind, Kind::Shell | Kind::Repl)
            && self.running.is_some();
        if !wait_for_line {
            // A terminal's signal goes where a keyboard's would: to its foreground job.
            let group = self.foreground_group().unwrap_or(pid);
            let delivered = process::signal_group(group, msg.signal);
            return Box::pin(actix::fut::ready(Ok(SignalResult { delivered })));
        }
        let seq = self.running.as_ref().map(|r| r.seq());
        Box::pin(self.line_taken().into_actor(self).map(move |(), act, ctx| {
            let delivered = process::signal_group(pid, msg.signal);
            if let (true, Some(seq)) = (delivered, seq) {
                // Read after the kill: a process forked a moment before it (the parent
                // shell was forking the command's process) may have missed it.
                let tree = tokio::task::spawn_blocking(move || process::group_tree(pid, pid));
                ctx.spawn(
                    actix::fut::wrap_future(tree).map(move |tree, act: &mut Self, ctx| {
                        if let Ok(tree) = tree {
                            act.redeliver_missed(pid, tree, seq, 0, ctx);
                        }
                    }),
                );
                if msg.until_exec_ends {
                    act.keep_interrupting(pid, seq, REINTERRUPTS, ctx);
                }
            }
            Ok(SignalResult { delivered })
        }))
    }
}

/// Interrupts sent again, at most, while the interrupted exec still runs.
const REINTERRUPTS: u32 = 3;
/// Time between them.
const REINTERRUPT_AFTER: Duration = Duration::from_millis(500);

/// When to look for processes that missed an interrupt, after it was sent.
/// The late ones are for a machine so loaded that bash forks the command seconds later.
const MISSED_CHECKS_MS: [u64; 11] = [20, 50, 100, 200, 300, 500, 1000, 2000, 3000, 10_000, 30_000];

impl Session {
    /// Sends SIGINT again, while exec `seq` still runs, to each process that provably never
    /// received it: of `tree` (the session's processes just after the interrupt was sent)
    /// and of the children `shell` has forked since.
    ///
    /// bash forks a command's process with bash's own SIGINT handler in place and resets it
    /// just before exec; an interrupt that lands in between is swallowed, and the command then
    /// runs to its end although the interrupt was delivered (measured: 66 of 500 interrupts of
    /// `sleep 100` under load). An interrupt that reaches bash while it runs its line, before
    /// it forks, is held until the child exits, and the child never sees it. A process that is
    /// alive with SIGINT at its default action, not blocked and not pending, cannot have
    /// received it; only such processes get it again, so a program that caught the interrupt
    /// to clean up is not interrupted twice (and a background job, which ignores SIGINT, not
    /// at all). The checks read /proc, off the arbiter.
    fn redeliver_missed(
        &mut self,
        shell: u32,
        tree: Vec<u32>,
        seq: u64,
        check: usize,
        ctx: &mut Context<Self>,
    ) {
        let Some(&after) = MISSED_CHECKS_MS.get(check) else {
            return;
        };
        let wait = after - check.checked_sub(1).map_or(0, |c| MISSED_CHECKS_MS[c]);
        ctx.run_later(Duration::from_millis(wait), move |act, ctx| {
            if act.running.as_ref().map(|r| r.seq()) != Some(seq) {
                return;
            }
            // The scan runs off the arbiter; the check and the signals back on it, where the
            // exec cannot end in between.
            let scan = tokio::task::spawn_blocking(move || {
                // A copy of the shell (a child between fork and exec, a subshell) handles
                // SIGINT as the shell does; only another program's handler counts.
                let exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).ok();
                let shell_exe = exe(shell);
                let others_catch = process::group_tree(shell, shell).into_iter().any(|p| {
                    p != shell
                        && process::catches_signal(p, Signal::Int)
                        && (shell_exe.is_none() || exe(p) != shell_exe)
                });
                (process::group_children(shell), others_catch)
            });
            ctx.spawn(
                actix::fut::wrap_future(scan).map(move |scan, act: &mut Self, ctx| {
                    if act.running.as_ref().map(|r| r.seq()) != Some(seq) {
                        return;
                    }
                    let (children, others_catch) = scan.unwrap_or_default();
                    // Only bash: a REPL's own process takes a second interrupt as a new one.
                    if act.spec.kind == Kind::Shell && !others_catch {
                        // Nothing but the shell handles SIGINT, so a second one can only
                        // stop what the first should have. bash drops an interrupt that lands
                        // while it waits for a command that then exits normally (it assumes
                        // the command caught it), which leaves a loop of short commands
                        // running: the whole group gets it again.
                        tracing::debug!(session = %act.shared.id, "the exec outlived an interrupt nothing caught; interrupting the group again");
                        process::signal_group(shell, Signal::Int);
                    }
                    let mut candidates = children;
                    candidates.retain(|p| !tree.contains(p));
                    candidates.extend_from_slice(&tree);
                    for pid in candidates {
                        // In the group still: a pid that died may have been reused.
                        if process::group_of(pid) == Some(shell)
                            && process::missed_signal(pid, Signal::Int)
                        {
                            tracing::debug!(session = %act.shared.id, pid, "a process missed the interrupt; sending it again");
                            process::signal_pid(pid, Signal::Int);
                        }
                    }
                    act.redeliver_missed(shell, tree, seq, check + 1, ctx);
                }),
            );
        });
    }

    /// Sends SIGINT again while exec `seq` is still the running one, `left` more times.
    fn keep_interrupting(&mut self, pid: u32, seq: u64, left: u32, ctx: &mut Context<Self>) {
        if left == 0 {
            return;
        }
        ctx.run_later(REINTERRUPT_AFTER, move |act, ctx| {
            if act.running.as_ref().map(|r| r.seq()) == Some(seq) {
                tracing::debug!(session = %act.shared.id, "the exec outlived an interrupt; interrupting again");
                process::signal_group(pid, Signal::Int);
                act.keep_interrupting(pid, seq, left - 1, ctx);
            }
        });
    }
}

impl Handler<End> for Session {
    type Result = ResponseActFuture<Self, Result<EndResult>>;

    fn handle(&mut self, msg: End, ctx: &mut Self::Context) -> Self::Result {
        // A REPL saves its namespace before it is suspended (snapshot.rs).
        if let Some(saving) = self.snapshot_before_end(msg, ctx) {
            return saving;
        }
        self.end_now(msg)
    }
}

impl Session {
    /// Ends the process: TERM to the group, KILL after the grace period, reap.
    pub(super) fn end_now(&mut self, msg: End) -> ResponseActFuture<Self, Result<EndResult>> {
        let _span = tracing::debug_span!("end", session = %self.shared.id).entered();
        let grace = msg.grace_ms.unwrap_or(self.config.end_grace_ms);
        if grace > MAX_GRACE_MS {
            return self.refuse(Error::invalid(
                "grace_ms",
                format!("{grace} ms exceeds the maximum of {MAX_GRACE_MS} ms"),
            ));
        }
        let state = self.state.kind();
        let suspend = msg.mode != EndMode::End;
        if state.is_terminal() || (state == StateKind::Suspended && suspend) {
            return Box::pin(actix::fut::ready(Ok(self.end_result())));
        }
        if state != StateKind::Ending {
            match msg.mode {
                EndMode::End => self.audit(AuditAction::Ended, msg.via, None),
                EndMode::Evict | EndMode::Shutdown => {
                    self.audit(AuditAction::Suspended, Via::Runtime, None);
                }
            }
            let event = match msg.mode {
                EndMode::End => Event::End { suspend: false },
                EndMode::Evict => Event::End { suspend: true },
                EndMode::Shutdown => Event::Shutdown,
            };
            if suspend {
                // Snapshot first, then end the process.
                self.persist(When::Now);
            }
            if let Err(e) = self.transition(event) {
                return self.refuse(e);
            }
            if self.ready.is_some() {
                self.report_ready(Err(Error::StartFailed {
                    reason: "the session was ended while starting".into(),
                }));
            }
            self.close_stdin();
        }
        let Some(child) = &self.child else {
            // A Suspended record has no process: ending it is immediate.
            return Box::pin(actix::fut::ready(Ok(self.end_result())));
        };
        let (pid, exit) = (child.pid, child.exit.clone());
        // A terminal's program leads a Unix session of its own; its jobs have groups of theirs.
        let terminal = child.terminal.is_some();
        let program = self.debug.as_ref().and_then(|d| d.program_group());
        debug!(session = %self.shared.id, pid, grace_ms = grace, "ending process group");
        let grace = Duration::from_millis(grace);
        let ending = async move {
            if terminal {
                // As a terminal closing does: an interactive shell ignores TERM but hangs up
                // its jobs and exits on HUP.
                process::signal_pid(pid, Signal::Hup);
            }
            let (outcome, ()) = tokio::join!(process::terminate(pid, grace, exit), async {
                if let Some(g) = program {
                    process::end_group(g, grace).await;
                }
            });
            if terminal {
                // Jobs that ignored the hangup (nohup) go with their session.
                let reap = Duration::from_secs(2);
                let _ = tokio::task::spawn_blocking(move || process::kill_session(pid, reap)).await;
            }
            outcome
        };
        Box::pin(ending.into_actor(self).map(|outcome, act, ctx| {
            debug!(session = %act.shared.id, ?outcome, "process group ended");
            act.retire_if_settled(ctx);
            Ok(act.end_result())
        }))
    }
}

impl Handler<Crash> for Session {
    type Result = ();

    fn handle(&mut self, _: Crash, _: &mut Self::Context) {
        panic!("fault injection: session {} asked to crash", self.shared.id);
    }
}
