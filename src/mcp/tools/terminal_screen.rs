//! `terminal_screen`: the current screen of a terminal session.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::TerminalScreen;

/// Arguments of `terminal_screen`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a terminal session.
    session_id: String,
    /// Lines of scrollback (what scrolled off the top, oldest first) to include (default 0;
    /// a terminal keeps 2000 unless configured otherwise).
    #[serde(default)]
    scrollback: u32,
}

pub(super) fn def() -> ToolDef {
    tool(
        "terminal_screen",
        "Read a terminal's screen",
        "Return the current screen of a terminal session as text rows (trailing blanks \
         trimmed), the cursor, the size, whether the alternate screen is on and the window \
         title, optionally with scrollback lines. Does not type or wait. A Suspended or \
         ended terminal answers with the screen it had when it stopped.",
        Hints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        super::terminal_send::render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = TerminalScreen {
                scrollback: args.scrollback,
            };
            ctx.handle.terminal_screen(id, req).await.map(Some)
        },
    )
}
