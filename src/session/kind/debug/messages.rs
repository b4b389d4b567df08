//! What a `debug` session accepts and returns (re-exported from `session::messages`).

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::Result;

pub use crate::model::metrics::LastStop;

/// Set the breakpoints of one source file, replacing the ones it had.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<BreakpointsResult>")]
#[serde(default, deny_unknown_fields)]
pub struct SetBreakpoints {
    /// The source file, relative to the session's cwd (it must be inside it).
    pub file: String,
    /// 1-based lines; they replace the file's previous breakpoints (an empty list clears them).
    pub lines: Vec<u32>,
    /// Stop only when this expression (in the program's language) is true.
    pub condition: Option<String>,
}

/// The breakpoints a file has now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BreakpointsResult {
    /// The file, as resolved (relative to the session's cwd).
    pub file: String,
    /// One entry per requested line, in order.
    pub breakpoints: Vec<Breakpoint>,
}

/// One requested breakpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Breakpoint {
    /// The requested line.
    pub line: u32,
    /// True when the adapter bound it to this line. An unverified breakpoint on a line with
    /// no code is not kept (the adapter would have moved it elsewhere).
    pub verified: bool,
    /// Why it is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Run the program until it stops (breakpoint, exception, end). While it is already running,
/// wait for the next stop.
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
#[rtype(result = "Result<DebugOutcome>")]
#[serde(default, deny_unknown_fields)]
pub struct Continue {
    /// How long to wait for a stop, in ms (default 30000). On timeout the result is `running`
    /// and the program goes on.
    pub timeout_ms: Option<u64>,
}

/// How far a step goes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Into the call on this line.
    In,
    /// To the next line in this function.
    #[default]
    Over,
    /// Out of this function, to its caller.
    Out,
}

/// Step the paused program by one line.
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
#[rtype(result = "Result<DebugOutcome>")]
#[serde(default, deny_unknown_fields)]
pub struct Step {
    /// `in`, `over` (default) or `out`.
    pub granularity: StepKind,
    /// How long to wait for the step to stop, in ms (default 30000).
    pub timeout_ms: Option<u64>,
}

/// Pause the running program.
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
#[rtype(result = "Result<DebugOutcome>")]
#[serde(default, deny_unknown_fields)]
pub struct Pause {
    /// How long to wait for it to stop, in ms (default 30000).
    pub timeout_ms: Option<u64>,
}

/// Where a continue, step or pause left the program.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DebugStatus {
    /// Stopped: see `stopped`.
    #[default]
    Stopped,
    /// The program ended: see `completed`.
    Completed,
    /// Still running when the timeout passed.
    Running,
}

/// The outcome of a continue, step or pause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DebugOutcome {
    /// `stopped`, `completed` or `running`.
    pub status: DebugStatus,
    /// Where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stop>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Completed>,
    /// Wall time of the call, ms.
    pub duration_ms: u64,
    /// Cursor after the program's stdout so far (read its output with session_read).
    pub cursor: u64,
    /// Cursor after its stderr so far.
    pub stderr_cursor: u64,
}

/// A stop of the program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stop {
    /// Why: `breakpoint`, `step`, `entry`, `pause`, `exception`, …
    pub reason: String,
    /// The adapter's description (an exception's message, for example).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Source file of the top frame: relative to the session's cwd when inside it.
    pub file: Option<String>,
    /// Line of the top frame.
    pub line: Option<u32>,
    /// Function of the top frame.
    pub function: Option<String>,
    /// The stopped thread.
    pub thread_id: i64,
    /// Times the session has stopped at this file and line.
    pub hit_count: u64,
    /// Local variables of the top frame (at most 50; values cut at 200 characters).
    pub locals: Vec<Variable>,
    /// True when there were more locals than listed.
    pub locals_truncated: bool,
}

/// A variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its value as the debugger renders it.
    pub value: String,
    /// Its type, when the adapter says.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// The end of the program.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Completed {
    /// Its exit code, when the adapter reported one.
    pub exit_code: Option<i32>,
}

/// Evaluate an expression in a frame of the paused program.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message, schemars::JsonSchema,
)]
#[rtype(result = "Result<EvaluateResult>")]
#[serde(default, deny_unknown_fields)]
pub struct Evaluate {
    /// The expression (Python under debugpy; a statement such as an assignment works too).
    pub expression: String,
    /// Stack frame: 0 (default) is the top, 1 its caller, and so on.
    pub frame: Option<u32>,
}

/// The value of an evaluated expression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EvaluateResult {
    /// The value as the debugger renders it (cut at 16 KiB).
    pub value: String,
    /// Its type, when the adapter says.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// True when the value was cut.
    pub truncated: bool,
}

impl From<&Stop> for LastStop {
    fn from(s: &Stop) -> Self {
        LastStop {
            file: s.file.clone(),
            line: s.line,
            hit_count: s.hit_count,
            reason: s.reason.clone(),
        }
    }
}
