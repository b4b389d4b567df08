//! `debug_set_breakpoints`: set the breakpoints of one file in a debug session.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::{BreakpointsResult, SetBreakpoints};

/// Arguments of `debug_set_breakpoints`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a debug session.
    session_id: String,
    /// The source file, relative to the session's cwd (files outside it are refused).
    file: String,
    /// 1-based line numbers; they replace the file's previous breakpoints ([] clears them).
    lines: Vec<u32>,
    /// Stop only when this expression is true (Python under debugpy), for every listed line.
    condition: Option<String>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "debug_set_breakpoints",
        "Set breakpoints in a file",
        "Set the breakpoints of one source file in a debug session, replacing the ones that file \
         had. Returns, for each requested line, whether the debugger verified it: a line with no \
         code returns verified=false with a message naming the nearest line that has code, and \
         is not set. Works while the program is paused or running; the breakpoints are kept \
         and set again when the session is resumed.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
        |r: &BreakpointsResult| {
            let verified = r.breakpoints.iter().filter(|b| b.verified).count();
            format!(
                "{}: {verified} of {} breakpoints verified",
                r.file,
                r.breakpoints.len()
            )
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = SetBreakpoints {
                file: args.file,
                lines: args.lines,
                condition: args.condition,
            };
            ctx.handle.debug_set_breakpoints(id, req).await.map(Some)
        },
    )
}
