//! Session kinds and their options, and the two output streams.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A persistent bash: `cd` and exported variables stick between execs.
    Shell,
    /// Any program: stdin bytes in, output by cursor.
    Process,
    /// A Python REPL with one persistent namespace: exec runs code, returns the value.
    Repl,
    /// An agent CLI speaking JSON lines: exec sends one user message, returns the turn.
    Agent,
    /// A debugger: a Debug Adapter Protocol adapter (debugpy by default) running a program.
    Debug,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 5] = [
        Kind::Shell,
        Kind::Process,
        Kind::Repl,
        Kind::Agent,
        Kind::Debug,
    ];

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Process => "process",
            Kind::Repl => "repl",
            Kind::Agent => "agent",
            Kind::Debug => "debug",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!("unknown kind {s:?}; expected shell, process, repl, agent or debug")
            })
    }
}

/// One of a child's two output streams.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// 0 for stdout, 1 for stderr: the index of per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Options of an `agent` session: how its turns end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AgentOptions {
    /// JSON pointer (RFC 6901) into each output line; default `/type`.
    pub turn_end_pointer: String,
    /// A line whose value at the pointer equals this ends the turn; default `"result"`.
    pub turn_end_value: serde_json::Value,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            turn_end_pointer: "/type".into(),
            turn_end_value: serde_json::Value::String("result".into()),
        }
    }
}

/// Options of a `debug` session: what the adapter launches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DebugOptions {
    /// The program to debug, relative to the session's cwd (it must be inside it).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Stop before the first line (default true), so breakpoints can be set before anything
    /// runs; false runs the program at once.
    pub stop_on_entry: Option<bool>,
    /// Extra fields for the adapter's `launch` request, merged over the defaults (for
    /// adapters other than debugpy, or options such as `justMyCode`).
    pub launch: serde_json::Map<String, serde_json::Value>,
}

impl DebugOptions {
    /// Whether the program stops before its first line.
    pub fn stops_on_entry(&self) -> bool {
        self.stop_on_entry.unwrap_or(true)
    }
}

/// Kind-specific options of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindOptions {
    /// None (shell, process, repl).
    #[default]
    None,
    /// An agent's turn-end rule.
    Agent(AgentOptions),
    /// What a debugger launches.
    Debug(DebugOptions),
}
