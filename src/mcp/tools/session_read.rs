//! `session_read`: page through a session's output by cursor, optionally waiting for more.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{cancellable, session_id, tool, Hints, ToolDef};
use crate::session::messages::{Read, ReadResult};
use crate::session::Stream;

/// Arguments of `session_read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
    /// Which stream to read: stdout (default) or stderr.
    #[serde(default)]
    stream: Stream,
    /// Absolute byte offset to read from; default: where your last read of this stream ended.
    cursor: Option<u64>,
    /// Most bytes to return (default 65536).
    max_bytes: Option<usize>,
    /// If nothing new is available, wait up to this many ms for output or exit (long-poll).
    wait_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_read",
        "Read a session's output",
        "Read output by absolute byte cursor. Returns data, the cursor to pass next time, \
         dropped_bytes (output that exceeded the buffer and was skipped), eof, the session's \
         state and exit_code. Use it to follow a timed-out session_exec or a process session.",
        Hints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        |r: &ReadResult| {
            let mut text = r.data.clone();
            text.push_str(&format!("\n[cursor {}; state {}", r.cursor, r.state));
            if r.dropped_bytes > 0 {
                text.push_str(&format!("; {} bytes dropped", r.dropped_bytes));
            }
            if r.eof {
                text.push_str("; end of stream");
            }
            text.push(']');
            text
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = Read {
                stream: args.stream,
                cursor: args.cursor,
                max_bytes: args.max_bytes,
                wait_ms: args.wait_ms,
            };
            cancellable(&ctx, ctx.handle.read(id, req)).await
        },
    )
}
