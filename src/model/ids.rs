//! Identifiers: session ids (uuid v4) and owners (the principal a session belongs to).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An opaque, high-entropy session handle: a uuid v4, handed out as `<node>.<uuid>` (the
/// node that holds it first, see [`super::node`]). `Display` and serialisation write the
/// handle (file names use the bare uuid, `.0`); parsing accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The handle clients see: `<node>.<uuid>` (what `Display` writes).
    pub fn handle(&self) -> String {
        self.to_string()
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.handle())
    }
}

impl<'de> Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for SessionId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SessionId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A session handle: the node that holds the session, a dot, a uuid."
        })
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    /// The handle (`<node>.<uuid>`); file names use the bare uuid (`.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match super::node::id() {
            "" => fmt::Display::fmt(&self.0, f),
            node => write!(f, "{node}.{}", self.0),
        }
    }
}

/// Deserializes an optional handle that must be this node's: one of another node is refused
/// naming that node (a fork runs where its parent's files are).
pub fn this_nodes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SessionId>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(node) = super::node::elsewhere(&text) {
        return Err(serde::de::Error::custom(format!(
            "{text} is on node {node}, not on this node ({}): send this request to node {node}",
            super::node::id()
        )));
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Text that is not a session id; the runtime reports it as an unknown session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnId(pub String);

impl fmt::Display for NotAnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a session id", self.0)
    }
}

impl std::error::Error for NotAnId {}

impl FromStr for SessionId {
    type Err = NotAnId;
    /// A handle (`<node>.<uuid>`, whichever node) or a bare uuid.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (_, uuid) = super::node::split(s.trim());
        Uuid::parse_str(uuid)
            .map(SessionId)
            .map_err(|_| NotAnId(s.to_owned()))
    }
}

/// The principal a session belongs to; other owners cannot see or touch it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Owner(Arc<str>);

impl Owner {
    /// An owner with this name.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Owner {
    /// The owner named in a stored record. Stdio clients were the principal `stdio` before
    /// every unauthenticated request became the local principal; their sessions are the
    /// local principal's now.
    pub fn from_stored(name: &str) -> Self {
        match name {
            "stdio" => Self::default(),
            other => Self::new(other),
        }
    }
}

impl Default for Owner {
    /// The single local principal used when nothing identifies the caller.
    fn default() -> Self {
        Self::new("local")
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An opaque, unguessable task handle: 128 random bits (uuid v4 from the operating system's
/// random source), written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub Uuid);

impl TaskId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    /// The handle (`<node>.<32 hex digits>`); file names use `.0.simple()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match super::node::id() {
            "" => fmt::Display::fmt(&self.0.simple(), f),
            node => write!(f, "{node}.{}", self.0.simple()),
        }
    }
}

impl TaskId {
    /// The handle clients see: `<node>.<32 hex digits>` (what `Display` writes).
    pub fn handle(&self) -> String {
        self.to_string()
    }
}

impl FromStr for TaskId {
    type Err = NotAnId;
    /// Only the 32-hex-digit form this server hands out, with or without its node prefix.
    fn from_str(whole: &str) -> Result<Self, Self::Err> {
        let (_, s) = super::node::split(whole);
        let hex = s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| Uuid::parse_str(s).ok())
            .flatten()
            .map(TaskId)
            .ok_or_else(|| NotAnId(whole.to_owned()))
    }
}
