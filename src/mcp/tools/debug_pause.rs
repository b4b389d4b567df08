//! `debug_pause`: stop a debug session's running program where it is.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{cancellable, session_id, tool, Hints, ToolDef};
use crate::session::messages::Pause;

/// Arguments of `debug_pause`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a debug session.
    session_id: String,
    /// How long to wait for it to stop, in ms (default 30000).
    timeout_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "debug_pause",
        "Pause the program",
        "Pause a debug session's running program (for example after debug_continue returned \
         status 'running'). Returns the same as debug_continue; if the program is already \
         paused, its current stop.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
        super::debug_continue::render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = Pause {
                timeout_ms: args.timeout_ms,
            };
            cancellable(&ctx, ctx.handle.debug_pause(id, req)).await
        },
    )
}
