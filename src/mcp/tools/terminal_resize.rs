//! `terminal_resize`: change a terminal session's size.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::TerminalResize;

/// Arguments of `terminal_resize`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a terminal session.
    session_id: String,
    /// Columns, 1 to 1000.
    cols: u16,
    /// Rows, 1 to 500.
    rows: u16,
}

pub(super) fn def() -> ToolDef {
    tool(
        "terminal_resize",
        "Resize a terminal",
        "Change a terminal session's size; the program is told (SIGWINCH) and redraws. \
         Returns the screen at once (a redraw may follow: terminal_send with nothing to type \
         waits for it).",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
        super::terminal_send::render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = TerminalResize {
                cols: args.cols,
                rows: args.rows,
            };
            ctx.handle.terminal_resize(id, req).await.map(Some)
        },
    )
}
