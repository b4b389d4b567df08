//! `session_signal`: deliver a signal to a session's process group.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::process::Signal;
use crate::session::messages::SignalResult;

/// Arguments of `session_signal`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
    /// The signal: INT interrupts the running command (a shell survives it), TERM asks the
    /// program to stop, KILL forces it; also HUP, QUIT, USR1, USR2, STOP, CONT.
    signal: Signal,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_signal",
        "Signal a session",
        "Send a signal to every process of a session (its process group). INT interrupts a \
         running shell command and leaves the shell usable.",
        Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
        |r: &SignalResult| {
            if r.delivered {
                "delivered".into()
            } else {
                "not delivered: the process group is gone".into()
            }
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            ctx.handle.signal(id, args.signal).await.map(Some)
        },
    )
}
