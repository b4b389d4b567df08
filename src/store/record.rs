//! What is stored about a session: its record (the spec it was created with plus what changes)
//! and the events of its transcript. These are the serialised forms, separate from the live
//! actor state; the session builds them, the store only encodes and writes them.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::codec::{self, DecodeError};
use crate::ids::SessionId;
use crate::model::audit::{AuditAction, AuditEntry, Via};
use crate::model::kind::{Kind, KindOptions};
use crate::model::limits::Limits;
use crate::model::metrics::{LastStop, Metrics, Timings};
use crate::model::state::StateKind;
use crate::model::task::TaskStatus;
use crate::process::{ExitStatus, Rlimits};

/// One session's stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What the session was created with; shared, since it never changes.
    pub spec: Arc<SpecRecord>,
    /// What changes as it runs.
    pub live: LiveRecord,
}

/// The unchanging part of a record: enough to respawn the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRecord {
    /// The id.
    pub id: SessionId,
    /// The principal that owns it.
    pub owner: String,
    /// Its kind.
    pub kind: Kind,
    /// Its label.
    pub name: Option<String>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory at creation.
    pub cwd: PathBuf,
    /// The child's complete environment.
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// Idle time before eviction, ms (0 = never).
    pub idle_timeout_ms: u64,
    /// Creation order.
    pub seq: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Kind-specific options.
    #[serde(default)]
    pub options: KindOptions,
    /// Memory and process limits (absent in older records: the config's defaults apply).
    #[serde(default)]
    pub limits: Option<Limits>,
}

/// The changing part of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveRecord {
    /// State when the snapshot was taken.
    pub state: StateKind,
    /// The state with its details.
    pub state_detail: String,
    /// How the child exited, once it has.
    pub exit: Option<ExitStatus>,
    /// Working directory after the last exec (shell).
    pub cwd: Option<String>,
    /// Last activity, ms since the Unix epoch.
    pub last_active_ms: u64,
    /// When the session reached Ended, Failed or Suspended, ms since the Unix epoch.
    pub settled_at_ms: Option<u64>,
    /// Durations.
    pub timings: StoredTimings,
    /// Counters.
    pub metrics: StoredMetrics,
    /// Cursors one past the last byte of stdout and stderr.
    pub output_end: [u64; 2],
    /// Sequence number the next transcript event will get.
    pub transcript_seq: u64,
    /// Transcript bytes held in the store (kept up to date by the store).
    pub transcript_bytes: u64,
    /// Last lines of stderr when the session ended or failed.
    pub stderr_tail: Option<String>,
    /// How many times the session was resumed.
    pub resumes: u64,
    /// A debug session's breakpoints and last stop.
    pub debug: Option<DebugRecord>,
    /// Who created, resumed, signalled, suspended and ended it (absent in older records).
    pub audit: Vec<StoredAudit>,
    /// An agent session's own conversation (absent for other kinds and in older records).
    pub agent: Option<AgentRecord>,
}

/// What an agent session keeps of its CLI's conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentRecord {
    /// The conversation id the agent reported (its profile's `session_id_pointer`).
    pub session_id: Option<String>,
    /// A fork that has not reported its own id yet: the conversation it starts from a copy of.
    pub fork_of: Option<String>,
    /// What the last launch did with the conversation.
    pub note: String,
}

/// One audit entry, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredAudit {
    /// `created`, `resumed`, `signalled`, `suspended` or `ended`.
    pub action: String,
    /// Who.
    pub principal: String,
    /// `library`, `stdio`, `http` or `runtime`.
    pub via: String,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The signal, for `signalled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

impl From<&AuditEntry> for StoredAudit {
    fn from(e: &AuditEntry) -> Self {
        let action = match e.action {
            AuditAction::Created => "created",
            AuditAction::Resumed => "resumed",
            AuditAction::Signalled => "signalled",
            AuditAction::Suspended => "suspended",
            AuditAction::Ended => "ended",
        };
        Self {
            action: action.into(),
            principal: e.principal.clone(),
            via: e.via.as_str().into(),
            at: e.at.clone(),
            signal: e.signal.clone(),
        }
    }
}

impl StoredAudit {
    /// The entry, or None for an action or door this build does not know.
    pub fn entry(&self) -> Option<AuditEntry> {
        let action = match self.action.as_str() {
            "created" => AuditAction::Created,
            "resumed" => AuditAction::Resumed,
            "signalled" => AuditAction::Signalled,
            "suspended" => AuditAction::Suspended,
            "ended" => AuditAction::Ended,
            _ => return None,
        };
        let via = match self.via.as_str() {
            "library" => Via::Library,
            "stdio" => Via::Stdio,
            "http" => Via::Http,
            "runtime" => Via::Runtime,
            _ => return None,
        };
        Some(AuditEntry {
            action,
            principal: self.principal.clone(),
            via,
            at: self.at.clone(),
            signal: self.signal.clone(),
        })
    }
}

/// What a debug session keeps across a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DebugRecord {
    /// Breakpoints, set again when the session resumes.
    pub breakpoints: Vec<StoredBreakpoint>,
    /// The last stop.
    pub last_stop: Option<StoredStop>,
    /// The program's exit code, once it ended.
    pub program_exit: Option<i32>,
}

/// One breakpoint of a debug session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredBreakpoint {
    /// Absolute path of the source file.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// Stop only when this is true.
    pub condition: Option<String>,
}

/// What the registry needs of a record at start: decoded without the environment, argv and
/// counters, which are read when a session is resumed or described.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordHead {
    /// Identity.
    pub spec: SpecHead,
    /// State.
    pub live: LiveHead,
}

/// Identity fields of [`SpecRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpecHead {
    /// The id.
    pub id: SessionId,
    /// The owner.
    pub owner: String,
    /// The kind.
    pub kind: Kind,
    /// The label.
    pub name: Option<String>,
    /// Idle time before eviction, ms.
    pub idle_timeout_ms: u64,
    /// Creation order.
    pub seq: u64,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
}

/// State fields of [`LiveRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LiveHead {
    /// State when the snapshot was taken.
    pub state: StateKind,
    /// Last activity, ms since the Unix epoch.
    pub last_active_ms: u64,
    /// When the session settled, ms since the Unix epoch.
    pub settled_at_ms: Option<u64>,
    /// Transcript bytes held.
    pub transcript_bytes: u64,
}

/// Direction of a transcript event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// Written to the child (exec input, send data).
    Input,
    /// Read from the child's stdout.
    Stdout,
    /// Read from the child's stderr.
    Stderr,
}

/// One transcript event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the session's transcript.
    pub seq: u64,
    /// When it happened (output: when it was snapshotted), ms since the Unix epoch.
    pub t_ms: u64,
    /// Which way the bytes went.
    pub dir: Dir,
    /// For output, the stream cursor of the first byte; 0 for input.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Dir {
    pub(crate) fn code(self) -> u8 {
        match self {
            Dir::Input => 0,
            Dir::Stdout => 1,
            Dir::Stderr => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Dir> {
        [Dir::Input, Dir::Stdout, Dir::Stderr]
            .get(usize::from(c))
            .copied()
    }
}

const EVENT_HEADER: usize = 17;

impl Event {
    /// The schema-1 sled value of an event (`[t_ms u64 LE][dir u8][offset u64 LE][data]` in
    /// the envelope), kept to read and test stores written before segment files.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(EVENT_HEADER + self.data.len());
        payload.extend_from_slice(&self.t_ms.to_le_bytes());
        payload.push(self.dir.code());
        payload.extend_from_slice(&self.offset.to_le_bytes());
        payload.extend_from_slice(&self.data);
        codec::seal(&payload)
    }

    /// Decodes a schema-1 sled value stored under sequence number `seq`.
    pub fn decode(seq: u64, value: &[u8]) -> Result<Event, DecodeError> {
        let p = codec::open(value)?;
        if p.len() < EVENT_HEADER {
            return Err(DecodeError::Payload(format!(
                "transcript event of {} bytes is shorter than its header",
                p.len()
            )));
        }
        let dir = Dir::from_code(p[8])
            .ok_or_else(|| DecodeError::Payload(format!("unknown direction {}", p[8])))?;
        Ok(Event {
            seq,
            t_ms: u64::from_le_bytes(p[..8].try_into().expect("8 bytes")),
            dir,
            offset: u64::from_le_bytes(p[9..17].try_into().expect("8 bytes")),
            data: p[EVENT_HEADER..].to_vec(),
        })
    }
}

/// Key of a record in the `sessions` tree.
pub fn session_key(id: SessionId) -> [u8; 16] {
    *id.0.as_bytes()
}

/// Key of a transcript event in a schema-1 store: the session id, then the sequence number
/// big-endian, so one session's events are contiguous and in order.
pub fn event_key(id: SessionId, seq: u64) -> [u8; 24] {
    let mut k = [0; 24];
    k[..16].copy_from_slice(&session_key(id));
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Key of a blob: the session id, then its name.
pub fn blob_key(id: SessionId, name: &str) -> Vec<u8> {
    let mut k = session_key(id).to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// The sequence number in an event key.
pub fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(16..24)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        let e = Event {
            seq: 7,
            t_ms: 1_700_000_000_123,
            dir: Dir::Stderr,
            offset: 42,
            data: b"oops\n".to_vec(),
        };
        assert_eq!(Event::decode(7, &e.encode()).unwrap(), e);
    }

    #[test]
    fn event_keys_sort_by_session_then_sequence() {
        let a = SessionId::new();
        assert!(event_key(a, 1) < event_key(a, 256));
        assert_eq!(seq_of(&event_key(a, 300)), Some(300));
    }
}

// The stored forms of what a session reports about itself. They mirror the model's types
// field for field today, but they are the disk format: the model (and the tool schemas built
// from it) may change without changing what old data dirs hold, and the other way round.

/// Durations, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTimings {
    /// Duration of the last completed operation, ms.
    pub last_op_ms: u64,
    /// Sum of all operation durations, ms.
    pub total_op_ms: u64,
}

impl From<Timings> for StoredTimings {
    fn from(t: Timings) -> Self {
        Self {
            last_op_ms: t.last_op_ms,
            total_op_ms: t.total_op_ms,
        }
    }
}

impl From<StoredTimings> for Timings {
    fn from(t: StoredTimings) -> Self {
        Self {
            last_op_ms: t.last_op_ms,
            total_op_ms: t.total_op_ms,
        }
    }
}

/// Counters, as stored (the agent's were added later: absent in older records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMetrics {
    /// Operations performed.
    pub ops: u64,
    /// Bytes written to the child's stdin.
    pub bytes_in: u64,
    /// Bytes read from the child's stdout and stderr.
    pub bytes_out: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Agent: messages received.
    #[serde(default)]
    pub messages: u64,
    /// Agent: input tokens used.
    #[serde(default)]
    pub input_tokens: u64,
    /// Agent: output tokens used.
    #[serde(default)]
    pub output_tokens: u64,
}

impl From<Metrics> for StoredMetrics {
    fn from(m: Metrics) -> Self {
        Self {
            ops: m.ops,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            errors: m.errors,
            messages: m.messages,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
        }
    }
}

impl From<StoredMetrics> for Metrics {
    fn from(m: StoredMetrics) -> Self {
        Self {
            ops: m.ops,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            errors: m.errors,
            messages: m.messages,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
        }
    }
}

/// A debug session's last stop, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStop {
    /// Source file.
    pub file: Option<String>,
    /// Line.
    pub line: Option<u32>,
    /// Times the session has stopped at this file and line.
    pub hit_count: u64,
    /// Why it stopped.
    pub reason: String,
}

impl From<LastStop> for StoredStop {
    fn from(s: LastStop) -> Self {
        Self {
            file: s.file,
            line: s.line,
            hit_count: s.hit_count,
            reason: s.reason,
        }
    }
}

impl From<StoredStop> for LastStop {
    fn from(s: StoredStop) -> Self {
        Self {
            file: s.file,
            line: s.line,
            hit_count: s.hit_count,
            reason: s.reason,
        }
    }
}

/// A task as stored: what is needed to answer for it after a restart. The outcome is the
/// front end's encoding of what the operation returned (opaque here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task id (32 hex digits).
    pub id: String,
    /// The principal that created it (only it may see it).
    pub owner: String,
    /// What runs (the front end's name for the operation).
    pub op: String,
    /// Where it is.
    pub status: TaskStatus,
    /// Why it is there, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Last changed, Unix ms.
    pub updated_ms: u64,
    /// Kept this long after it was created, ms.
    pub ttl_ms: u64,
    /// How often a caller should ask about it, ms.
    pub poll_ms: u64,
    /// Whether the result reports a failure of the work itself (a tool error).
    #[serde(default)]
    pub tool_error: bool,
    /// What the operation returned, once it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}
