//! `session_state`: a session's state, timings and metrics.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::SessionInfo;

/// Arguments of `session_state`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_state",
        "Describe a session",
        "Return a session's state (Starting, Ready, Busy, Paused, Ending, Ended, Failed, \
         Suspended) with details, pid, exit code or signal, the stderr tail of an ended session, \
         cwd, command, creation and last-activity times, timings and metrics.",
        Hints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        |r: &SessionInfo| {
            format!(
                "session {} ({}) is {}; {} ops",
                r.session_id, r.kind, r.state_detail, r.metrics.ops
            )
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            ctx.handle.state(id).await.map(Some)
        },
    )
}
