//! Timed housekeeping as a pure function of `now`: which sessions to evict for idleness and
//! which settled records to purge.

use crate::ids::SessionId;
use crate::session::StateKind;

/// What the sweep needs to know about one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The session.
    pub id: SessionId,
    /// Its state.
    pub state: StateKind,
    /// Last activity, ms since the epoch.
    pub last_active_ms: u64,
    /// Its idle timeout (0 = never).
    pub idle_timeout_ms: u64,
    /// When it settled (Ended, Failed or Suspended), ms since the epoch.
    pub settled_ms: Option<u64>,
}

/// A housekeeping decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Idle too long: snapshot (later) and end the process, keep a Suspended record.
    Evict(SessionId),
    /// Settled longer than the retention period: forget it.
    Purge(SessionId),
}

/// Decides the sweep's actions at `now_ms`.
pub fn due(now_ms: u64, retention_ms: u64, sessions: &[View]) -> Vec<Action> {
    sessions
        .iter()
        .filter_map(|s| {
            let idle = now_ms.saturating_sub(s.last_active_ms);
            match (s.state, s.settled_ms) {
                // Idle: Ready, or Paused in a debugger.
                (StateKind::Ready | StateKind::Paused, _)
                    if s.idle_timeout_ms > 0 && idle >= s.idle_timeout_ms =>
                {
                    Some(Action::Evict(s.id))
                }
                (StateKind::Ended | StateKind::Failed, Some(at))
                    if now_ms.saturating_sub(at) >= retention_ms =>
                {
                    Some(Action::Purge(s.id))
                }
                (StateKind::Suspended, _) if idle >= retention_ms => Some(Action::Purge(s.id)),
                _ => None,
            }
        })
        .collect()
}

/// A settled session as the store's size cap sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The session.
    pub id: SessionId,
    /// When it ended or failed, ms since the epoch.
    pub settled_ms: u64,
    /// Its bytes in the store.
    pub bytes: u64,
}

/// The sessions to purge so that `over` bytes are freed: the oldest ended first.
pub fn over_cap(mut ended: Vec<Stored>, over: u64) -> Vec<SessionId> {
    ended.sort_unstable_by_key(|s| (s.settled_ms, s.id));
    let mut freed = 0;
    ended
        .into_iter()
        .take_while(|s| {
            let more = freed < over;
            freed += s.bytes;
            more
        })
        .map(|s| s.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: StateKind, last_active_ms: u64, settled_ms: Option<u64>) -> View {
        View {
            id: SessionId::new(),
            state,
            last_active_ms,
            idle_timeout_ms: 100,
            settled_ms,
        }
    }

    #[test]
    fn idle_ready_sessions_are_evicted_busy_ones_are_not() {
        let ready = view(StateKind::Ready, 0, None);
        let busy = view(StateKind::Busy, 0, None);
        let fresh = view(StateKind::Ready, 950, None);
        assert_eq!(
            due(1000, 10_000, &[ready, busy, fresh]),
            vec![Action::Evict(ready.id)]
        );
    }

    #[test]
    fn settled_records_are_purged_after_retention() {
        let old = view(StateKind::Ended, 0, Some(100));
        let young = view(StateKind::Failed, 0, Some(900));
        assert_eq!(due(1000, 500, &[old, young]), vec![Action::Purge(old.id)]);
    }

    #[test]
    fn over_the_cap_the_oldest_ended_sessions_go_first_until_enough_is_freed() {
        let stored = |settled_ms, bytes| Stored {
            id: SessionId::new(),
            settled_ms,
            bytes,
        };
        let (old, mid, new) = (stored(10, 100), stored(20, 100), stored(30, 100));
        assert_eq!(over_cap(vec![new, old, mid], 150), vec![old.id, mid.id]);
        assert_eq!(over_cap(vec![new, old, mid], 100), vec![old.id]);
        assert!(over_cap(vec![new, old], 0).is_empty());
    }
}
