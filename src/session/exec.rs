//! Exec: one command at a time per session, a bounded queue behind it, a deadline after which
//! the caller gets the output so far while the command keeps running.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::messages::{Exec, ExecResult, ExecUntil, SendSignal};
use super::output::copy_overlap;
use super::state::Event;
use super::{elapsed_ms, Session, StateKind, Stream};
use crate::model::audit::Via;
use crate::process::{ExitStatus, Signal};
use crate::store::When;
use crate::{Error, Result};

type Reply = oneshot::Sender<Result<ExecResult>>;

/// The exec in progress.
#[derive(Debug)]
pub(super) struct Running {
    seq: u64,
    started: Instant,
    /// Log cursors where this exec's output starts.
    starts: [u64; 2],
    /// Bytes of this exec's head that the log evicted, starting at `head_at`.
    heads: [Vec<u8>; 2],
    head_at: [u64; 2],
    /// End marker seen, per stream.
    pub(super) done: [bool; 2],
    /// Status and cwd from the end marker (a shell's `PS1`).
    pub(super) status: Option<(i32, String)>,
    /// What a kind's stdout end marker carried (REPL value or error, agent final line).
    pub(super) payload: Option<serde_json::Value>,
    /// Where the result goes; `None` once the caller's deadline passed.
    tx: Option<Reply>,
    /// The kind reported that the exec's line has started ([`Marker::Started`]).
    ///
    /// [`Marker::Started`]: super::kind::Marker::Started
    pub(super) line_started: bool,
    /// Callers waiting for the line to start; dropped (which wakes them too) with the exec.
    pub(super) start_waiters: Vec<oneshot::Sender<()>>,
}

/// An exec waiting behind the running one.
#[derive(Debug)]
pub(super) struct Queued {
    seq: u64,
    msg: Exec,
    tx: Reply,
    enqueued: Instant,
}

impl Running {
    /// The exec's sequence number in its session.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Keeps bytes of this exec's head that the log is about to evict.
    pub(super) fn capture(&mut self, stream: Stream, head_cap: u64, pos: u64, evicted: &[u8]) {
        let i = stream.index();
        let start = self.starts[i];
        if self.heads[i].is_empty() {
            self.head_at[i] = pos.max(start);
        }
        let from = self.head_at[i] + self.heads[i].len() as u64;
        copy_overlap(pos, evicted, from, start + head_cap, &mut self.heads[i]);
    }
}

impl Handler<Exec> for Session {
    type Result = ResponseActFuture<Self, Result<ExecResult>>;

    fn handle(&mut self, msg: Exec, ctx: &mut Self::Context) -> Self::Result {
        self.exec(msg, None, ctx)
    }
}

impl Handler<ExecUntil> for Session {
    type Result = ResponseActFuture<Self, Result<ExecResult>>;

    fn handle(&mut self, msg: ExecUntil, ctx: &mut Self::Context) -> Self::Result {
        self.exec(msg.exec, Some(msg.cancel), ctx)
    }
}

impl Session {
    /// Runs `msg` now or queues it; `cancel` calls it off.
    fn exec(
        &mut self,
        msg: Exec,
        cancel: Option<CancellationToken>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<ExecResult>> {
        let _span = tracing::debug_span!("exec", session = %self.shared.id).entered();
        if self.debug.is_some() {
            return self.refuse(Error::Unsupported {
                op: "exec (a debug session runs with debug_continue, debug_step and debug_evaluate)",
                kind: self.spec.kind,
            });
        }
        let timeout = match self.exec_timeout(msg.timeout_ms) {
            Ok(t) => t,
            Err(e) => return self.refuse(e),
        };
        let (tx, rx) = oneshot::channel();
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.state.kind() {
            StateKind::Ready => self.begin(seq, msg, tx, ctx),
            StateKind::Busy if self.queue.len() < self.config.max_queue => {
                self.queue.push_back(Queued {
                    seq,
                    msg,
                    tx,
                    enqueued: Instant::now(),
                })
            }
            StateKind::Busy => {
                let queued = self.queue.len();
                return self.refuse(Error::Busy {
                    queued,
                    limit: self.config.max_queue,
                });
            }
            _ => {
                let refused = self
                    .state
                    .apply(&Event::OpBegin)
                    .expect_err("only Ready accepts OpBegin");
                return self.refuse(refused.into());
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        Box::pin(
            async move {
                let mut rx = rx;
                let called_off = async {
                    match &cancel {
                        Some(c) => c.cancelled().await,
                        None => std::future::pending().await,
                    }
                };
                let outcome = tokio::select! {
                    outcome = tokio::time::timeout_at(deadline, &mut rx) => Some(outcome),
                    () = called_off => None,
                };
                (outcome, rx)
            }
            .into_actor(self)
            .map(move |(outcome, mut rx), act, ctx| match outcome {
                Some(Ok(Ok(result))) => result,
                Some(Ok(Err(_))) => Err(Error::Io("the exec was abandoned".into())),
                Some(Err(_)) => act.on_deadline(seq, &mut rx),
                None => act.call_off(seq, ctx),
            }),
        )
    }
}

impl Session {
    /// Exec `seq`'s caller called it off: out of the queue if it waits; interrupted (as
    /// `interrupt_exec` does, until it ends) if it runs.
    fn call_off(&mut self, seq: u64, ctx: &mut Context<Self>) -> Result<ExecResult> {
        if let Some(pos) = self.queue.iter().position(|q| q.seq == seq) {
            self.queue.remove(pos);
        } else if self.running.as_ref().is_some_and(|r| r.seq() == seq) {
            if let Some(r) = self.running.as_mut() {
                r.tx = None; // nobody waits for its result any more
            }
            // Handled now, while `seq` is the running exec: the interrupt is tied to it.
            let interrupt = SendSignal {
                signal: Signal::Int,
                via: Via::Runtime,
                until_exec_ends: true,
            };
            let signalled = <Self as Handler<SendSignal>>::handle(self, interrupt, ctx);
            ctx.spawn(signalled.map(|_, _, _| ()));
        }
        Err(Error::Cancelled)
    }
}

impl Session {
    /// A failed operation: counted, and returned as an immediate error.
    pub(super) fn refuse<T: 'static>(&mut self, e: Error) -> ResponseActFuture<Self, Result<T>> {
        self.metrics.errors += 1;
        Box::pin(actix::fut::ready(Err(e)))
    }

    pub(super) fn exec_timeout(&self, ms: Option<u64>) -> Result<Duration> {
        let max = self.config.max_exec_timeout_ms;
        match ms.unwrap_or(self.config.default_exec_timeout_ms) {
            0 => Err(Error::invalid("timeout_ms", "must be at least 1 ms")),
            ms if ms > max => Err(Error::invalid(
                "timeout_ms",
                format!("{ms} ms exceeds the maximum of {max} ms"),
            )),
            ms => Ok(Duration::from_millis(ms)),
        }
    }

    /// Starts an exec now; failures go to its reply channel.
    fn begin(&mut self, seq: u64, msg: Exec, tx: Reply, ctx: &mut Context<Self>) {
        let bytes = match self.driver.begin_exec(&msg.input, msg.interactive) {
            Ok(b) => b,
            Err(e) => {
                self.metrics.errors += 1;
                let _ = tx.send(Err(e));
                return;
            }
        };
        if let Err(e) = self.transition(Event::OpBegin) {
            let _ = tx.send(Err(e));
            return;
        }
        self.note_input(msg.input.as_bytes());
        self.running = Some(Running {
            seq,
            started: Instant::now(),
            starts: [self.logs[0].end(), self.logs[1].end()],
            heads: Default::default(),
            head_at: [0, 0],
            done: [false, false],
            status: None,
            payload: None,
            tx: Some(tx),
            line_started: false,
            start_waiters: Vec::new(),
        });
        if let Err(e) = self.write(bytes, ctx) {
            let r = self.running.take().expect("just set");
            let _ = self.transition(Event::OpEnd);
            self.metrics.errors += 1;
            if let Some(tx) = r.tx {
                let _ = tx.send(Err(e));
            }
        }
    }

    /// The caller's deadline passed: answer with what is known so far.
    fn on_deadline(
        &mut self,
        seq: u64,
        rx: &mut oneshot::Receiver<Result<ExecResult>>,
    ) -> Result<ExecResult> {
        if let Ok(result) = rx.try_recv() {
            return result;
        }
        if let Some(r) = self.running.as_mut().filter(|r| r.seq == seq) {
            r.tx = None;
            debug!(session = %self.shared.id, "exec timed out; command keeps running");
            let r = self.running.take().expect("checked");
            let result = self.finished(&r, None, self.cwd.clone(), true);
            self.running = Some(r);
            self.persist(When::Lazy);
            return Ok(result);
        }
        if let Some(pos) = self.queue.iter().position(|q| q.seq == seq) {
            let q = self.queue.remove(pos).expect("position is valid");
            self.metrics.errors += 1;
            return Err(Error::QueueTimeout {
                waited_ms: elapsed_ms(q.enqueued),
            });
        }
        Err(Error::Io("the exec result was lost".into()))
    }

    /// The running exec is over: reply, go back to Ready, start the next queued one.
    pub(super) fn complete_running(
        &mut self,
        exit_code: Option<i32>,
        cwd: Option<String>,
        ctx: Option<&mut Context<Self>>,
    ) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let ms = elapsed_ms(r.started);
        self.timings.last_op_ms = ms;
        self.timings.total_op_ms += ms;
        self.metrics.ops += 1;
        if self.state.kind() == StateKind::Busy {
            let _ = self.transition(Event::OpEnd);
        }
        self.shared.touch();
        // Built even when the caller's deadline passed (nobody to send it to): its messages
        // and tokens still count in the session's metrics.
        let cwd = cwd.or_else(|| self.cwd.clone());
        let mut result = self.finished(&r, exit_code, cwd, false);
        // Only a failed command can have met a limit; a look costs two small reads.
        if exit_code.is_some_and(|c| c != 0) {
            self.bounds.check();
        }
        result.limit = self.bounds.take_unreported();
        if let Some(m) = &result.messages {
            self.metrics.messages += m.len() as u64;
        }
        if let Some(u) = result.usage {
            self.metrics.input_tokens += u.input_tokens;
            self.metrics.output_tokens += u.output_tokens;
        }
        if let Some(agent) = &mut self.agent {
            agent.turn_ended(&mut result);
        }
        // Pushed before the reply (counters included), so a caller that then waits for
        // durability covers it.
        self.persist(When::Lazy);
        if let Some(tx) = r.tx.take() {
            let _ = tx.send(Ok(result));
        }
        debug!(session = %self.shared.id, duration_ms = ms, ?exit_code, "exec done");
        for log in &mut self.logs {
            log.shrink();
        }
        if let Some(ctx) = ctx {
            self.start_next(ctx);
        }
    }

    fn start_next(&mut self, ctx: &mut Context<Self>) {
        while self.state.kind() == StateKind::Ready {
            let Some(q) = self.queue.pop_front() else {
                return;
            };
            if q.tx.is_closed() {
                continue; // its caller gave up
            }
            self.begin(q.seq, q.msg, q.tx, ctx);
        }
    }

    /// The child exited while an exec ran (for example `exit 3`).
    pub(super) fn finish_running_on_exit(&mut self, status: ExitStatus) {
        let Some(r) = &self.running else { return };
        let code = r
            .status
            .as_ref()
            .map(|s| s.0)
            .or(status.code)
            .or(status.signal.map(|s| 128 + s));
        self.complete_running(code, None, None);
    }

    /// Refuses every queued exec (the session is going away).
    pub(super) fn fail_queue(&mut self) {
        for q in self.queue.drain(..) {
            let refused = self.state.apply(&Event::OpBegin).err();
            let err = refused.map_or(Error::Io("session ended".into()), Error::from);
            let _ = q.tx.send(Err(err));
        }
    }

    /// Builds the result of `r` from the logs (and the head bytes it saved).
    fn result(
        &self,
        r: &Running,
        exit_code: Option<i32>,
        cwd: Option<String>,
        timed_out: bool,
    ) -> ExecResult {
        let mut dropped = 0;
        let mut lossy = false;
        let mut text = |stream: Stream| {
            let (bytes, d) = self.collect(r, stream);
            dropped += d;
            let (s, l) = super::output::lossy_text(bytes);
            lossy |= l;
            s
        };
        let stdout = text(Stream::Stdout);
        let stderr = text(Stream::Stderr);
        ExecResult {
            stdout,
            stderr,
            exit_code,
            cwd,
            timed_out,
            duration_ms: elapsed_ms(r.started),
            cursor: self.logs[0].end(),
            stderr_cursor: self.logs[1].end(),
            dropped_bytes: dropped,
            lossy,
            session_ended: self.exit.is_some(),
            ..ExecResult::default()
        }
    }

    /// The result of `r` with the kind's own fields added by its driver.
    fn finished(
        &mut self,
        r: &Running,
        exit_code: Option<i32>,
        cwd: Option<String>,
        timed_out: bool,
    ) -> ExecResult {
        let mut result = self.result(r, exit_code, cwd, timed_out);
        self.driver.finish(r.payload.as_ref(), &mut result);
        result
    }

    /// This exec's bytes of one stream: its head and its tail, the middle counted as dropped.
    fn collect(&self, r: &Running, stream: Stream) -> (Vec<u8>, u64) {
        let i = stream.index();
        let log = &self.logs[i];
        let (start, end) = (r.starts[i], log.end());
        let head_end = (start + log.head_cap() as u64).min(end);
        let tail_from = head_end.max(end.saturating_sub(log.tail_cap() as u64));
        let mut out = Vec::with_capacity((end - start).min(1 << 20) as usize);
        let (at, saved) = (r.head_at[i], &r.heads[i]);
        let mut copied = log.copy_range_with(start, head_end, at, saved, &mut out);
        copied += log.copy_range_with(tail_from, end, at, saved, &mut out);
        (out, (end - start) - copied)
    }
}
