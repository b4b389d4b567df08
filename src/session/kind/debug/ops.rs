//! Debug operations: breakpoints, continue, step, pause and evaluate. Each one is a message
//! to the session actor that sends DAP requests through the link and, for the ones that run
//! the program, waits (up to its timeout) for the next published stop.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::link::Link;
use super::messages::{
    Breakpoint, BreakpointsResult, Completed, Continue, DebugOutcome, DebugStatus, Evaluate,
    EvaluateResult, Pause, SetBreakpoints, Step, StepKind,
};
use super::stop::{cut, frame};
use super::{dap_breakpoints, Phase, Published};
use crate::session::state::{Event, Refused};
use crate::session::{elapsed_ms, Session, StateKind};
use crate::store::{StoredBreakpoint, When};
use crate::{Error, Result};

/// Most lines one call may set in a file.
const MAX_LINES: usize = 1000;
/// Longest evaluated value returned, in characters.
const MAX_VALUE_CHARS: usize = 16 * 1024;

type Request = Pin<Box<dyn Future<Output = Result<Value>>>>;

impl Session {
    /// Refuses unless the session is in one of `allowed` states.
    fn require_state(
        &self,
        verb: &'static str,
        allowed: &[StateKind],
        needed: &'static str,
    ) -> Result<()> {
        if allowed.contains(&self.state.kind()) {
            return Ok(());
        }
        Err(Refused {
            verb,
            current: self.state.to_string(),
            needed,
        }
        .into())
    }

    /// Counts a finished debug operation in the session's metrics and timings.
    fn debug_op_done<T>(&mut self, started: Instant, result: &Result<T>) {
        let ms = elapsed_ms(started);
        self.timings.last_op_ms = ms;
        self.timings.total_op_ms += ms;
        self.metrics.ops += 1;
        if result.is_err() {
            self.metrics.errors += 1;
        }
        if let Some(d) = &self.debug {
            self.metrics.bytes_in += d.link.take_written();
        }
        self.shared.touch();
        self.persist(When::Lazy);
    }

    /// Sends `request` (if any) and waits for the next stop or end. With `resumes`, the
    /// request sets a paused program running (continue, step); a pause does not.
    fn run_program(
        &mut self,
        request: Option<Request>,
        resumes: bool,
        timeout: Duration,
    ) -> ResponseActFuture<Self, Result<DebugOutcome>> {
        let started = Instant::now();
        let d = self.debugger_mut();
        let after = d.generation();
        let rx = d.published.subscribe();
        let requested = resumes && request.is_some();
        if requested {
            d.epoch += 1;
            let _ = self.transition(Event::Resume);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        Box::pin(
            async move {
                if let Some(request) = request {
                    request.await?;
                }
                Ok(next_phase(rx, after, deadline).await)
            }
            .into_actor(self)
            .map(move |phase, act, _| {
                if phase.is_err() && requested && act.state.kind() == StateKind::Busy {
                    // The adapter refused to move the program: it is still where it stopped.
                    let _ = act.transition(Event::Pause);
                }
                let outcome = phase.and_then(|p| act.outcome(p, started));
                act.debug_op_done(started, &outcome);
                outcome
            }),
        )
    }

    fn outcome(&self, phase: Option<Phase>, started: Instant) -> Result<DebugOutcome> {
        let mut out = DebugOutcome {
            status: DebugStatus::Running,
            duration_ms: elapsed_ms(started),
            cursor: self.logs[0].end(),
            stderr_cursor: self.logs[1].end(),
            ..DebugOutcome::default()
        };
        match phase {
            None | Some(Phase::Running) => {}
            Some(Phase::Stopped(stop)) => {
                out.status = DebugStatus::Stopped;
                out.stopped = Some((*stop).clone());
            }
            Some(Phase::Completed(exit_code)) => {
                out.status = DebugStatus::Completed;
                out.completed = Some(Completed { exit_code });
            }
            Some(Phase::Gone(reason)) => return Err(Error::Debug(reason)),
        }
        Ok(out)
    }

    /// The outcome for a program that already ended, if it did.
    fn ended_outcome(&self) -> Option<Result<DebugOutcome>> {
        let d = self.debug.as_ref()?;
        d.terminated
            .then(|| self.outcome(Some(Phase::Completed(d.program_exit)), Instant::now()))
    }
}

/// Waits until a phase newer than `after` is published; `None` when the deadline passes.
async fn next_phase(
    mut rx: watch::Receiver<Published>,
    after: u64,
    deadline: tokio::time::Instant,
) -> Option<Phase> {
    match tokio::time::timeout_at(deadline, rx.wait_for(|p| p.gen > after)).await {
        Ok(Ok(p)) => Some(p.phase.clone()),
        Ok(Err(_)) => Some(Phase::Gone("the session stopped".into())),
        Err(_) => None,
    }
}

impl Handler<SetBreakpoints> for Session {
    type Result = ResponseActFuture<Self, Result<BreakpointsResult>>;

    fn handle(&mut self, msg: SetBreakpoints, _: &mut Self::Context) -> Self::Result {
        let (path, lines, wanted) = match self.wanted_breakpoints(msg) {
            Ok(w) => w,
            Err(e) => return self.refuse(e),
        };
        let d = self.debug.as_ref().expect("checked");
        let display = d.display_path(&path);
        let link = Rc::clone(&d.link);
        self.note_input(format!("[debug_set_breakpoints {display} {lines:?}]\n").as_bytes());
        let started = Instant::now();
        let source = json!({ "path": path });
        Box::pin(set_breakpoints(link, source, wanted).into_actor(self).map(
            move |result, act, _| {
                act.debug_op_done(started, &result);
                let (kept, breakpoints) = result?;
                let d = act.debugger_mut();
                if kept.is_empty() {
                    d.breakpoints.remove(&path);
                } else {
                    d.breakpoints.insert(path, kept);
                }
                act.persist(When::Lazy);
                Ok(BreakpointsResult {
                    file: display,
                    breakpoints,
                })
            },
        ))
    }
}

impl Session {
    /// Checks a breakpoints request against the session and resolves its file: returns the
    /// file's absolute path, the distinct lines asked for and the breakpoints wanted there.
    fn wanted_breakpoints(
        &self,
        msg: SetBreakpoints,
    ) -> Result<(String, Vec<u32>, Vec<StoredBreakpoint>)> {
        let d = self.debugger("debug_set_breakpoints")?;
        self.require_state(
            "set breakpoints",
            &[StateKind::Ready, StateKind::Busy, StateKind::Paused],
            "Ready, Busy or Paused",
        )?;
        let path = d.resolve_file("file", &msg.file)?;
        let path = path.to_string_lossy().into_owned();
        if msg.lines.len() > MAX_LINES {
            return Err(Error::invalid(
                "lines",
                format!("{} lines; at most {MAX_LINES} per call", msg.lines.len()),
            ));
        }
        if msg.lines.contains(&0) {
            return Err(Error::invalid("lines", "lines start at 1"));
        }
        let condition = msg.condition.filter(|c| !c.trim().is_empty());
        let mut lines = msg.lines;
        let mut seen = std::collections::HashSet::new();
        lines.retain(|l| seen.insert(*l));
        let wanted: Vec<StoredBreakpoint> = lines
            .iter()
            .map(|&line| StoredBreakpoint {
                file: path.clone(),
                line,
                condition: condition.clone(),
            })
            .collect();
        Ok((path, lines, wanted))
    }
}

/// Sets the `wanted` breakpoints in the file `source`, then takes back the ones the adapter
/// moved to other lines: returns the breakpoints kept and the report for each wanted one.
async fn set_breakpoints(
    link: Rc<Link>,
    source: Value,
    wanted: Vec<StoredBreakpoint>,
) -> Result<(Vec<StoredBreakpoint>, Vec<Breakpoint>)> {
    let set = json!({"source": source, "breakpoints": dap_breakpoints(&wanted)});
    let body = link.request("setBreakpoints", set).await?;
    let answered = body.get("breakpoints").and_then(Value::as_array);
    let (kept, report) = judge(&wanted, answered.map_or(&[][..], Vec::as_slice));
    if kept.len() != wanted.len() {
        // Take back the breakpoints the adapter moved to other lines.
        let set = json!({"source": source, "breakpoints": dap_breakpoints(&kept)});
        link.request("setBreakpoints", set).await?;
    }
    Ok((kept, report))
}

/// Which requested breakpoints stay, and what to report for each. A breakpoint the adapter
/// verified on another line (there is no code on the requested one) is reported unverified
/// and taken back; one it could not verify yet stays (it may bind when its code loads).
fn judge(
    wanted: &[StoredBreakpoint],
    answered: &[Value],
) -> (Vec<StoredBreakpoint>, Vec<Breakpoint>) {
    let mut kept = Vec::new();
    let mut report = Vec::new();
    for (i, bp) in wanted.iter().enumerate() {
        let answer = answered.get(i);
        let verified = answer
            .and_then(|a| a.get("verified"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let actual = answer
            .and_then(|a| a.get("line"))
            .and_then(Value::as_u64)
            .map_or(bp.line, |l| l as u32);
        let message = answer
            .and_then(|a| a.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let entry = match (verified, actual == bp.line) {
            (true, true) => {
                kept.push(bp.clone());
                Breakpoint {
                    line: bp.line,
                    verified: true,
                    message: None,
                }
            }
            (true, false) => Breakpoint {
                line: bp.line,
                verified: false,
                message: Some(format!(
                    "line {} has no code (the nearest line with code is {actual}); not set",
                    bp.line
                )),
            },
            (false, _) => {
                kept.push(bp.clone());
                Breakpoint {
                    line: bp.line,
                    verified: false,
                    message: Some(
                        message.unwrap_or_else(|| "the adapter has not verified it yet".into()),
                    ),
                }
            }
        };
        report.push(entry);
    }
    (kept, report)
}

impl Handler<Continue> for Session {
    type Result = ResponseActFuture<Self, Result<DebugOutcome>>;

    fn handle(&mut self, msg: Continue, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .debugger("debug_continue")
            .and_then(|_| self.exec_timeout(msg.timeout_ms));
        let timeout = match checked {
            Ok(t) => t,
            Err(e) => return self.refuse(e),
        };
        match self.state.kind() {
            StateKind::Paused => {
                self.note_input(b"[debug_continue]\n");
                let d = self.debugger_mut();
                let thread = d.thread_id.unwrap_or(1);
                let request = d.link.request("continue", json!({ "threadId": thread }));
                self.run_program(Some(Box::pin(request)), true, timeout)
            }
            // Already running: wait for the next stop.
            StateKind::Busy => self.run_program(None, false, timeout),
            _ => match self.ended_outcome() {
                Some(done) => Box::pin(actix::fut::ready(done)),
                None => {
                    let e = self.require_state("continue", &[], "Paused or Busy (running)");
                    self.refuse(e.expect_err("no state allowed"))
                }
            },
        }
    }
}

impl Handler<Step> for Session {
    type Result = ResponseActFuture<Self, Result<DebugOutcome>>;

    fn handle(&mut self, msg: Step, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .debugger("debug_step")
            .and_then(|_| self.exec_timeout(msg.timeout_ms))
            .and_then(|t| {
                self.require_state(
                    "step",
                    &[StateKind::Paused],
                    "Paused; the program is running: debug_pause it, or debug_continue to wait \
                     for the next stop",
                )
                .map(|()| t)
            });
        let timeout = match checked {
            Ok(t) => t,
            Err(e) => return self.refuse(e),
        };
        let command = match msg.granularity {
            StepKind::In => "stepIn",
            StepKind::Over => "next",
            StepKind::Out => "stepOut",
        };
        self.note_input(format!("[debug_step {command}]\n").as_bytes());
        let d = self.debugger_mut();
        let thread = d.thread_id.unwrap_or(1);
        let request = d.link.request(command, json!({ "threadId": thread }));
        self.run_program(Some(Box::pin(request)), true, timeout)
    }
}

impl Handler<Pause> for Session {
    type Result = ResponseActFuture<Self, Result<DebugOutcome>>;

    fn handle(&mut self, msg: Pause, _: &mut Self::Context) -> Self::Result {
        let checked = self
            .debugger("debug_pause")
            .and_then(|_| self.exec_timeout(msg.timeout_ms));
        let timeout = match checked {
            Ok(t) => t,
            Err(e) => return self.refuse(e),
        };
        match self.state.kind() {
            StateKind::Busy => {
                self.note_input(b"[debug_pause]\n");
                let d = self.debugger_mut();
                let thread = d.thread_id.unwrap_or(1);
                let request = d.link.request("pause", json!({ "threadId": thread }));
                // Not a resume: the program runs already; wait for the stop the pause causes.
                self.run_program(Some(Box::pin(request)), false, timeout)
            }
            StateKind::Paused => {
                let stop = self.debug.as_ref().and_then(|d| d.last_stop.clone());
                let now = Instant::now();
                Box::pin(actix::fut::ready(
                    self.outcome(stop.map(Phase::Stopped), now),
                ))
            }
            _ => match self.ended_outcome() {
                Some(done) => Box::pin(actix::fut::ready(done)),
                None => {
                    let e = self.require_state("pause", &[], "Busy (running) or Paused");
                    self.refuse(e.expect_err("no state allowed"))
                }
            },
        }
    }
}

impl Handler<Evaluate> for Session {
    type Result = ResponseActFuture<Self, Result<EvaluateResult>>;

    fn handle(&mut self, msg: Evaluate, _: &mut Self::Context) -> Self::Result {
        let checked = self.debugger("debug_evaluate").and_then(|_| {
            self.require_state(
                "evaluate",
                &[StateKind::Paused],
                "Paused (evaluate needs a stopped program: debug_pause or a breakpoint)",
            )
        });
        if let Err(e) = checked {
            return self.refuse(e);
        }
        if msg.expression.trim().is_empty() {
            return self.refuse(Error::invalid("expression", "is empty"));
        }
        self.note_input(format!("[debug_evaluate] {}\n", msg.expression).as_bytes());
        let d = self.debugger_mut();
        let link = std::rc::Rc::clone(&d.link);
        let thread = d.thread_id.unwrap_or(1);
        let index = msg.frame.unwrap_or(0);
        let started = Instant::now();
        Box::pin(
            async move {
                let frame = frame(&link, thread, index).await?;
                let id = frame.get("id").cloned().unwrap_or(Value::Null);
                let args = json!({"expression": msg.expression, "frameId": id, "context": "repl"});
                let body = link.request("evaluate", args).await?;
                let raw = body.get("result").and_then(Value::as_str).unwrap_or("");
                let (value, truncated) = cut(raw, MAX_VALUE_CHARS);
                Ok(EvaluateResult {
                    value,
                    kind: body
                        .get("type")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                    truncated,
                })
            }
            .into_actor(self)
            .map(move |result, act, _| {
                act.debug_op_done(started, &result);
                result
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(line: u32) -> StoredBreakpoint {
        StoredBreakpoint {
            file: "/x/a.py".into(),
            line,
            condition: None,
        }
    }

    #[test]
    fn moved_breakpoints_are_unverified_and_dropped_pending_ones_stay() {
        let wanted = [bp(2), bp(3), bp(9)];
        let answered = [
            json!({"verified": true, "line": 2}),
            json!({"verified": true, "line": 5}),
            json!({"verified": false, "message": "not loaded"}),
        ];
        let (kept, report) = judge(&wanted, &answered);
        assert_eq!(kept.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 9]);
        assert!(report[0].verified);
        assert!(!report[1].verified);
        assert!(report[1]
            .message
            .as_deref()
            .unwrap()
            .contains("nearest line with code is 5"));
        assert_eq!(report[2].message.as_deref(), Some("not loaded"));
    }
}
