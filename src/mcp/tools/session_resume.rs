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
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_resume",
        "Resume a suspended session",
        "Start a Suspended session again under the same session_id: the same command, \
         environment and limits, a shell in the working directory it last had, with its \
         transcript, cursors and counters kept (variables and background jobs of the old \
         process are not; a repl gets back the variables its namespace snapshot could save; an \
         agent starts a fresh process, without the old conversation; a terminal starts its \
         program again in its last working directory, on a new screen). Returns the \
         session_state result. A session's saved output stays readable with session_read \
         while it is Suspended, and a terminal's last screen with terminal_screen.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        |r: &SessionInfo| {
            let fresh = match r.kind {
                Kind::Agent => "; a fresh agent process: the old conversation is not restored",
                Kind::Terminal => {
                    "; the program started again on a new screen: what ran in the old terminal \
                     is gone"
                }
                _ => "",
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
            ctx.handle.resume(id).await.map(Some)
        },
    )
}
