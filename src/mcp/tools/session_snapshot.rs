//! `session_snapshot`: save a REPL session's namespace to the store now.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{session_id, tool, Hints, ToolDef};
use crate::session::snapshot::{NamespaceSnapshot, SnapshotNamespace};

/// Arguments of `session_snapshot`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id of a repl session.
    session_id: String,
    /// How long to wait, in ms (default 30000); it queues behind a running exec.
    timeout_ms: Option<u64>,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_snapshot",
        "Save a REPL's variables",
        "Save a repl session's namespace to the store now (it is also saved before eviction \
         and at shutdown; session_resume restores the latest snapshot). Returns the names \
         saved, the names skipped with the reason (open files, sockets, …), the codec (dill \
         when the session's Python has it, else pickle) and the size.",
        Hints {
            read_only: false,
            destructive: false,
            idempotent: true,
        },
        |r: &NamespaceSnapshot| {
            format!(
                "saved {} names ({} bytes, {}); skipped {:?}",
                r.saved.len(),
                r.bytes,
                r.codec,
                r.skipped
            )
        },
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            let req = SnapshotNamespace {
                timeout_ms: args.timeout_ms,
            };
            ctx.handle.snapshot_namespace(id, req).await.map(Some)
        },
    )
}
