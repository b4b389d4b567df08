//! `terminal_send`: type text and keys into a terminal session, wait for its screen.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{cancellable, session_id, tool, Hints, ToolDef};
use crate::session::messages::{TerminalSend, TerminalView};

/// Arguments of `terminal_send`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a terminal session.
    session_id: String,
    /// Text to type; newlines are sent as Enter (several lines go as one bracketed paste
    /// when the program asked for it).
    text: Option<String>,
    /// Named keys to press after the text, in order: enter, tab, backspace, escape, space,
    /// up, down, left, right, home, end, pageup, pagedown, insert, delete, f1-f12,
    /// ctrl-<key> (ctrl-c interrupts as a real Ctrl-C does, ctrl-d ends input),
    /// alt-<key>.
    #[serde(default)]
    keys: Vec<String>,
    /// Wait until this regular expression matches the screen (its rows joined by
    /// newlines), instead of until the screen is still.
    wait_for: Option<String>,
    /// How long the screen must stay unchanged to count as settled, in ms (default 150).
    settle_ms: Option<u64>,
    /// Longest wait, in ms (default 10000); the screen is returned either way, with
    /// waited=false.
    timeout_ms: Option<u64>,
    /// Return only the rows that changed since the previous screen returned (in
    /// `changed`), to save tokens.
    #[serde(default)]
    changed_only: bool,
}

pub(super) fn def() -> ToolDef {
    tool(
        "terminal_send",
        "Type into a terminal",
        "Type text and press keys in a terminal session (kind 'terminal': a program under a \
         pseudo-terminal, such as an interactive shell, python, less, vim or top), then wait \
         until the screen has been still for settle_ms or shows wait_for, and return the \
         screen as text rows, the cursor, whether the alternate screen is on, and what the \
         program printed since the previous terminal_send with escape sequences removed. \
         Sending nothing just waits and looks.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = TerminalSend {
                text: args.text,
                keys: args.keys,
                wait_for: args.wait_for,
                settle_ms: args.settle_ms,
                timeout_ms: args.timeout_ms,
                changed_only: args.changed_only,
            };
            cancellable(&ctx, ctx.handle.terminal_send(id, req)).await
        },
    )
}

/// The screen as text, for clients that read only the text content.
pub(super) fn render(v: &TerminalView) -> String {
    let mut text = match &v.changed {
        Some(rows) => rows
            .iter()
            .map(|r| format!("{:>3}| {}", r.row, r.text))
            .collect::<Vec<_>>()
            .join("\n"),
        None => v.screen.join("\n"),
    };
    text.push_str(&format!(
        "\n[{}x{}, cursor {},{}{}{}{}]",
        v.cols,
        v.rows,
        v.cursor.row,
        v.cursor.col,
        if v.alternate_screen {
            ", alternate screen"
        } else {
            ""
        },
        match v.waited {
            Some(false) => ", still changing at the timeout",
            _ => "",
        },
        if v.state.is_live() {
            ""
        } else {
            ", session ended"
        },
    ));
    text
}
