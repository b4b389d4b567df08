//! What a session reports about itself: counters, durations, and a debugger's last stop.

use serde::{Deserialize, Serialize};

/// Operation durations of a session.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Timings {
    /// Duration of the last completed operation, ms.
    pub last_op_ms: u64,
    /// Sum of all operation durations, ms.
    pub total_op_ms: u64,
}

/// Counters of a session.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Metrics {
    /// Operations performed (exec, send, signal).
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

/// The last stop of a debug session, as `session_state` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LastStop {
    /// Source file (relative to the session's cwd when inside it).
    pub file: Option<String>,
    /// Line.
    pub line: Option<u32>,
    /// Times the session has stopped at this file and line.
    pub hit_count: u64,
    /// Why it stopped.
    pub reason: String,
}
