//! Session kinds are drivers, not subclasses: a [`Driver`] turns an operation into bytes for
//! the child and picks results out of the child's bytes. The session actor is the same for
//! every kind.

mod agent;
mod dap;
mod process;
pub(crate) mod repl;
mod shell;
mod token;

use std::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use dap::frame as dap_frame;
pub(crate) use process::ProcessDriver;
pub(crate) use shell::ShellDriver;
#[doc(hidden)]
pub use shell::{protocol_exec_line, protocol_startup_line, ProtocolLine};

use super::messages::ExecResult;
use crate::Result;

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
    pub(crate) fn index(self) -> usize {
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

/// What a driver found in the child's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Start-up finished; the session is Ready.
    Ready,
    /// The running exec's end marker on stdout, with its status and the shell's cwd.
    ExecStdout {
        /// `$?` of the command.
        exit_code: i32,
        /// `$PWD` after the command.
        cwd: String,
    },
    /// The running exec's end marker on stdout with a kind-specific payload (a REPL's value
    /// or error, an agent's final line); completes like `ExecStdout`, without a cwd.
    Result(serde_json::Value),
    /// The running exec's end marker on stderr.
    ExecStderr,
    /// One Debug Adapter Protocol message (response, event or reverse request).
    Dap(serde_json::Value),
    /// The shell reached a prompt with no exec armed while one was running: an interrupt
    /// discarded the command line before it started.
    Discarded {
        /// `$?` at that prompt (130 after SIGINT).
        exit_code: i32,
    },
    /// The shell has read and parsed the running exec's whole line and is about to run it
    /// (its `PS0`). An interrupt sent before this could cut the line in two.
    Started,
}

/// How an exec of this kind knows it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// When the driver reports both end markers.
    Markers,
    /// When the driver reports the stdout end marker (the kind has no stderr framing).
    StdoutMarker,
    /// When output written after the input ends with a complete line (or the timeout passes).
    FirstLine,
}

/// The protocol of one session kind.
pub(crate) trait Driver {
    /// Adjusts the command line before spawning (the shell adds its interactive flags).
    fn prepare_argv(&self, _argv: &mut Vec<String>) {}

    /// Bytes to write once the child is spawned; `None` means the session is Ready at once.
    fn startup(&mut self) -> Option<Vec<u8>>;

    /// Encodes one exec as bytes for the child's stdin.
    fn begin_exec(&mut self, input: &str, interactive: bool) -> Result<Vec<u8>>;

    /// How execs complete.
    fn completion(&self) -> Completion;

    /// Consumes bytes read from `stream`. Program output goes to `out` (markers are removed
    /// and bytes that might start a marker are held back); start-up noise is discarded.
    fn feed(&mut self, stream: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker>;

    /// Releases held-back bytes (the stream ended or the exec was abandoned).
    fn flush(&mut self, stream: Stream, out: &mut dyn FnMut(&[u8]));

    /// True if the kind reports [`Marker::Started`] for every exec.
    fn reports_start(&self) -> bool {
        false
    }

    /// Last bytes seen before Ready, for start-up failure messages.
    fn startup_noise(&self) -> String {
        String::new()
    }

    /// Adds the kind's fields to an exec result: `payload` is what the end marker carried
    /// (`None` on timeout or when the child died mid-exec).
    fn finish(&mut self, _payload: Option<&serde_json::Value>, _result: &mut ExecResult) {}
}

/// Builds the driver for `kind`.
pub(crate) fn driver_for(kind: Kind, options: &KindOptions) -> Box<dyn Driver> {
    match kind {
        Kind::Shell => Box::new(ShellDriver::default()),
        Kind::Process => Box::new(ProcessDriver),
        Kind::Agent => {
            let o = match options {
                KindOptions::Agent(o) => o.clone(),
                _ => AgentOptions::default(),
            };
            Box::new(agent::AgentDriver::new(
                o.turn_end_pointer,
                o.turn_end_value,
            ))
        }
        Kind::Repl => Box::new(repl::ReplDriver::default()),
        Kind::Debug => Box::new(dap::DapDriver::default()),
    }
}
