//! What a session without a process answers: its state and its output, from the stored record
//! and transcript. A Suspended session (evicted, or restored after a restart) has no actor;
//! these views serve it until it is resumed.

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
        name: shared.name.clone(),
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
        created_at: rfc3339(shared.created_at),
        last_active_at: rfc3339(UNIX_EPOCH + Duration::from_millis(shared.last_active_ms())),
        arbiter: shared.arbiter,
        timings: live.timings,
        metrics: live.metrics,
        last_stop: live.debug.as_ref().and_then(|d| d.last_stop.clone()),
    }
}

/// A page of one stream from the stored transcript. Cursors are the same as when the session
/// was live; bytes the transcript no longer holds are reported as dropped.
pub(crate) fn read(
    shared: &Shared,
    record: &Record,
    events: &[Event],
    req: &Read,
    max: usize,
) -> ReadResult {
    let dir = match req.stream {
        Stream::Stdout => Dir::Stdout,
        Stream::Stderr => Dir::Stderr,
    };
    let end = record.live.output_end[req.stream.index()];
    let mut cursor = req.cursor.unwrap_or(0).min(end);
    let mut dropped = 0;
    let mut data = Vec::new();
    for e in events.iter().filter(|e| e.dir == dir) {
        let e_end = e.offset + e.data.len() as u64;
        if e_end <= cursor {
            continue;
        }
        if e.offset > cursor {
            if !data.is_empty() {
                break; // a gap: the next page reports it
            }
            dropped += e.offset - cursor;
            cursor = e.offset;
        }
        let from = (cursor - e.offset) as usize;
        let take = (e.data.len() - from).min(max - data.len());
        data.extend_from_slice(&e.data[from..from + take]);
        cursor += take as u64;
        if data.len() >= max {
            break;
        }
    }
    if data.is_empty() && cursor < end {
        // Nothing held from here on: skip to the end.
        dropped += end - cursor;
        cursor = end;
    }
    let (data, lossy) = match String::from_utf8(data) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    };
    ReadResult {
        data,
        cursor,
        dropped_bytes: dropped,
        lossy,
        eof: cursor >= end,
        state: shared.state(),
        exit_code: record.live.exit.and_then(|e| e.code),
    }
}
