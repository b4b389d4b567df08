//! What a session without a process answers: its state and its output, from the stored record
//! and transcript. A Suspended session (evicted, or restored after a restart) has no actor;
//! these views serve it until it is resumed.

use std::ops::ControlFlow;
use std::time::{Duration, UNIX_EPOCH};

use super::messages::{Read, ReadResult, SessionInfo};
use super::shared::rfc3339;
use super::{Shared, Stream};
use crate::process::Signal;
use crate::store::{Dir, Event, Record};

/// The session's state as stored, with the index's current state.
pub(crate) fn info(shared: &Shared, record: &Record) -> SessionInfo {
    let live = &record.live;
    let state = shared.state();
    SessionInfo {
        session_id: shared.id,
        name: shared.name().map(str::to_owned),
        kind: shared.kind,
        state,
        state_detail: if state == live.state {
            live.state_detail.clone()
        } else {
            state.to_string()
        },
        pid: None,
        exit_code: live.exit.and_then(|e| e.code),
        signal: live.exit.and_then(|e| e.signal).map(Signal::name_of),
        stderr_tail: live.stderr_tail.clone(),
        cwd: live.cwd.clone(),
        command: record.spec.argv.clone(),
        created_at: rfc3339(shared.created_at()),
        last_active_at: rfc3339(UNIX_EPOCH + Duration::from_millis(shared.last_active_ms())),
        arbiter: shared.arbiter(),
        timings: live.timings.into(),
        metrics: live.metrics.into(),
        last_stop: live
            .debug
            .as_ref()
            .and_then(|d| d.last_stop.clone().map(Into::into)),
        audit: live
            .audit
            .iter()
            .filter_map(crate::store::StoredAudit::entry)
            .collect(),
        limits: None,
        agent_session_id: live.agent.as_ref().and_then(|a| a.session_id.clone()),
        agent_conversation: live
            .agent
            .as_ref()
            .map(|a| a.note.clone())
            .filter(|n| !n.is_empty()),
    }
}

/// A page of one stream being read from the stored transcript, fed one event at a time.
/// Cursors are the same as when the session was live; bytes the transcript no longer holds
/// are reported as dropped.
#[derive(Debug)]
pub(crate) struct Page {
    dir: Dir,
    end: u64,
    cursor: u64,
    dropped: u64,
    data: Vec<u8>,
    max: usize,
}

impl Page {
    /// An empty page of `req.stream` from `req.cursor` (default 0), at most `max` bytes.
    pub(crate) fn new(record: &Record, req: &Read, max: usize) -> Page {
        let end = record.live.output_end[req.stream.index()];
        Page {
            dir: match req.stream {
                Stream::Stdout => Dir::Stdout,
                Stream::Stderr => Dir::Stderr,
            },
            end,
            cursor: req.cursor.unwrap_or(0).min(end),
            dropped: 0,
            data: Vec::new(),
            max,
        }
    }

    /// Takes what the page needs of the next event; `Break` once the page is complete.
    pub(crate) fn push(&mut self, e: &Event) -> ControlFlow<()> {
        if e.dir != self.dir {
            return ControlFlow::Continue(());
        }
        let e_end = e.offset + e.data.len() as u64;
        if e_end <= self.cursor {
            return ControlFlow::Continue(());
        }
        if e.offset > self.cursor {
            if !self.data.is_empty() {
                return ControlFlow::Break(()); // a gap: the next page reports it
            }
            self.dropped += e.offset - self.cursor;
            self.cursor = e.offset;
        }
        let from = (self.cursor - e.offset) as usize;
        let take = (e.data.len() - from).min(self.max - self.data.len());
        self.data.extend_from_slice(&e.data[from..from + take]);
        self.cursor += take as u64;
        if self.data.len() >= self.max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// The result, with the session's current state.
    pub(crate) fn finish(mut self, shared: &Shared, record: &Record) -> ReadResult {
        if self.data.is_empty() && self.cursor < self.end {
            // Nothing held from here on: skip to the end.
            self.dropped += self.end - self.cursor;
            self.cursor = self.end;
        }
        let (data, lossy) = super::output::lossy_text(self.data);
        ReadResult {
            data,
            cursor: self.cursor,
            dropped_bytes: self.dropped,
            lossy,
            eof: self.cursor >= self.end,
            state: shared.state(),
            exit_code: record.live.exit.and_then(|e| e.code),
        }
    }
}
