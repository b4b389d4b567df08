//! Looking up a stop: the top frame (file, line, function) and its local variables, once per
//! stop, published to waiting callers and kept as the session's last stop.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::{json, Value};
use tracing::warn;

use super::link::Link;
use super::messages::{Stop, Variable};
use super::Phase;
use crate::session::Session;
use crate::store::When;
use crate::Result;

/// Most locals listed in a stop.
pub(super) const MAX_LOCALS: usize = 50;
/// Longest value shown for a local, in characters.
pub(super) const MAX_VALUE_CHARS: usize = 200;

/// The top frame of a stopped thread.
#[derive(Debug, Default)]
struct TopFrame {
    file: Option<String>,
    line: Option<u32>,
    function: Option<String>,
    locals: Vec<Variable>,
    truncated: bool,
}

/// The id of frame `index` of `thread` (0 = top) and the stack's first entry.
pub(super) async fn frame(link: &Rc<Link>, thread: i64, index: u32) -> Result<Value> {
    let trace = link
        .request(
            "stackTrace",
            json!({"threadId": thread, "startFrame": index, "levels": 1}),
        )
        .await?;
    trace.pointer("/stackFrames/0").cloned().ok_or_else(|| {
        let total = trace.get("totalFrames").and_then(Value::as_u64);
        crate::Error::invalid(
            "frame",
            match total {
                Some(n) => format!("frame {index} does not exist: the stack has {n} frames"),
                None => format!("frame {index} does not exist"),
            },
        )
    })
}

async fn top_frame(link: Rc<Link>, thread: i64) -> Result<TopFrame> {
    let frame = frame(&link, thread, 0).await?;
    let mut top = TopFrame {
        file: frame
            .pointer("/source/path")
            .and_then(Value::as_str)
            .map(str::to_owned),
        line: frame.get("line").and_then(Value::as_u64).map(|l| l as u32),
        function: frame.get("name").and_then(Value::as_str).map(str::to_owned),
        ..TopFrame::default()
    };
    let Some(frame_id) = frame.get("id").and_then(Value::as_i64) else {
        return Ok(top);
    };
    let scopes = link.request("scopes", json!({"frameId": frame_id})).await?;
    let scopes = scopes.get("scopes").and_then(Value::as_array);
    let locals = scopes.and_then(|s| {
        s.iter()
            .find(|s| s.get("presentationHint").and_then(Value::as_str) == Some("locals"))
            .or_else(|| {
                s.iter()
                    .find(|s| s.get("expensive").and_then(Value::as_bool) != Some(true))
            })
    });
    let Some(reference) = locals
        .and_then(|s| s.get("variablesReference"))
        .and_then(Value::as_i64)
        .filter(|&r| r > 0)
    else {
        return Ok(top);
    };
    let vars = link
        .request("variables", json!({"variablesReference": reference}))
        .await?;
    let vars = vars.get("variables").and_then(Value::as_array);
    let listed = vars
        .into_iter()
        .flatten()
        .filter(|v| v.pointer("/presentationHint/kind").and_then(Value::as_str) != Some("virtual"));
    for v in listed {
        if top.locals.len() == MAX_LOCALS {
            top.truncated = true;
            break;
        }
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        top.locals.push(Variable {
            name: text("name").unwrap_or_default(),
            value: cut(&text("value").unwrap_or_default(), MAX_VALUE_CHARS).0,
            kind: text("type").filter(|t| !t.is_empty()),
        });
    }
    Ok(top)
}

/// `s` cut to `max` characters; true when it was cut.
pub(super) fn cut(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((at, _)) => (format!("{}…", &s[..at]), true),
        None => (s.to_owned(), false),
    }
}

impl Session {
    /// Looks up the stop announced by a `stopped` event, then publishes it (unless the
    /// program moved on meanwhile).
    pub(super) fn look_up_stop(
        &mut self,
        epoch: u64,
        thread: i64,
        reason: String,
        description: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let link = Rc::clone(&self.debugger_mut().link);
        ctx.spawn(
            top_frame(link, thread)
                .into_actor(self)
                .map(move |top, act, _| {
                    let top = top.unwrap_or_else(|e| {
                        warn!(session = %act.shared.id, error = %e, "could not look up the stop");
                        TopFrame::default()
                    });
                    act.stopped_at(epoch, thread, reason, description, top);
                }),
        );
    }

    fn stopped_at(
        &mut self,
        epoch: u64,
        thread: i64,
        reason: String,
        description: Option<String>,
        top: TopFrame,
    ) {
        let d = self.debugger_mut();
        if d.epoch != epoch {
            return; // resumed before the lookup finished
        }
        let file = top.file.as_deref().map(|f| d.display_path(f));
        let hits = d.hits.entry((file.clone(), top.line)).or_insert(0);
        *hits += 1;
        let stop = Arc::new(Stop {
            reason,
            description,
            file,
            line: top.line,
            function: top.function,
            thread_id: thread,
            hit_count: *hits,
            locals: top.locals,
            locals_truncated: top.truncated,
        });
        d.last_stop = Some(Arc::clone(&stop));
        d.publish(Phase::Stopped(stop));
        self.persist(When::Lazy);
    }
}
