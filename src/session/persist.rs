//! Snapshots of one session for the store: the record (spec plus what changed) and the
//! transcript events since the last snapshot, inputs interleaved with the output that came
//! before them. The session pushes after every operation and lifecycle change; pushing is a
//! short lock on the store's pending set, and the store's writer batches the disk writes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use super::shared::unix_ms;
use super::{Session, StateKind};
use crate::store::{Dir, Event, LiveRecord, Record, SpecRecord, Store, When};

/// A session's link to the store.
#[derive(Debug)]
pub(crate) struct Persist {
    store: Store,
    spec: Arc<SpecRecord>,
    /// Output cursors up to which the transcript has the bytes.
    saved: [u64; 2],
    next_seq: u64,
    inputs: Vec<Input>,
    settled_at_ms: Option<u64>,
    resumes: u64,
    /// A snapshot of output that arrived outside any operation is scheduled.
    armed: bool,
    interval: Duration,
    cap: u64,
    /// A terminal's screen as last stored: its generation, and whether with all its
    /// scrollback.
    screen_saved: Option<(u64, bool)>,
}

#[derive(Debug)]
struct Input {
    t_ms: u64,
    /// Output cursors when the input was written: output before them came first.
    at: [u64; 2],
    data: Vec<u8>,
}

impl Persist {
    /// A link for a new session, or for a resumed one continuing `resumed`.
    pub(crate) fn new(
        store: Store,
        spec: Arc<SpecRecord>,
        resumed: Option<&LiveRecord>,
        interval: Duration,
        cap: u64,
    ) -> Self {
        Self {
            store,
            spec,
            saved: resumed.map_or([0, 0], |r| r.output_end),
            next_seq: resumed.map_or(0, |r| r.transcript_seq),
            inputs: Vec::new(),
            settled_at_ms: None,
            resumes: resumed.map_or(0, |r| r.resumes + 1),
            armed: false,
            interval,
            cap,
            screen_saved: None,
        }
    }

    /// The store this session writes to (for driver blobs).
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// True for a session resumed from a stored record.
    pub(super) fn is_resume(&self) -> bool {
        self.resumes > 0
    }
}

impl Session {
    /// Records bytes written to the child for the transcript.
    pub(super) fn note_input(&mut self, data: &[u8]) {
        let at = [self.logs[0].end(), self.logs[1].end()];
        if let Some(p) = &mut self.persist {
            let keep = data.len().min(p.cap as usize);
            p.inputs.push(Input {
                t_ms: unix_ms(SystemTime::now()),
                at,
                data: data[data.len() - keep..].to_vec(),
            });
        }
    }

    /// Pushes the record and the new transcript events to the store.
    pub(super) fn persist(&mut self, when: When) {
        let Some(mut p) = self.persist.take() else {
            return;
        };
        let now = unix_ms(SystemTime::now());
        let mut events = Vec::new();
        for input in std::mem::take(&mut p.inputs) {
            self.output_until(&mut p, input.at, now, &mut events);
            events.push(Event {
                seq: next(&mut p.next_seq),
                t_ms: input.t_ms,
                dir: Dir::Input,
                offset: 0,
                data: input.data,
            });
        }
        let ends = [self.logs[0].end(), self.logs[1].end()];
        self.output_until(&mut p, ends, now, &mut events);
        let state = self.state.kind();
        let stopped = state.is_terminal() || state == StateKind::Suspended;
        if stopped {
            p.settled_at_ms.get_or_insert(now);
        }
        self.note_terminal_cwd();
        let record = Record {
            spec: Arc::clone(&p.spec),
            live: LiveRecord {
                state,
                state_detail: self.state.to_string(),
                exit: self.exit,
                cwd: self.cwd.clone(),
                last_active_ms: self.shared.last_active_ms(),
                settled_at_ms: p.settled_at_ms,
                timings: self.timings.into(),
                metrics: self.metrics.into(),
                output_end: ends,
                transcript_seq: p.next_seq,
                transcript_bytes: 0,
                stderr_tail: self.stderr_tail.clone(),
                resumes: p.resumes,
                debug: self.debug.as_ref().map(|d| d.record()),
                audit: self.audit.iter().map(Into::into).collect(),
                agent: self.agent.as_ref().map(|a| a.record.clone()),
            },
        };
        // Lazy: the record's push below wakes the writer as `when` says, for both.
        let (id, name) = (self.shared.id, super::terminal::SCREEN_BLOB);
        if state.is_terminal() {
            // An ended session is only an index entry and files: nothing of it stays in sled.
            if p.screen_saved.take().is_some() {
                p.store.put_blob(id, name, None, When::Lazy);
            }
        } else if let Some(screen) = self.screen_to_save(&mut p.screen_saved, stopped) {
            p.store.put_blob(id, name, Some(screen), When::Lazy);
        }
        p.store.put(record, events, when);
        self.persist = Some(p);
    }

    /// Output arrived: make sure it reaches the store within one flush interval even if no
    /// operation follows (a process that prints on its own).
    pub(super) fn output_arrived(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = &mut self.persist else { return };
        if p.armed {
            return;
        }
        p.armed = true;
        ctx.run_later(p.interval, |act, _| {
            let Some(p) = &mut act.persist else { return };
            p.armed = false;
            if p.saved != [act.logs[0].end(), act.logs[1].end()] {
                act.persist(When::Lazy);
            }
        });
    }

    /// Appends output events for each stream from what is saved up to `to`, as held.
    fn output_until(&self, p: &mut Persist, to: [u64; 2], now: u64, events: &mut Vec<Event>) {
        for (i, dir) in [(0, Dir::Stdout), (1, Dir::Stderr)] {
            let from = p.saved[i].max(to[i].saturating_sub(p.cap));
            for (lo, hi) in self.logs[i].held() {
                let (lo, hi) = (lo.max(from), hi.min(to[i]));
                if lo >= hi {
                    continue;
                }
                let mut data = Vec::with_capacity((hi - lo) as usize);
                self.logs[i].copy_range(lo, hi, &mut data);
                events.push(Event {
                    seq: next(&mut p.next_seq),
                    t_ms: now,
                    dir,
                    offset: lo,
                    data,
                });
            }
            p.saved[i] = p.saved[i].max(to[i]);
        }
    }
}

fn next(seq: &mut u64) -> u64 {
    let s = *seq;
    *seq += 1;
    s
}
