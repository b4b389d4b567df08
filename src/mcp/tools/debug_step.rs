//! `debug_step`: step a paused debug session's program by one line.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{cancellable, session_id, tool, Hints, ToolDef};
use crate::session::messages::{Step, StepKind};

/// Arguments of `debug_step`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a debug session.
    session_id: String,
    /// `in` (into the call on this line), `over` (to the next line; default) or `out` (to
    /// the caller).
    #[serde(default)]
    granularity: StepKind,
    /// How long to wait for the step to stop, in ms (default 30000).
    timeout_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "debug_step",
        "Step the program",
        "Step a paused debug session's program: in, over (default) or out. Returns the same as \
         debug_continue: usually status 'stopped' at the new line with its locals. Refused \
         while the program runs (pause it first).",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        super::debug_continue::render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = Step {
                granularity: args.granularity,
                timeout_ms: args.timeout_ms,
            };
            cancellable(&ctx, ctx.handle.debug_step(id, req)).await
        },
    )
}
