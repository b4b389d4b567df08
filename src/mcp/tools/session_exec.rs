//! `session_exec`: run a command in a session and return its output, exit code and cwd.
//! Reports progress every second while it runs; a cancelled call interrupts the command.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{session_id, tool, Hints, ToolDef};
use crate::mcp::context::CallCtx;
use crate::session::messages::{Exec, ExecResult};
use crate::{Error, SessionId};

/// Arguments of `session_exec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Args {
    /// The session_id returned by session_create.
    session_id: String,
    /// Shell: a command line (any bash, multi-line allowed). Process: a line for its stdin.
    input: String,
    /// How long to wait, in ms (default 30000; as a task, the most allowed). On timeout the
    /// result has timed_out=true and the output so far; the command keeps running (read the
    /// rest with session_read from the returned cursor, or interrupt it with session_signal
    /// INT).
    timeout_ms: Option<u64>,
    /// Connect the command's stdin to the session so session_send can feed it (default: the
    /// command reads /dev/null, so commands that wait for input fail fast).
    #[serde(default)]
    interactive: bool,
}

pub(super) fn def() -> ToolDef {
    tool(
        "session_exec",
        "Run a command in a session",
        "Run one command in a session and wait for it. For a shell: returns stdout and stderr \
         separately, exit_code, the shell's cwd afterwards, duration_ms, and cursors for \
         session_read. State (cd, exports) persists to the next call. A command that exits the \
         shell (exit 3) ends the session (session_ended=true). For a process: writes the input \
         as a line to its stdin and returns the output that follows. For a repl: runs the code \
         (any block: def, class, import) in the session's one namespace and returns stdout, \
         stderr, value (repr of the last expression) and error {type, message, traceback}. For \
         an agent: sends the input as one user message (a JSON object is sent as is) and \
         returns the turn's messages, the final result line and usage (token totals). On \
         timeout the work goes on (timed_out=true, partial output; session_read pages the rest).",
        Hints {
            read_only: false,
            destructive: true,
            idempotent: false,
        },
        render,
        |args: Args, ctx| async move {
            let id = session_id(&args.session_id)?;
            // Nobody waits on a task's request: without a timeout of its own, the command
            // may run as long as any may.
            let timeout_ms = args.timeout_ms.or_else(|| {
                ctx.as_task
                    .then(|| ctx.handle.config().session.max_exec_timeout_ms)
            });
            let exec = Exec {
                input: args.input,
                timeout_ms,
                interactive: args.interactive,
            };
            run(id, exec, ctx).await
        },
    )
}

/// Runs the exec with progress reports and cancellation.
async fn run(id: SessionId, exec: Exec, ctx: CallCtx) -> Result<Option<ExecResult>, Error> {
    let total = exec.timeout_ms;
    // Calling it off interrupts this exec if it runs, or drops it if it waits.
    let call = ctx.handle.exec_until(id, exec, ctx.cancel.clone());
    tokio::pin!(call);
    let started = Instant::now();
    // Only a caller that asked for progress gets a timer.
    let mut tick = ctx.progress_token.is_some().then(|| {
        tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        )
    });
    loop {
        tokio::select! {
            result = &mut call => {
                let result = match result {
                    Err(Error::Cancelled) => return Ok(None),
                    other => other?,
                };
                if result.timed_out {
                    ctx.log("warning", json!(format!(
                        "exec in session {id} timed out after {} ms; the command keeps running", result.duration_ms
                    )));
                }
                return Ok(Some(result));
            }
            Some(_) = next_tick(&mut tick) => {
                let elapsed = started.elapsed().as_millis() as u64;
                let bytes = ctx.handle.state(id).await.map(|s| s.metrics.bytes_out).unwrap_or(0);
                ctx.progress(elapsed, total, format!("running for {elapsed} ms; {bytes} bytes of output in this session so far"));
            }
        }
    }
}

/// The next tick of `tick`, or never without one.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) -> Option<tokio::time::Instant> {
    match tick {
        Some(t) => Some(t.tick().await),
        None => std::future::pending().await,
    }
}

fn render(r: &ExecResult) -> String {
    let mut text = String::new();
    if r.timed_out {
        text.push_str(&format!(
            "[timed out after {} ms; still running; continue with session_read from cursor {}]\n",
            r.duration_ms, r.cursor
        ));
    }
    text.push_str(&r.stdout);
    if !r.stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("[stderr]\n");
        text.push_str(&r.stderr);
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    match r.exit_code {
        Some(code) => text.push_str(&format!("[exit code {code}")),
        None => text.push_str("[no exit code yet"),
    }
    if let Some(cwd) = &r.cwd {
        text.push_str(&format!(", cwd {cwd}"));
    }
    if r.session_ended {
        text.push_str(", session ended");
    }
    text.push(']');
    text
}
