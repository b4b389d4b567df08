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
    /// Any program (an interactive bash by default) under a pseudo-terminal, with the screen
    /// a terminal emulator shows.
    Terminal,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 6] = [
        Kind::Shell,
        Kind::Process,
        Kind::Repl,
        Kind::Agent,
        Kind::Debug,
        Kind::Terminal,
    ];

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Shell => "shell",
            Kind::Process => "process",
            Kind::Repl => "repl",
            Kind::Agent => "agent",
            Kind::Debug => "debug",
            Kind::Terminal => "terminal",
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
                format!(
                    "unknown kind {s:?}; expected shell, process, repl, agent, debug or terminal"
                )
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
    /// The agent profile (`[agents.<name>]` in the server's config) that keeps the agent's
    /// conversation; default: the profile whose `programs` names the program, if any
    /// (`claude` is built in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Fork: start from a copy of the conversation of this agent session of yours. The
    /// command, environment and working directory default to that session's.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::ids::this_nodes"
    )]
    pub fork_from: Option<super::ids::SessionId>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            turn_end_pointer: "/type".into(),
            turn_end_value: serde_json::Value::String("result".into()),
            profile: None,
            fork_from: None,
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
    /// Terminal sessions: the screen size.
    Terminal(TerminalOptions),
}

/// A terminal session's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalOptions {
    /// Columns (default 120, at most 1000).
    pub cols: u16,
    /// Rows (default 40, at most 500).
    pub rows: u16,
}

impl Default for TerminalOptions {
    fn default() -> Self {
        Self {
            cols: 120,
            rows: 40,
        }
    }
}

/// Most columns a terminal may have.
pub const MAX_COLS: u16 = 1000;
/// Most rows a terminal may have.
pub const MAX_ROWS: u16 = 500;

impl TerminalOptions {
    /// Refuses a size of 0 or beyond [`MAX_COLS`] × [`MAX_ROWS`], naming what was wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.cols == 0 || self.cols > MAX_COLS || self.rows == 0 || self.rows > MAX_ROWS {
            return Err(format!(
                "{} x {} is not a terminal size: cols must be 1 to {MAX_COLS} and rows 1 to {MAX_ROWS}",
                self.cols, self.rows
            ));
        }
        Ok(())
    }
}
