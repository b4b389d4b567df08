//! `session_resume`: respawn a Suspended session under the same id.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::SessionInfo;
use crate::session::Kind;

/// Arguments of `session_resume`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a Suspended session (evicted when idle or at capacity, or restored
    /// after a server restart).
    session_id: String,
    /// Agent sessions: start a new conversation instead of continuing the agent's own (for
    /// a conversation the agent can no longer continue).
    #[serde(default)]
    fresh: bool,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_resume",
        "Resume a suspended session",
        "Start a Suspended session again under the same session_id: the same command, \
         environment and limits, a shell in the working directory it last had, with its \
         transcript, cursors and counters kept (variables and background jobs of the old \
         process are not; a repl gets back the variables its namespace snapshot could save; an \
         agent with a profile (Claude Code's is built in) continues its own conversation \
         (agent_session_id, e.g. claude --resume), others and fresh=true start a new one; a \
         terminal starts its program again in its last working directory, on a new screen). \
         Returns the session_state result; agent_conversation says what became of the \
         conversation. An agent that exits before its first turn after a resume leaves the \
         session Suspended, saying why. A session's saved output stays readable with session_read \
         while it is Suspended, and a terminal's last screen with terminal_screen.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        |r: &SessionInfo| {
            let fresh = match (r.kind, &r.agent_conversation) {
                (Kind::Agent, Some(note)) => format!("; the agent's conversation: {note}"),
                (Kind::Agent, None) => {
                    "; a fresh agent process: no agent profile keeps its conversation".into()
                }
                (Kind::Terminal, _) => "; the program started again on a new screen: what ran \
                                        in the old terminal is gone"
                    .into(),
                _ => String::new(),
            };
            format!(
                "session {} ({}) resumed: {}, pid {}, cwd {}{fresh}",
                r.session_id,
                r.kind,
                r.state_detail,
                super::pid_text(r.pid),
                r.cwd.as_deref().unwrap_or("-")
            )
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            ctx.handle.resume_with(id, args.fresh).await.map(Some)
        },
    )
}
