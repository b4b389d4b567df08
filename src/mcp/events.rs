//! The server-to-client event stream of a handshake-era HTTP session (the standalone GET
//! stream): notifications that belong to no request (resource updates, task status) are
//! numbered and kept in a bounded buffer, delivered to the GET stream that is connected, and
//! replayed after `Last-Event-ID` to one that reconnects. What the buffer dropped is gone;
//! a client that resumes from before it starts at the oldest event kept.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Events kept for replay at most, and their bytes at most.
const MAX_EVENTS: usize = 1024;
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// One session's numbered server-to-client events.
#[derive(Debug, Default)]
pub(crate) struct EventStream {
    inner: Mutex<Inner>,
    /// Wakes the connected GET stream when an event arrives or another stream takes over.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Id of the next event (ids start at 1).
    next: u64,
    kept: VecDeque<(u64, Arc<str>)>,
    bytes: usize,
    /// Counts the GET streams that attached: the newest one is the connected one.
    attached: u64,
}

impl EventStream {
    /// Appends a message as the next event.
    pub(crate) fn push(&self, message: String) {
        {
            let mut s = self.inner.lock();
            s.next = s.next.max(1);
            let id = s.next;
            s.next += 1;
            s.bytes += message.len();
            s.kept.push_back((id, Arc::from(message)));
            while s.kept.len() > MAX_EVENTS || (s.bytes > MAX_BYTES && s.kept.len() > 1) {
                if let Some((_, m)) = s.kept.pop_front() {
                    s.bytes -= m.len();
                }
            }
        }
        self.wake.notify_waiters();
    }

    /// Attaches a new GET stream, detaching the previous one; returns its ticket.
    pub(crate) fn attach(&self) -> u64 {
        let ticket = {
            let mut s = self.inner.lock();
            s.attached += 1;
            s.attached
        };
        self.wake.notify_waiters();
        ticket
    }

    /// Ends the connected stream (its session is gone).
    pub(crate) fn close(&self) {
        self.attach();
    }

    /// True while `ticket` is the connected stream.
    pub(crate) fn is_attached(&self, ticket: u64) -> bool {
        self.inner.lock().attached == ticket
    }

    /// The events after id `after` (all kept ones for `None`).
    pub(crate) fn after(&self, after: Option<u64>) -> Vec<(u64, Arc<str>)> {
        let s = self.inner.lock();
        let from = after.unwrap_or(0);
        s.kept
            .iter()
            .filter(|(id, _)| *id > from)
            .cloned()
            .collect()
    }

    /// Resolves when an event arrives or another stream attaches (register with
    /// `enable` before checking, as for any `Notify`).
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_replayed_after_an_id_and_bounded() {
        let s = EventStream::default();
        for i in 0..3 {
            s.push(format!("m{i}"));
        }
        let all = s.after(None);
        assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 2, 3]);
        let rest = s.after(Some(1));
        assert_eq!(&*rest[0].1, "m1");
        assert_eq!(rest.len(), 2);
        for i in 0..MAX_EVENTS + 5 {
            s.push(format!("n{i}"));
        }
        let kept = s.after(None);
        assert_eq!(kept.len(), MAX_EVENTS);
        assert_eq!(kept.last().unwrap().0, (MAX_EVENTS + 8) as u64);
        let first = s.attach();
        assert!(s.is_attached(first));
        let second = s.attach();
        assert!(!s.is_attached(first) && s.is_attached(second));
    }
}
