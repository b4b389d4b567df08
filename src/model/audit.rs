//! A session's audit trail: who created, resumed, signalled, suspended and ended it, through
//! which door, and when.

use serde::{Deserialize, Serialize};

/// How a request reached the runtime.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A program embedding the runtime called its `Handle`.
    #[default]
    Library,
    /// An MCP client over stdio.
    Stdio,
    /// An MCP client over Streamable HTTP.
    Http,
    /// The runtime itself (an idle timeout, an eviction, a shutdown).
    Runtime,
}

impl Via {
    /// The transport's name as logged and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Library => "library",
            Via::Stdio => "stdio",
            Via::Http => "http",
            Via::Runtime => "runtime",
        }
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// The session was created.
    Created,
    /// A Suspended session was started again.
    Resumed,
    /// A signal was sent to its process group.
    Signalled,
    /// It became a Suspended record (evicted, or the server stopped).
    Suspended,
    /// It was ended.
    Ended,
}

/// One entry of a session's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// What was done.
    pub action: AuditAction,
    /// Who did it: the session's owner, or `stablehand` for the runtime itself.
    pub principal: String,
    /// Through which door.
    pub via: Via,
    /// When, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// The signal, for `signalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// Entries a trail keeps: the first (the creation) and the newest ones up to this many.
pub const AUDIT_KEEP: usize = 32;

/// Appends `entry` to `trail`, keeping its first entry and the newest up to [`AUDIT_KEEP`].
pub fn push_audit(trail: &mut Vec<AuditEntry>, entry: AuditEntry) {
    if trail.len() >= AUDIT_KEEP {
        trail.remove(1);
    }
    trail.push(entry);
}

/// The principal named for the runtime's own actions.
pub const RUNTIME_PRINCIPAL: &str = "stablehand";
