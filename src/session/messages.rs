//! Messages a session actor accepts and the results it returns. These are the public
//! vocabulary for callers that hold an `Addr<Session>`; [`crate::Handle`] wraps them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix::Message;
use serde::{Deserialize, Serialize};

pub use super::debug::messages::*;
use super::kind::{AgentOptions, DebugOptions};
use super::{Kind, StateKind, Stream};
use crate::ids::SessionId;
pub use crate::model::audit::{AuditAction, AuditEntry, Via};
use crate::model::kind::TerminalOptions;
use crate::process::Signal;
use crate::Result;

pub use crate::model::limits::{Limits, LimitsInfo};
pub use crate::model::metrics::{Metrics, Timings};

/// Arguments for creating a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CreateRequest {
    /// What to run: `shell` (a persistent bash, the default), `process` (any program),
    /// `repl` (a Python REPL), `agent` (an agent CLI speaking JSON lines), `debug` (a
    /// program under a Debug Adapter Protocol adapter, debugpy by default) or `terminal` (a
    /// program under a pseudo-terminal, read through its screen).
    pub kind: Option<Kind>,
    /// Program and arguments; default per kind (shell: `bash --noprofile --norc`). Required
    /// for `process`.
    pub command: Option<Vec<String>>,
    /// Working directory; default the server's.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (added to the configured pass-through list).
    pub env: BTreeMap<String, String>,
    /// Optional label, unique per owner among live sessions: creating a name that is live
    /// returns that session instead (get-or-create).
    pub name: Option<String>,
    /// Idle time after which the session is evicted (Suspended), in ms; default from config.
    pub idle_timeout_ms: Option<u64>,
    /// For `agent` sessions: how a turn ends (default: a line whose `type` is `result`).
    pub agent: Option<AgentOptions>,
    /// For `debug` sessions (required): the program to debug and how to launch it.
    pub debug: Option<DebugOptions>,
    /// For `terminal` sessions: the screen size (default 120 x 40).
    pub terminal: Option<TerminalOptions>,
    /// Memory (MiB) and process limits of the whole session; default and maximum from the
    /// server's config.
    pub limits: Option<Limits>,
}

/// Run one command (shell), or write a line and collect what follows (process).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<ExecResult>")]
#[serde(default, deny_unknown_fields)]
pub struct Exec {
    /// Shell: a command line (any bash, multi-line allowed). Process: a line for stdin.
    pub input: String,
    /// How long to wait, in ms (default 30000). On timeout the command keeps running.
    pub timeout_ms: Option<u64>,
    /// Connect the command's stdin to the session (feed it with `send`) instead of /dev/null.
    pub interactive: bool,
}

/// An exec that `cancel` can call off: its command is interrupted if it runs, or it leaves
/// the queue if it waits (another exec is never touched). It then ends with
/// [`Error::Cancelled`](crate::Error::Cancelled).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ExecResult>")]
pub struct ExecUntil {
    /// The exec.
    pub exec: Exec,
    /// Fires when the caller gives up.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// The outcome of an exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecResult {
    /// Standard output of the command (lossy UTF-8; see `lossy`).
    pub stdout: String,
    /// Standard error of the command.
    pub stderr: String,
    /// Exit status (`$?` for shells; the shell's own code if it exited). `None` when the
    /// command is still running (timed out) or the kind has none.
    pub exit_code: Option<i32>,
    /// Working directory of the shell after the command.
    pub cwd: Option<String>,
    /// True when the timeout passed first: the command keeps running, the session stays
    /// Busy, and `session_read` from `cursor` returns the rest.
    pub timed_out: bool,
    /// Wall time of the exec in ms.
    pub duration_ms: u64,
    /// Stdout cursor after this exec's output (read from here for what follows).
    pub cursor: u64,
    /// Stderr cursor after this exec's output.
    pub stderr_cursor: u64,
    /// Bytes of this exec's output left out between the kept head and tail.
    pub dropped_bytes: u64,
    /// True when the output was not valid UTF-8 and invalid bytes were replaced.
    pub lossy: bool,
    /// True when the command ended the session (for example `exit 3`).
    pub session_ended: bool,
    /// REPL: `repr` of the value of the last expression, as an interactive Python shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// REPL: the exception the code raised; agent: why the turn did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ExecError>,
    /// Agent: the turn's output lines, parsed (non-JSON lines as `{"type":"text","text":…}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<serde_json::Value>>,
    /// Agent: the line that ended the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Agent: token totals summed from the turn's `usage` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// A session limit reached while the command ran ("memory limit 512 MiB reached: 1
    /// process killed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// An error raised by the code an exec ran (REPL), or a turn that did not finish (agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecError {
    /// The exception type (`ZeroDivisionError`, `SyntaxError`, `KeyboardInterrupt`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its message.
    pub message: String,
    /// The formatted traceback.
    pub traceback: String,
}

/// Token totals of an agent turn.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// Write bytes to the session's stdin.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<SendResult>")]
#[serde(default, deny_unknown_fields)]
pub struct SendInput {
    /// Text to write, exactly as given (add `\n` yourself for a line).
    pub data: String,
    /// Close stdin after writing.
    pub eof: bool,
}

/// The outcome of a send.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct SendResult {
    /// Bytes accepted for writing.
    pub bytes_written: usize,
    /// Current stdout cursor (output after the input starts here).
    pub cursor: u64,
}

/// Read output by cursor, optionally waiting for more.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<ReadResult>")]
#[serde(default, deny_unknown_fields)]
pub struct Read {
    /// Which stream (default stdout).
    pub stream: Stream,
    /// Absolute byte cursor; default where the last read of this stream ended.
    pub cursor: Option<u64>,
    /// Most bytes to return (default 65536, at least 1).
    pub max_bytes: Option<usize>,
    /// Wait up to this many ms for new output or exit when none is available.
    pub wait_ms: Option<u64>,
}

/// A page of output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReadResult {
    /// The bytes (lossy UTF-8).
    pub data: String,
    /// Cursor to pass next time.
    pub cursor: u64,
    /// Bytes skipped because they were dropped between the kept head and tail.
    pub dropped_bytes: u64,
    /// True when invalid UTF-8 was replaced.
    pub lossy: bool,
    /// True when the stream is closed and everything has been read.
    pub eof: bool,
    /// The session's state.
    pub state: StateKind,
    /// Exit code once the process has exited.
    pub exit_code: Option<i32>,
}

/// Ask for a session's state, timings and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Message)]
#[rtype(result = "Result<SessionInfo>")]
pub struct GetInfo;

/// Deliver a signal to the session's whole process group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<SignalResult>")]
pub struct SendSignal {
    /// The signal.
    pub signal: Signal,
    /// The door the request came through (for the audit trail).
    #[serde(skip)]
    pub via: Via,
    /// For an interrupt of a running exec: send it again, every 500 ms and at most three more
    /// times, while that same exec is still running. A cancelled call uses this: bash can
    /// swallow an interrupt that lands while it is forking the command (the child still has
    /// bash's handler), and the command then runs on.
    #[serde(default)]
    pub until_exec_ends: bool,
}

/// The outcome of a signal.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct SignalResult {
    /// False when the process group was already gone.
    pub delivered: bool,
}

/// End the session: TERM to its process group, KILL after the grace period, reap.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Message,
    schemars::JsonSchema,
)]
#[rtype(result = "Result<EndResult>")]
#[serde(default, deny_unknown_fields)]
pub struct End {
    /// Grace between TERM and KILL in ms (default 3000).
    pub grace_ms: Option<u64>,
    /// Why it ends (callers end; the registry evicts and shuts down).
    #[serde(skip)]
    pub mode: EndMode,
    /// The door a caller's request came through (for the audit trail; the registry's own
    /// ends are the runtime's).
    #[serde(skip)]
    pub via: Via,
}

/// Why a session is being ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndMode {
    /// A caller ended it: the record becomes Ended.
    #[default]
    End,
    /// Evicted (idle timeout or room for another): only an idle session is evicted, and it
    /// becomes a Suspended, resumable record.
    Evict,
    /// The server is shutting down: every live session becomes a Suspended record.
    Shutdown,
}

/// The outcome of ending a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EndResult {
    /// True once the process is gone.
    pub ended: bool,
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// Name of the signal that killed it, if any.
    pub signal: Option<String>,
    /// The state after ending (Ended, or Suspended for an eviction).
    pub state: StateKind,
}

/// Everything known about one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionInfo {
    /// The session's id.
    pub session_id: SessionId,
    /// Its label, if any.
    pub name: Option<String>,
    /// Its kind.
    pub kind: Kind,
    /// Its state.
    pub state: StateKind,
    /// The state with its details (exit status, failure reason).
    pub state_detail: String,
    /// Process id of the child (also its process group id), while it runs.
    pub pid: Option<u32>,
    /// Exit code after exit.
    pub exit_code: Option<i32>,
    /// Signal that ended the child, if any.
    pub signal: Option<String>,
    /// Last lines of stderr when the session ended or failed.
    pub stderr_tail: Option<String>,
    /// Working directory after the last exec (shell).
    pub cwd: Option<String>,
    /// The command line it runs.
    pub command: Vec<String>,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Last activity time, RFC 3339 UTC.
    pub last_active_at: String,
    /// Index of the arbiter (thread) hosting the session.
    pub arbiter: usize,
    /// Durations.
    pub timings: Timings,
    /// Counters.
    pub metrics: Metrics,
    /// Debug sessions: where the program last stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stop: Option<LastStop>,
    /// Who created, resumed, signalled, suspended and ended it, oldest first (the creation
    /// and the newest 31 entries).
    #[serde(default)]
    pub audit: Vec<AuditEntry>,
    /// Its memory and process limits, how they are enforced, and what they have done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsInfo>,
    /// Agent sessions: the agent's own conversation id, once its output reported it (what
    /// `session_resume` continues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    /// Agent sessions with a profile: what the last start did with the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_conversation: Option<String>,
}

/// Reports from a session to its supervisor (the registry).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub enum SessionEvent {
    /// The session reached Ended, Failed or Suspended.
    Settled(SessionId),
    /// The session's actor stopped while the session was live (it is now Failed).
    Vanished(SessionId),
}

/// Fault injection for supervision tests: makes the actor panic.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Type into a terminal session, then wait for its screen.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<TerminalView>")]
#[serde(default, deny_unknown_fields)]
pub struct TerminalSend {
    /// Text to type (newlines are sent as Enter; several lines go as one bracketed paste when
    /// the program asked for it).
    pub text: Option<String>,
    /// Named keys to press after the text, in order: enter, tab, backspace, escape, space,
    /// up, down, left, right, home, end, pageup, pagedown, insert, delete, f1-f12,
    /// ctrl-<key> (ctrl-c interrupts as a real Ctrl-C does), alt-<key>.
    pub keys: Vec<String>,
    /// Wait until this regular expression matches the screen (rows joined by newlines)
    /// instead of until the screen is still.
    pub wait_for: Option<String>,
    /// How long the screen must stay unchanged to count as settled, in ms (default 150).
    pub settle_ms: Option<u64>,
    /// Longest wait, in ms (default 10000); the screen is returned either way.
    pub timeout_ms: Option<u64>,
    /// Return only the rows that changed since the previous screen returned.
    pub changed_only: bool,
}

/// The screen of a terminal session, optionally with scrollback.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<TerminalView>")]
#[serde(default, deny_unknown_fields)]
pub struct TerminalScreen {
    /// Lines of scrollback (above the screen, oldest first) to include, at most what the
    /// terminal keeps (`session.terminal_scrollback_lines`).
    pub scrollback: u32,
}

/// Resize a terminal session (the program gets SIGWINCH).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<TerminalView>")]
#[serde(deny_unknown_fields)]
pub struct TerminalResize {
    /// New number of columns (1 to 1000).
    pub cols: u16,
    /// New number of rows (1 to 500).
    pub rows: u16,
}

/// A row of the screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminalRow {
    /// Its index from the top, from 0.
    pub row: u16,
    /// Its text, trailing blanks trimmed.
    pub text: String,
}

/// Where the cursor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminalCursor {
    /// Row from the top, from 0.
    pub row: u16,
    /// Column from the left, from 0.
    pub col: u16,
    /// Whether the program shows it.
    pub visible: bool,
}

/// A terminal session's screen and what happened since the previous call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminalView {
    /// The rows of the screen, top to bottom, trailing blanks trimmed (rows below the last
    /// non-blank one left out). With `changed_only`, empty: see `changed`.
    pub screen: Vec<String>,
    /// With `changed_only`: the rows that differ from the previous screen returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<TerminalRow>>,
    /// Scrollback lines asked for, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub scrollback: Vec<String>,
    /// Columns and rows.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// The cursor.
    pub cursor: TerminalCursor,
    /// True while a full-screen program (an editor, a pager, top) uses the alternate screen.
    pub alternate_screen: bool,
    /// The window title the program set, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// terminal_send: whether `wait_for` matched, or the screen settled, before the timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited: Option<bool>,
    /// terminal_send: what the program wrote since the previous terminal_send, escape
    /// sequences removed (the last 64 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Cursor of the raw output (session_read, stdout) after `output`.
    pub cursor_out: u64,
    /// The session's state.
    pub state: StateKind,
}
