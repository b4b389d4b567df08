//! `debug_continue`: run a debug session's program until it stops or ends.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{cancellable, session_id, tool, Hints, ToolDef};
use crate::session::messages::{Continue, DebugOutcome, DebugStatus};

/// Arguments of `debug_continue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a debug session.
    session_id: String,
    /// How long to wait for a stop, in ms (default 30000). On timeout the result is
    /// status=running and the program goes on: call again to keep waiting, or debug_pause.
    timeout_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "debug_continue",
        "Continue the program",
        "Resume a paused debug session's program (or, while it runs, wait for it) until it \
         stops or ends. Returns status 'stopped' with stopped {reason (breakpoint, step, \
         exception, pause, entry), file, line, function, hit_count, locals of the top frame \
         (name, value, type; at most 50)}, status 'completed' with completed {exit_code}, or \
         status 'running' if the timeout passed first. The program's output is in the \
         session's output log: session_read from the returned cursors.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: false,
        },
        render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = Continue {
                timeout_ms: args.timeout_ms,
            };
            cancellable(&ctx, ctx.handle.debug_continue(id, req)).await
        },
    )
}

/// The text of a continue, step or pause outcome.
pub(super) fn render(r: &DebugOutcome) -> String {
    match (r.status, &r.stopped, &r.completed) {
        (DebugStatus::Stopped, Some(s), _) => {
            let mut text = format!(
                "stopped ({}) at {}:{}",
                s.reason,
                s.file.as_deref().unwrap_or("?"),
                s.line.map_or("?".into(), |l| l.to_string())
            );
            if let Some(f) = &s.function {
                text.push_str(&format!(" in {f}"));
            }
            if let Some(d) = &s.description {
                text.push_str(&format!(": {d}"));
            }
            for v in &s.locals {
                text.push_str(&format!("\n  {} = {}", v.name, v.value));
            }
            text
        }
        (DebugStatus::Completed, _, c) => format!(
            "the program ended, exit code {}",
            c.and_then(|c| c.exit_code)
                .map_or("unknown".into(), |c| c.to_string())
        ),
        _ => format!(
            "still running after {} ms; debug_continue waits for the next stop, debug_pause stops it",
            r.duration_ms
        ),
    }
}
