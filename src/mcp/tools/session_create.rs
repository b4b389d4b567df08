//! `session_create`: start a session (or return the live one with the same name).

use serde_json::json;

use super::{tool, Hints, ToolDef};
use crate::session::messages::{CreateRequest, SessionInfo};

pub(super) fn def() -> ToolDef {
    tool(
        "session_create",
        "Create a session",
        "Start a long-lived session and return its session_id, an opaque uuid to pass to every \
         other session tool. kind 'shell' (default) is a persistent bash: cd, exported variables \
         and functions persist between session_exec calls. kind 'process' runs any program \
         (command is required) that you drive with session_send and session_read. kind 'repl' \
         is a Python REPL (command: the interpreter, default python3) whose variables persist \
         between execs and survive eviction and restarts. kind 'agent' runs an agent CLI that \
         speaks JSON lines (command is required, e.g. claude -p --input-format stream-json \
         --output-format stream-json --verbose); agent.turn_end_pointer/turn_end_value say which \
         line ends a turn (default: type == result); its profile (agent.profile, default by \
         program: claude is built in) keeps the agent's own conversation across resumes \
         (agent_session_id in session_state), and agent.fork_from (another agent session's \
         id) starts a copy of that session's conversation, with its command, env and cwd \
         unless given. kind 'debug' runs a program under a \
         Debug Adapter Protocol adapter (default python3 -m debugpy.adapter; command picks \
         another): debug.program (relative to cwd) is required, debug.args optional; it \
         starts Paused at the first line (debug.stop_on_entry=false runs at once), then use \
         debug_set_breakpoints, debug_continue, debug_step, debug_pause, debug_evaluate. \
         kind 'terminal' runs a program (default an interactive bash) under a pseudo-terminal \
         (terminal.cols x terminal.rows, default 120 x 40) for prompts, REPLs, pagers and \
         editors: drive it with terminal_send, terminal_screen and terminal_resize. \
         With a name, \
         an existing live session of yours with that name is returned instead (get-or-create). \
         The session lives until session_end, until idle for idle_timeout_ms (default 30 \
         minutes; it is then Suspended), or until evicted for room.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        |r: &SessionInfo| {
            format!(
                "session {} ({}) is {}, pid {}, cwd {}",
                r.session_id,
                r.kind,
                r.state,
                super::pid_text(r.pid),
                r.cwd.as_deref().unwrap_or("-")
            )
        },
        |args: CreateRequest, ctx| async move {
            let info = ctx.handle.create(args).await?;
            ctx.log(
                "info",
                json!(format!("session {} started", info.session_id)),
            );
            Ok(Some(info))
        },
    )
}
