//! The runtime's error type: every failure a caller can see, each naming what was wrong.

use crate::model::kind::Kind;
use crate::model::state::Refused;

/// An error from the session runtime. Every variant renders as a message that names the
/// problem; none of them means the runtime or another session was harmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session with this id exists for this owner (or it was purged).
    #[error("session not found: {id} (unknown id, another owner's session, or purged after its retention period)")]
    NotFound {
        /// The id that was asked for.
        id: String,
    },
    /// The handle names another node: the request reached the wrong server.
    #[error("{handle} is on node {node}, not on this node ({here}): send requests for it to node {node} (a proxy routes them by the handle's prefix, or the Mcp-Param-Session-Id / Mcp-Session-Id header)")]
    WrongNode {
        /// The handle asked for.
        handle: String,
        /// The node that holds it.
        node: String,
        /// This node.
        here: String,
    },
    /// The node is draining: it keeps its sessions but takes no new ones.
    #[error("node {node} is draining: it takes no new sessions (its own keep working); create the session on another node")]
    Draining {
        /// This node.
        node: String,
    },
    /// The caller called the operation off (its command was interrupted, or it never ran).
    #[error("cancelled by the caller")]
    Cancelled,
    /// No task with this id exists for this principal (or it expired).
    #[error(
        "task not found: {id} (unknown id, another principal's task, or expired after its ttl)"
    )]
    TaskNotFound {
        /// The id that was asked for.
        id: String,
    },
    /// The session's state does not allow the operation.
    #[error(transparent)]
    WrongState(#[from] Refused),
    /// The session is running a command and its queue is full.
    #[error("session is Busy and {queued} operations are already queued (limit {limit}); retry later or interrupt it")]
    Busy {
        /// Operations waiting.
        queued: usize,
        /// The configured queue bound.
        limit: usize,
    },
    /// An argument was invalid.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The program could not be started.
    #[error("cannot start {program:?}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The active profile does not allow this program for this kind.
    #[error("profile {profile:?} does not allow program {program:?} for {kind} sessions (allowed: {allowed})")]
    NotAllowed {
        /// The program asked for.
        program: String,
        /// The session kind.
        kind: Kind,
        /// The active profile.
        profile: String,
        /// The programs the profile allows.
        allowed: String,
    },
    /// Every live session is busy and the live-session limit is reached.
    #[error("at capacity: {limit} live sessions and none is idle to evict; end a session or retry later")]
    AtCapacity {
        /// The configured limit.
        limit: usize,
    },
    /// The kind does not support this operation.
    #[error("{op} is not supported by {kind} sessions")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The session kind.
        kind: Kind,
    },
    /// A queued operation's deadline passed before it could start.
    #[error("timed out after {waited_ms} ms waiting behind the running command; it never started")]
    QueueTimeout {
        /// How long it waited.
        waited_ms: u64,
    },
    /// The session did not become ready in time.
    #[error("session did not become ready within {ms} ms: {detail}")]
    StartupTimeout {
        /// The limit.
        ms: u64,
        /// What was seen so far (stderr tail).
        detail: String,
    },
    /// The child exited or the session failed while starting.
    #[error("session failed to start: {reason}")]
    StartFailed {
        /// Why (exit status and stderr tail).
        reason: String,
    },
    /// An I/O error talking to the child.
    #[error("i/o error on session: {0}")]
    Io(String),
    /// The session's actor stopped unexpectedly; the session is marked Failed.
    #[error("session {id} failed: its actor stopped unexpectedly")]
    ActorGone {
        /// The session id.
        id: String,
    },
    /// The debug adapter refused a request or went away.
    #[error("debugger: {0}")]
    Debug(String),
    /// The store failed to read or write a session's record.
    #[error("store: {0}")]
    Store(String),
    /// Starting a session would leave fewer descriptors free than the server keeps for its
    /// connections and its store.
    #[error("open-file limit nearly reached: {in_use} of {limit} descriptors in use; a session needs {needed} and {reserved} are kept free for connections and the store (end sessions, or raise the limit: ulimit -n / LimitNOFILE)")]
    OpenFileLimit {
        /// Descriptors in use.
        in_use: u64,
        /// The soft `RLIMIT_NOFILE`.
        limit: u64,
        /// Descriptors a session needs.
        needed: u64,
        /// Descriptors kept free (`runtime.fd_reserve`).
        reserved: u64,
    },
    /// The runtime is shutting down and accepts no new work.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl Error {
    /// [`Error::WrongNode`] when `handle` names another node than this one.
    pub fn wrong_node(handle: &str) -> Option<Self> {
        crate::model::node::elsewhere(handle).map(|node| Error::WrongNode {
            handle: handle.trim().to_owned(),
            node: node.to_owned(),
            here: crate::model::node::id().to_owned(),
        })
    }
}

impl From<crate::model::ids::NotAnId> for Error {
    fn from(e: crate::model::ids::NotAnId) -> Self {
        Error::NotFound { id: e.0 }
    }
}

impl From<crate::process::FdShortage> for Error {
    fn from(s: crate::process::FdShortage) -> Self {
        Error::OpenFileLimit {
            in_use: s.open.in_use,
            limit: s.open.limit,
            needed: s.needed,
            reserved: s.reserved,
        }
    }
}

/// Result alias for runtime operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
