//! `session_list`: the caller's sessions, newest first.

use super::{tool, Hints, ToolDef};
use crate::registry::{ListRequest, ListResult};

pub(super) fn def() -> ToolDef {
    tool(
        "session_list",
        "List your sessions",
        "List your sessions, newest first, optionally filtered by state and kind. Pass \
         next_cursor back as cursor for the next page. Other clients' sessions never appear.",
        Hints {
            read_only: true,
            destructive: false,
            idempotent: true,
        },
        |r: &ListResult| {
            let rows: Vec<String> = r
                .sessions
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {} {}",
                        s.session_id,
                        s.kind,
                        s.state,
                        s.name.as_deref().unwrap_or("-")
                    )
                })
                .collect();
            if rows.is_empty() {
                "no sessions".into()
            } else {
                rows.join("\n")
            }
        },
        |args: ListRequest, ctx| async move { ctx.handle.list(&args).map(Some) },
    )
}
