//! Session kinds are drivers, not subclasses: a `Driver` turns an operation into bytes for
//! the child and picks results out of the child's bytes. The session actor is the same for
//! every kind.

mod agent;
pub mod debug;
mod process;
pub(crate) mod repl;
mod shell;
pub(crate) mod terminal;
mod token;

pub(crate) use debug::dap::frame as dap_frame;
pub(crate) use process::ProcessDriver;
pub(crate) use shell::ShellDriver;
#[doc(hidden)]
pub use shell::{protocol_exec_line, protocol_startup_line, ProtocolLine};

use super::messages::ExecResult;
use crate::Result;

pub use crate::model::kind::{AgentOptions, DebugOptions, Kind, KindOptions, Stream};

/// What a driver found in the child's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Start-up finished; the session is Ready.
    Ready,
    /// The running exec is over, stdout and stderr complete, with its status and the shell's
    /// cwd (a shell's `PS1`).
    ExecEnd {
        /// `$?` of the command.
        exit_code: i32,
        /// `$PWD` after the command.
        cwd: String,
    },
    /// The running exec's end marker on stdout with a kind-specific payload (a REPL's value
    /// or error, an agent's final line); completes the stream it came on, without a cwd.
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
    /// Bytes to write back to the program: a terminal's answer to a query it sent.
    Reply(Vec<u8>),
    /// An agent reported its own conversation id.
    Conversation(String),
}

/// How an exec of this kind knows it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// When the driver reports the end on both streams: one `ExecEnd` (a shell's `PS1`,
    /// stdout read dry first), or a marker on each stream (a REPL).
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

    /// True if the kind's markers come on stderr after everything its program wrote to
    /// stdout: the session then reads stdout dry before it takes in each stderr chunk, so a
    /// marker that ends an exec finds the exec's stdout complete.
    fn stderr_follows_stdout(&self) -> bool {
        false
    }

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

    /// The screen of a terminal session.
    fn screen(&self) -> Option<std::rc::Rc<std::cell::RefCell<terminal::Screen>>> {
        None
    }
}

/// Builds the driver for `kind`.
pub(crate) fn driver_for(
    kind: Kind,
    options: &KindOptions,
    config: &crate::config::SessionConfig,
    agent: Option<&super::agent::AgentLaunch>,
) -> Box<dyn Driver> {
    match kind {
        Kind::Shell => Box::new(ShellDriver::default()),
        Kind::Process => Box::new(ProcessDriver),
        Kind::Agent => {
            let o = match options {
                KindOptions::Agent(o) => o.clone(),
                _ => AgentOptions::default(),
            };
            let capture = agent
                .map(|a| a.rules.clone())
                .filter(|r| !r.session_id_pointer.is_empty());
            Box::new(
                agent::AgentDriver::new(o.turn_end_pointer, o.turn_end_value).capturing(capture),
            )
        }
        Kind::Repl => Box::new(repl::ReplDriver::default()),
        Kind::Debug => Box::new(debug::dap::DapDriver::default()),
        Kind::Terminal => Box::new(terminal::TerminalDriver::new(
            match options {
                KindOptions::Terminal(o) => *o,
                _ => Default::default(),
            },
            config.terminal_scrollback_lines,
        )),
    }
}
