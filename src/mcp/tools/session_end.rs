//! `session_end`: stop a session and everything it started.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::messages::{End, EndResult};

/// Arguments of `session_end`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
    /// Grace between TERM and KILL in ms (default 3000).
    grace_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_end",
        "End a session",
        "End a session: TERM to all its processes, KILL after grace_ms, then reap. Returns the \
         exit code or signal. Ending an ended session again just reports how it ended; its \
         output stays readable until the retention period passes.",
        Hints {
            read_only: false,
            destructive: true,
            idempotent: true,
        },
        |r: &EndResult| match (&r.exit_code, &r.signal) {
            (Some(code), _) => format!("ended with exit code {code}"),
            (None, Some(sig)) => format!("ended by {sig}"),
            _ => format!("state {}", r.state),
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            ctx.handle
                .end(
                    id,
                    End {
                        grace_ms: args.grace_ms,
                        ..Default::default()
                    },
                )
                .await
                .map(Some)
        },
    )
}
