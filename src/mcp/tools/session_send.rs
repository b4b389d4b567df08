//! `session_send`: write bytes to a session's stdin.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::{SendInput, SendResult};

/// Arguments of `session_send`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
    /// Text to write exactly as given; add "\n" yourself to end a line.
    #[serde(default)]
    data: String,
    /// Close stdin after writing (the program sees end of input).
    #[serde(default)]
    eof: bool,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_send",
        "Write to a session's stdin",
        "Write text to a process session's stdin, or to the stdin of a shell command started \
         with session_exec interactive=true. Returns bytes_written and the stdout cursor from \
         which the program's answer can be read with session_read.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        |r: &SendResult| {
            format!(
                "wrote {} bytes; output cursor {}",
                r.bytes_written, r.cursor
            )
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = SendInput {
                data: args.data,
                eof: args.eof,
            };
            ctx.handle.send(id, req).await.map(Some)
        },
    )
}
