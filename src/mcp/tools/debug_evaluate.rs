//! `debug_evaluate`: evaluate an expression in a frame of a paused debug session.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::{Evaluate, EvaluateResult};

/// Arguments of `debug_evaluate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a debug session.
    session_id: String,
    /// The expression, in the program's language (Python under debugpy; statements such as
    /// assignments also work and change the program's state).
    expression: String,
    /// Stack frame: 0 (default) is where the program stopped, 1 its caller, and so on.
    frame: Option<u32>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "debug_evaluate",
        "Evaluate in the paused program",
        "Evaluate an expression in a frame of a paused debug session's program and return its \
         value (as the debugger renders it, cut at 16 KiB) and type. An expression that raises \
         returns an error naming the exception; the program is unaffected.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        |r: &EvaluateResult| match &r.kind {
            Some(t) => format!("{} ({t})", r.value),
            None => r.value.clone(),
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = Evaluate {
                expression: args.expression,
                frame: args.frame,
            };
            ctx.handle.debug_evaluate(id, req).await.map(Some)
        },
    )
}
