//! The session state machine (DESIGN §3): every transition is in [`State::apply`].
//!
//! ```text
//! Starting -> Ready <-> Busy        Starting/Ready/Busy/Paused -> Ending -> Ended
//!              Ready/Busy <-> Paused   Ready/Paused -> Ending(suspend) -> Suspended (eviction)
//!                                      Starting/Ready/Busy/Paused -> Ending(suspend) (shutdown)
//!                                      any live state -> Failed
//!                                      any live state -> Ended (the child exited on its own)
//!                                      Suspended -> Starting (resume) | Ended (end)
//!                                      Starting/Ready/Busy -> Suspended (an agent refused
//!                                        to continue its conversation)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use super::exit::ExitStatus;

/// The name of a state, without its data: what filters, the index and errors use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub enum StateKind {
    /// The child is being spawned and initialised.
    #[default]
    Starting,
    /// Idle, accepting operations.
    Ready,
    /// Running an operation; further execs queue.
    Busy,
    /// Stopped in a debugger.
    Paused,
    /// Being ended (TERM sent, waiting out the grace period).
    Ending,
    /// The child is gone; the record is kept until purged.
    Ended,
    /// Something broke (spawn failed, actor crashed, protocol broke).
    Failed,
    /// Evicted or restored after restart: record kept, no process.
    Suspended,
}

impl StateKind {
    /// All states, in declaration order.
    pub const ALL: [StateKind; 8] = [
        StateKind::Starting,
        StateKind::Ready,
        StateKind::Busy,
        StateKind::Paused,
        StateKind::Ending,
        StateKind::Ended,
        StateKind::Failed,
        StateKind::Suspended,
    ];

    /// True while a child process belongs to the session.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            StateKind::Starting
                | StateKind::Ready
                | StateKind::Busy
                | StateKind::Paused
                | StateKind::Ending
        )
    }

    /// True for states nothing leaves except a purge.
    pub fn is_terminal(self) -> bool {
        matches!(self, StateKind::Ended | StateKind::Failed)
    }

    /// Compact code for atomics.
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`StateKind::code`].
    pub(crate) fn from_code(code: u8) -> StateKind {
        Self::ALL[usize::from(code).min(Self::ALL.len() - 1)]
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A session's state with the data each state carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// See [`StateKind::Starting`].
    Starting,
    /// See [`StateKind::Ready`].
    Ready,
    /// See [`StateKind::Busy`].
    Busy,
    /// See [`StateKind::Paused`].
    Paused,
    /// See [`StateKind::Ending`].
    Ending {
        /// Become Suspended (eviction) rather than Ended once the process is gone.
        suspend: bool,
    },
    /// See [`StateKind::Ended`].
    Ended {
        /// How the child exited, when known.
        exit: Option<ExitStatus>,
    },
    /// See [`StateKind::Failed`].
    Failed {
        /// What broke.
        reason: String,
    },
    /// See [`StateKind::Suspended`].
    Suspended {
        /// Why, when it is not an eviction or a restart (an agent that would not continue
        /// its conversation).
        note: Option<String>,
    },
}

/// Something that happens to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The child is up and its driver is ready.
    Started,
    /// An operation began.
    OpBegin,
    /// The running operation finished.
    OpEnd,
    /// The debuggee stopped.
    Pause,
    /// The debuggee continues.
    Resume,
    /// An end (or, with `suspend`, an eviction) was requested.
    End {
        /// Evict to Suspended instead of ending.
        suspend: bool,
    },
    /// The child process is gone.
    Exited(Option<ExitStatus>),
    /// Something broke.
    Fail(String),
    /// A Suspended session is being respawned.
    Respawn,
    /// The server is shutting down: the process ends, the record stays resumable.
    Shutdown,
    /// An agent exited before its first turn when started to continue its conversation: the
    /// record stays resumable (with or without the conversation).
    Unresumed(String),
}

impl Event {
    /// The operation name used in refusals.
    fn verb(&self) -> &'static str {
        match self {
            Event::Started => "start",
            Event::OpBegin => "run an operation",
            Event::OpEnd => "finish an operation",
            Event::Pause => "pause",
            Event::Resume => "resume execution",
            Event::End { suspend: false } => "end",
            Event::End { suspend: true } => "suspend",
            Event::Exited(_) => "exit",
            Event::Fail(_) => "fail",
            Event::Respawn => "resume",
            Event::Shutdown => "suspend for shutdown",
            Event::Unresumed(_) => "suspend after a refused resume",
        }
    }
}

/// A refused transition: names the attempted operation, the current state and what it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {verb}: session is {current}, must be {needed}")]
pub struct Refused {
    /// The attempted operation.
    pub verb: &'static str,
    /// The state the session was in, rendered with its data.
    pub current: String,
    /// The states that would have allowed it.
    pub needed: &'static str,
}

impl StateKind {
    /// The state `event` leads to from a state of this kind, for a session known only by its
    /// kind (one without an actor, or whose actor is gone). Use it for events whose outcome
    /// does not depend on the state's data (`Fail`; `End` of a Suspended session).
    pub fn apply(self, event: &Event) -> Result<StateKind, Refused> {
        let state = match self {
            StateKind::Starting => State::Starting,
            StateKind::Ready => State::Ready,
            StateKind::Busy => State::Busy,
            StateKind::Paused => State::Paused,
            StateKind::Ending => State::Ending { suspend: false },
            StateKind::Ended => State::Ended { exit: None },
            StateKind::Failed => State::Failed {
                reason: String::new(),
            },
            StateKind::Suspended => State::Suspended { note: None },
        };
        state.apply(event).map(|next| next.kind())
    }
}

impl State {
    /// The state's name without data.
    pub fn kind(&self) -> StateKind {
        match self {
            State::Starting => StateKind::Starting,
            State::Ready => StateKind::Ready,
            State::Busy => StateKind::Busy,
            State::Paused => StateKind::Paused,
            State::Ending { .. } => StateKind::Ending,
            State::Ended { .. } => StateKind::Ended,
            State::Failed { .. } => StateKind::Failed,
            State::Suspended { .. } => StateKind::Suspended,
        }
    }

    /// The transition table. Returns the next state, or a refusal naming the current one.
    pub fn apply(&self, event: &Event) -> Result<State, Refused> {
        use State as S;
        let next = match (self, event) {
            (S::Starting, Event::Started) => S::Ready,
            (S::Ready, Event::OpBegin) => S::Busy,
            (S::Busy, Event::OpEnd) => S::Ready,
            (S::Ready | S::Busy, Event::Pause) => S::Paused,
            (S::Paused, Event::Resume) => S::Busy,
            (S::Starting | S::Ready | S::Busy | S::Paused, Event::End { suspend: false }) => {
                S::Ending { suspend: false }
            }
            // Only an idle session may be evicted: a running command is never killed for room.
            (S::Ready | S::Paused, Event::End { suspend: true }) => S::Ending { suspend: true },
            // At shutdown every live session is kept as a resumable record, busy or not.
            (S::Starting | S::Ready | S::Busy | S::Paused, Event::Shutdown) => {
                S::Ending { suspend: true }
            }
            (S::Ending { suspend: true }, Event::Exited(_)) => S::Suspended { note: None },
            (S::Starting | S::Ready | S::Busy, Event::Unresumed(why)) => S::Suspended {
                note: Some(why.clone()),
            },
            (
                S::Starting | S::Ready | S::Busy | S::Paused | S::Ending { .. },
                Event::Exited(exit),
            ) => S::Ended { exit: *exit },
            (
                S::Starting | S::Ready | S::Busy | S::Paused | S::Ending { .. },
                Event::Fail(reason),
            ) => S::Failed {
                reason: reason.clone(),
            },
            (S::Suspended { .. }, Event::Respawn) => S::Starting,
            (S::Suspended { .. }, Event::End { suspend: false }) => S::Ended { exit: None },
            _ => return Err(self.refuse(event)),
        };
        Ok(next)
    }

    fn refuse(&self, event: &Event) -> Refused {
        let needed = match event {
            Event::Started => "Starting",
            Event::OpBegin => "Ready",
            Event::OpEnd => "Busy",
            Event::Pause => "Ready or Busy",
            Event::Resume => "Paused",
            Event::End { suspend: false } => "Starting, Ready, Busy, Paused or Suspended",
            Event::End { suspend: true } => "Ready or Paused (idle)",
            Event::Exited(_) | Event::Fail(_) => "live",
            Event::Respawn => "Suspended",
            Event::Shutdown => "Starting, Ready, Busy or Paused",
            Event::Unresumed(_) => "Starting, Ready or Busy",
        };
        Refused {
            verb: event.verb(),
            current: self.to_string(),
            needed,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Ended { exit: Some(exit) } => write!(f, "Ended ({exit})"),
            State::Failed { reason } => write!(f, "Failed ({reason})"),
            State::Suspended { note: Some(note) } => write!(f, "Suspended ({note})"),
            other => fmt::Display::fmt(&other.kind(), f),
        }
    }
}
