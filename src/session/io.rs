//! Pipes: reading the child's stdout and stderr into the logs (through the driver), and
//! writing to its stdin without ever blocking the arbiter.
//!
//! Reads go into one 64 KiB scratch buffer per arbiter thread and are copied once, into the
//! log; an idle session holds no read buffer at all.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::rc::Rc;

use actix::prelude::*;
use tokio::net::unix::pipe;
use tracing::debug;

use super::exec::Running;
use super::kind::{Completion, Marker};
use super::output::OutputLog;
use super::{Session, Stream};
use crate::{Error, Result};

/// Most bytes queued for a child's stdin beyond what its pipe holds.
pub(crate) const MAX_STDIN_BACKLOG: usize = 16 * 1024 * 1024;

/// Reads per wake-up before yielding to other sessions on the same arbiter.
const READS_PER_WAKE: usize = 16;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
    /// For reading stdout dry in the middle of a stderr read
    /// ([`Driver::stderr_follows_stdout`](super::kind::Driver::stderr_follows_stdout)).
    static STDOUT_SCRATCH: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// Bytes waiting for stdin to accept them, in order.
#[derive(Debug, Default)]
pub(super) struct WriteQueue {
    pending: VecDeque<Vec<u8>>,
    busy: bool,
    close_after: bool,
}

impl Session {
    /// Waits for `stream` to become readable, then drains it; re-arms until EOF.
    pub(super) fn arm_reader(&mut self, stream: Stream, ctx: &mut Context<Self>) {
        let Some(pipe) = self
            .child
            .as_ref()
            .and_then(|c| c.pipes[stream.index()].clone())
        else {
            return;
        };
        ctx.spawn(async move { pipe.readable().await }.into_actor(self).map(
            move |ready, act, ctx| {
                if ready.is_err() {
                    act.eof[stream.index()] = true;
                } else if act.drain_with(stream, ctx) {
                    act.arm_reader(stream, ctx);
                }
            },
        ));
    }

    /// Reads what is available now, without a context (used when the child has exited).
    pub(super) fn drain(&mut self, stream: Stream) {
        self.read_available(stream, None);
    }

    fn drain_with(&mut self, stream: Stream, ctx: &mut Context<Self>) -> bool {
        self.read_available(stream, Some(ctx))
    }

    /// Reads until the pipe would block; returns false at EOF.
    fn read_available(&mut self, stream: Stream, mut ctx: Option<&mut Context<Self>>) -> bool {
        let i = stream.index();
        if self.eof[i] {
            return false;
        }
        let Some(pipe) = self.child.as_ref().and_then(|c| c.pipes[i].clone()) else {
            return false;
        };
        let stdout_first = stream == Stream::Stderr && self.driver.stderr_follows_stdout();
        let open = SCRATCH.with_borrow_mut(|buf| {
            for _ in 0..READS_PER_WAKE {
                match read_once(&pipe, buf) {
                    Ok(Read::Eof) => return false,
                    Ok(Read::Bytes(n)) => {
                        if stdout_first {
                            // Read after this chunk, so it holds all that was written before.
                            self.read_stdout_dry(ctx.as_deref_mut());
                        }
                        self.ingest(stream, &buf[..n], ctx.as_deref_mut());
                        if n < buf.len() {
                            return true; // drained (see `read_once`)
                        }
                    }
                    Ok(Read::Empty | Read::NotReady) => return true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        debug!(session = %self.shared.id, ?stream, error = %e, "read failed");
                        return false;
                    }
                }
            }
            // The read budget ran out: readiness is still set, so re-arming reads on at once.
            true
        });
        if !open {
            self.eof[i] = true;
            if let Some(child) = &mut self.child {
                child.pipes[i] = None; // close our end: an ended session keeps no descriptors
            }
            self.changed.notify_waiters();
        }
        open
    }

    /// Takes in everything stdout holds now. When tokio's reactor has not seen the pipe
    /// become readable yet, the descriptor is read directly: what matters here is what the
    /// pipe holds now, not what the reactor knows. End of file and errors are left to the
    /// stdout reader.
    fn read_stdout_dry(&mut self, mut ctx: Option<&mut Context<Self>>) {
        use std::os::fd::AsRawFd as _;
        let i = Stream::Stdout.index();
        STDOUT_SCRATCH.with_borrow_mut(|buf| {
            for _ in 0..READS_PER_WAKE {
                // Looked up each time: taking in output may end the session and close the pipe.
                let Some(pipe) = self
                    .child
                    .as_ref()
                    .and_then(|c| c.pipes[i].clone())
                    .filter(|_| !self.eof[i])
                else {
                    return;
                };
                let n = match read_once(&pipe, buf) {
                    Ok(Read::Bytes(n)) => n,
                    Ok(Read::NotReady) => match read_fd(pipe.as_raw_fd(), buf) {
                        Ok(n) if n > 0 => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        _ => return,
                    },
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Ok(Read::Eof | Read::Empty) | Err(_) => return,
                };
                self.ingest(Stream::Stdout, &buf[..n], ctx.as_deref_mut());
                if n < buf.len() {
                    return; // drained
                }
            }
        });
    }

    /// One chunk of child output: through the driver, into the log, then completions.
    fn ingest(&mut self, stream: Stream, bytes: &[u8], mut ctx: Option<&mut Context<Self>>) {
        let i = stream.index();
        tracing::trace!(session = %self.shared.id, ?stream, bytes = %String::from_utf8_lossy(bytes), "read");
        self.metrics.bytes_out += bytes.len() as u64;
        let before = self.logs[i].end();
        let markers = {
            let (log, running) = (&mut self.logs[i], &mut self.running);
            self.driver.feed(stream, bytes, &mut |b| {
                append_output(log, running, stream, b)
            })
        };
        let grew = self.logs[i].end() != before;
        for marker in markers {
            self.on_marker(stream, marker, ctx.as_deref_mut());
        }
        if grew {
            let line_done = self.logs[i].last_byte() == Some(b'\n');
            if line_done
                && self.running.is_some()
                && self.driver.completion() == Completion::FirstLine
            {
                self.complete_running(None, None, ctx.as_deref_mut());
            }
            if let Some(ctx) = ctx {
                self.output_arrived(ctx);
            }
            self.changed.notify_waiters();
            self.shared.changed();
        }
    }

    fn on_marker(&mut self, stream: Stream, marker: Marker, ctx: Option<&mut Context<Self>>) {
        match marker {
            Marker::Ready => {
                if self.transition(super::state::Event::Started).is_ok() {
                    self.shared.touch();
                    self.persist(crate::store::When::Now);
                    self.report_ready(Ok(()));
                }
            }
            Marker::ExecEnd { exit_code, cwd } => {
                self.cwd = Some(cwd.clone());
                if let Some(r) = &mut self.running {
                    r.done = [true, true];
                    r.status = Some((exit_code, cwd));
                }
                self.complete_if_done(ctx);
            }
            Marker::Discarded { exit_code } => {
                tracing::debug!(session = %self.shared.id, "an interrupt discarded the command line before it ran");
                if let Some(r) = &mut self.running {
                    r.done = [true, true];
                }
                self.complete_running(Some(exit_code), None, ctx);
            }
            Marker::Started => {
                if let Some(r) = &mut self.running {
                    r.line_started = true;
                    for waiter in r.start_waiters.drain(..) {
                        let _ = waiter.send(());
                    }
                }
            }
            Marker::Result(payload) => {
                if let Some(cwd) = payload.get("cwd").and_then(serde_json::Value::as_str) {
                    self.cwd = Some(cwd.to_owned());
                }
                let stdout_only = self.driver.completion() == Completion::StdoutMarker;
                if let Some(r) = &mut self.running {
                    r.done[stream.index()] = true;
                    if stdout_only {
                        r.done = [true, true];
                    }
                    r.payload = Some(payload);
                }
                self.complete_if_done(ctx);
            }
            Marker::Dap(message) => self.on_dap(message, ctx),
            Marker::Conversation(id) => {
                if let Some(agent) = &mut self.agent {
                    if agent.captured(id) {
                        debug!(session = %self.shared.id, conversation = ?agent.record.session_id, "the agent reported its conversation id");
                        // Written at once, like a lifecycle change: losing it to a crash
                        // would lose the conversation, not a counter.
                        self.persist(crate::store::When::Now);
                    }
                }
            }
            Marker::Reply(bytes) => {
                if let Some(ctx) = ctx {
                    if let Err(e) = self.write(bytes, ctx) {
                        debug!(session = %self.shared.id, error = %e, "answering the terminal's query failed");
                    }
                }
            }
            Marker::ExecStderr => {
                if let Some(r) = &mut self.running {
                    r.done[stream.index()] = true;
                }
                self.complete_if_done(ctx);
            }
        }
    }

    fn complete_if_done(&mut self, ctx: Option<&mut Context<Self>>) {
        if let Some(r) = &self.running {
            if r.done == [true, true] {
                let status = r.status.clone();
                let (code, cwd) = status.map_or((None, None), |(c, d)| (Some(c), Some(d)));
                self.complete_running(code, cwd, ctx);
            }
        }
    }

    /// Queues `bytes` for the child's stdin. Writes at once when the pipe has room; the rest
    /// is written by a task on this arbiter, in order.
    pub(super) fn write(&mut self, bytes: Vec<u8>, ctx: &mut Context<Self>) -> Result<usize> {
        let stdin = self
            .child
            .as_ref()
            .and_then(|c| c.stdin.clone())
            .ok_or_else(|| Error::Io("stdin is closed".into()))?;
        let len = bytes.len();
        if self.writes.busy {
            let queued: usize = self.writes.pending.iter().map(Vec::len).sum();
            if queued + len > MAX_STDIN_BACKLOG {
                return Err(Error::Io(format!(
                    "the program is not reading its stdin: {queued} bytes are already waiting (limit {MAX_STDIN_BACKLOG})"
                )));
            }
            self.metrics.bytes_in += len as u64;
            self.writes.pending.push_back(bytes);
            return Ok(len);
        }
        self.metrics.bytes_in += len as u64;
        let mut written = 0;
        while written < len {
            match stdin.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(format!("writing to stdin: {e}"))),
            }
        }
        if written < len {
            self.writes.pending.push_back(bytes[written..].to_vec());
            self.spawn_writer(stdin, ctx);
        }
        Ok(len)
    }

    fn spawn_writer(&mut self, stdin: Rc<pipe::Sender>, ctx: &mut Context<Self>) {
        self.writes.busy = true;
        let chunks: Vec<Vec<u8>> = self.writes.pending.drain(..).collect();
        let writer = Rc::clone(&stdin);
        ctx.spawn(
            async move {
                for chunk in chunks {
                    let mut off = 0;
                    while off < chunk.len() {
                        writer.writable().await?;
                        match writer.try_write(&chunk[off..]) {
                            Ok(n) => off += n,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok::<_, std::io::Error>(())
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.writes.busy = false;
                if let Err(e) = res {
                    debug!(session = %act.shared.id, error = %e, "stdin write failed");
                    act.writes.pending.clear();
                    return;
                }
                if !act.writes.pending.is_empty() {
                    act.spawn_writer(stdin, ctx);
                } else if act.writes.close_after {
                    act.close_stdin_now();
                }
            }),
        );
    }

    /// Closes stdin once everything queued has been written.
    pub(super) fn close_stdin(&mut self) {
        if self.writes.busy {
            self.writes.close_after = true;
        } else {
            self.close_stdin_now();
        }
    }

    fn close_stdin_now(&mut self) {
        if let Some(d) = &self.debug {
            d.detach();
        }
        if let Some(child) = &mut self.child {
            child.stdin = None;
        }
    }
}

/// What one read of a pipe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// This many bytes (more than zero).
    Bytes(usize),
    /// End of file: every writer has closed it.
    Eof,
    /// Nothing: read(2) said it would block.
    Empty,
    /// Not read: the reactor has seen no readiness since the pipe was last drained.
    NotReady,
}

/// Reads `pipe` once into `buf`. A read that fills less than `buf` has drained the pipe, so
/// tokio is told the pipe is no longer readable, as its own `AsyncRead` does on edge-triggered
/// epoll (tokio-rs/tokio#5866): the next wait is for new bytes instead of ending in a read
/// that fails with `EAGAIN`, one system call per wake-up saved.
fn read_once(pipe: &pipe::Receiver, buf: &mut [u8]) -> std::io::Result<Read> {
    use std::os::fd::AsRawFd as _;
    let fd = pipe.as_raw_fd();
    let len = buf.len();
    let (mut called, mut got) = (false, None);
    let r = pipe.try_io(|| {
        called = true;
        let n = read_fd(fd, buf)?;
        got = Some(n);
        if 0 < n && n < len {
            // Clears tokio's readiness: the pipe is empty now (see above).
            Err(ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match (r, got) {
        (_, Some(0)) => Ok(Read::Eof),
        (_, Some(n)) => Ok(Read::Bytes(n)),
        (Err(e), None) if e.kind() == ErrorKind::WouldBlock => {
            Ok(if called { Read::Empty } else { Read::NotReady })
        }
        (Err(e), None) => Err(e),
        (Ok(()), None) => unreachable!("the closure sets `got` whenever it succeeds"),
    }
}

/// read(2) of `fd` into `buf`.
fn read_fd(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: the caller holds `fd` open for this call, and `buf` is valid for `buf.len()`
    // bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Appends program output to a log; bytes the log evicts that the running exec still needs
/// for its head are kept by the exec.
fn append_output(log: &mut OutputLog, running: &mut Option<Running>, stream: Stream, bytes: &[u8]) {
    let head_cap = log.head_cap() as u64;
    log.append(bytes, |pos, evicted| {
        if let Some(r) = running.as_mut() {
            r.capture(stream, head_cap, pos, evicted);
        }
    });
}
