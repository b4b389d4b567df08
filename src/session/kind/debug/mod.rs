//! The `debug` kind inside the session actor: a Debug Adapter Protocol client.
//!
//! The adapter (debugpy by default) is the session's child; its stdout carries DAP messages,
//! which the `dap` driver frames into `Marker::Dap`. Here they are
//! dispatched: responses to the request waiting for them (`link.rs`), events to the state
//! machine. The program runs in state Busy and stops in Paused; every stop is looked up once
//! (top frame and its locals, `stop.rs`) and published to whoever waits for it, and kept as the
//! session's last stop. The program's output arrives as `output` events and goes to the
//! session's output logs. Operations (breakpoints, continue, step, pause, evaluate) are in
//! `ops.rs`.
//!
//! Start-up: `initialize`, `launch`, then — once the adapter says `initialized` — the
//! session's breakpoints (a resumed session's stored ones), exception breakpoints (the
//! adapter's defaults: uncaught exceptions for debugpy) and `configurationDone`. With
//! `stop_on_entry` (the default) the session is reported ready once it is Paused at the first
//! line; otherwise once the program runs.

pub(crate) mod dap;
mod link;
pub mod messages;
mod ops;
mod stop;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use self::link::Link;
use self::messages::{LastStop, Stop};
use super::{DebugOptions, KindOptions};
use crate::model::state::Event;
use crate::process::{self, ExitStatus};
use crate::session::{Session, StateKind, Stream};
use crate::store::{DebugRecord, LiveRecord, StoredBreakpoint, When};
use crate::{Error, Result};

/// Where the program is, as told to callers waiting for it to stop.
#[derive(Debug, Clone)]
pub(in crate::session) enum Phase {
    /// Running (or starting).
    Running,
    /// Stopped here.
    Stopped(Arc<Stop>),
    /// The program ended, with this exit code when known.
    Completed(Option<i32>),
    /// The adapter went away while the program had not ended.
    Gone(String),
}

/// The latest phase with a generation number: every stop or end bumps it, so a caller
/// waits for a generation newer than the one it saw before acting.
#[derive(Debug, Clone)]
pub(in crate::session) struct Published {
    gen: u64,
    phase: Phase,
}

/// A debug session's protocol state.
#[derive(Debug)]
pub(in crate::session) struct Debugger {
    options: DebugOptions,
    /// The session's cwd, canonical: files must be inside it.
    root: PathBuf,
    link: Rc<Link>,
    initialized: Rc<Notify>,
    published: watch::Sender<Published>,
    /// Thread of the last stop, or the first thread the adapter announced.
    thread_id: Option<i64>,
    /// Bumped on every stop and every resume: a stop lookup that finishes after the program
    /// moved on is dropped.
    epoch: u64,
    /// Breakpoints by absolute file path.
    breakpoints: BTreeMap<String, Vec<StoredBreakpoint>>,
    last_stop: Option<Arc<Stop>>,
    hits: HashMap<(Option<String>, Option<u32>), u64>,
    program_exit: Option<i32>,
    /// The program's own process group, when its launcher gave it one apart from the
    /// session's (debugpy does): ended together with the session's group.
    program_group: Option<u32>,
    stopped_while_starting: bool,
    terminated: bool,
}

impl Debugger {
    /// The debugger of a `debug` session; a resumed one starts from its stored breakpoints.
    pub(in crate::session) fn new(
        options: &KindOptions,
        cwd: &Path,
        resumed: Option<&LiveRecord>,
    ) -> Option<Self> {
        let KindOptions::Debug(options) = options else {
            return None;
        };
        let stored = resumed.and_then(|r| r.debug.clone()).unwrap_or_default();
        let mut breakpoints: BTreeMap<String, Vec<StoredBreakpoint>> = BTreeMap::new();
        for bp in stored.breakpoints {
            breakpoints.entry(bp.file.clone()).or_default().push(bp);
        }
        let last_stop = stored.last_stop.map(|s| {
            Arc::new(Stop {
                reason: s.reason,
                file: s.file,
                line: s.line,
                hit_count: s.hit_count,
                ..Stop::default()
            })
        });
        let (published, _) = watch::channel(Published {
            gen: 0,
            phase: Phase::Running,
        });
        Some(Self {
            options: options.clone(),
            root: cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf()),
            link: Rc::new(Link::default()),
            initialized: Rc::new(Notify::new()),
            published,
            thread_id: None,
            epoch: 0,
            breakpoints,
            last_stop,
            hits: HashMap::new(),
            program_exit: None,
            program_group: None,
            stopped_while_starting: false,
            terminated: false,
        })
    }

    /// Connects the request side to the adapter's stdin.
    pub(in crate::session) fn attach(&self, stdin: Rc<tokio::net::unix::pipe::Sender>) {
        self.link.attach(stdin);
    }

    /// Lets go of the adapter's stdin.
    pub(in crate::session) fn detach(&self) {
        self.link.detach();
    }

    /// What the store keeps.
    pub(in crate::session) fn record(&self) -> DebugRecord {
        DebugRecord {
            breakpoints: self.breakpoints.values().flatten().cloned().collect(),
            last_stop: self.last_stop().map(Into::into),
            program_exit: self.program_exit,
        }
    }

    /// The program's own process group, if it has one apart from the session's.
    pub(in crate::session) fn program_group(&self) -> Option<u32> {
        self.program_group
    }

    /// The last stop, as `session_state` shows it.
    pub(in crate::session) fn last_stop(&self) -> Option<LastStop> {
        self.last_stop.as_deref().map(LastStop::from)
    }

    fn generation(&self) -> u64 {
        self.published.borrow().gen
    }

    fn publish(&self, phase: Phase) {
        self.published.send_modify(|p| {
            p.gen += 1;
            p.phase = phase;
        });
    }

    /// `path` as shown to callers: relative to the session's cwd when inside it.
    fn display_path(&self, path: &str) -> String {
        Path::new(path)
            .strip_prefix(&self.root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_owned())
    }

    /// Resolves a file argument against the session's cwd; it must exist inside it.
    fn resolve_file(&self, field: &'static str, file: &str) -> Result<PathBuf> {
        resolve_inside(&self.root, field, file)
    }

    fn launch_arguments(&self) -> Value {
        let o = &self.options;
        let mut args = json!({
            "name": "stablehand",
            "type": "python",
            "request": "launch",
            "program": self.root.join(&o.program),
            "args": o.args,
            "cwd": self.root,
            "stopOnEntry": o.stops_on_entry(),
            "console": "internalConsole",
            "redirectOutput": true,
            // debugpy: plain locals, without the groups of dunder names, functions and classes.
            "variablePresentation": {
                "special": "hide", "function": "hide", "class": "hide", "protected": "inline"
            },
        });
        if let Value::Object(map) = &mut args {
            map.extend(o.launch.clone());
        }
        args
    }
}

/// `file` resolved against `root` (canonical); refused unless it exists inside `root`.
pub(crate) fn resolve_inside(root: &Path, field: &'static str, file: &str) -> Result<PathBuf> {
    if file.trim().is_empty() {
        return Err(Error::invalid(field, "is empty"));
    }
    let joined = root.join(file);
    let path = joined
        .canonicalize()
        .map_err(|e| Error::invalid(field, format!("{}: {e}", joined.display())))?;
    if !path.starts_with(root) {
        return Err(Error::invalid(
            field,
            format!(
                "{} is outside the session's cwd {}",
                path.display(),
                root.display()
            ),
        ));
    }
    if !path.is_file() {
        return Err(Error::invalid(
            field,
            format!("{} is not a file", path.display()),
        ));
    }
    Ok(path)
}

/// How long a finished program's adapter gets to answer `disconnect` before its stdin closes.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

impl Session {
    /// The debugger, or the refusal for an operation on a session of another kind.
    fn debugger(&self, op: &'static str) -> Result<&Debugger> {
        self.debug.as_ref().ok_or(Error::Unsupported {
            op,
            kind: self.spec.kind,
        })
    }

    fn debugger_mut(&mut self) -> &mut Debugger {
        self.debug.as_mut().expect("called for debug sessions only")
    }

    /// Runs the launch sequence; the session is Ready (then Paused or Busy) when it is done.
    pub(in crate::session) fn start_debugger(&mut self, ctx: &mut Context<Self>) {
        let d = self.debug.as_ref().expect("debug session");
        let link = Rc::clone(&d.link);
        let initialized = Rc::clone(&d.initialized);
        let launch_args = d.launch_arguments();
        let breakpoints: Vec<(String, Value)> = d
            .breakpoints
            .iter()
            .map(|(file, bps)| (file.clone(), dap_breakpoints(bps)))
            .collect();
        let sequence = launch_sequence(link, initialized, launch_args, breakpoints);
        ctx.spawn(sequence.into_actor(self).map(|outcome, act, ctx| {
            if act.state.kind() != StateKind::Starting {
                return; // ended or failed meanwhile
            }
            match outcome {
                Ok(()) => act.debugger_started(ctx),
                Err(e) => act.start_failed(
                    Error::StartFailed {
                        reason: format!("the debug adapter did not launch the program: {e}"),
                    },
                    ctx,
                ),
            }
        }));
    }

    fn debugger_started(&mut self, ctx: &mut Context<Self>) {
        if self.transition(Event::Started).is_err() {
            return;
        }
        self.shared.touch();
        let d = self.debug.as_ref().expect("debug session");
        let (entry, stopped, terminated) = (
            d.options.stops_on_entry(),
            d.stopped_while_starting,
            d.terminated,
        );
        let _ = self.transition(if stopped {
            Event::Pause
        } else {
            Event::OpBegin
        });
        self.persist(When::Now);
        if terminated {
            self.finish_program(ctx);
        }
        if !entry || terminated || self.debug.as_ref().is_some_and(|d| d.generation() > 0) {
            self.report_ready(Ok(()));
            return;
        }
        // Ready once the entry stop has been looked up, so the caller sees it in the state.
        let mut rx = self
            .debug
            .as_ref()
            .expect("debug session")
            .published
            .subscribe();
        ctx.spawn(
            async move {
                let _ = rx.wait_for(|p| p.gen > 0).await;
            }
            .into_actor(self)
            .map(|(), act, _| act.report_ready(Ok(()))),
        );
    }

    /// One message from the adapter.
    pub(in crate::session) fn on_dap(&mut self, message: Value, ctx: Option<&mut Context<Self>>) {
        let Some(d) = &self.debug else { return };
        match message.get("type").and_then(Value::as_str) {
            Some("response") => d.link.deliver(message),
            Some("event") => self.on_dap_event(&message, ctx),
            Some("request") => {
                let refusal = d.link.refuse(&message);
                debug!(session = %self.shared.id, request = %message, "refused a reverse request");
                if let Some(ctx) = ctx {
                    ctx.spawn(refusal.into_actor(self).map(|_, _, _| ()));
                }
            }
            _ => debug!(session = %self.shared.id, %message, "unknown DAP message; ignored"),
        }
    }

    fn on_dap_event(&mut self, message: &Value, ctx: Option<&mut Context<Self>>) {
        let body = message.get("body").unwrap_or(&Value::Null);
        match message.get("event").and_then(Value::as_str).unwrap_or("") {
            "initialized" => self.debugger_mut().initialized.notify_one(),
            "output" => self.on_output_event(body, ctx),
            "thread" => {
                let d = self.debugger_mut();
                if d.thread_id.is_none() && body_text(body, "reason").as_deref() == Some("started")
                {
                    d.thread_id = body.get("threadId").and_then(Value::as_i64);
                }
            }
            "process" => self.on_process_event(body),
            "stopped" => self.on_stopped_event(body, ctx),
            "continued" => {
                self.debugger_mut().epoch += 1;
                if self.state.kind() == StateKind::Paused {
                    let _ = self.transition(Event::Resume);
                }
            }
            "exited" => {
                let code = body.get("exitCode").and_then(Value::as_i64);
                self.debugger_mut().program_exit = code.map(|c| c as i32);
            }
            "terminated" => self.on_terminated_event(ctx),
            _ => {}
        }
    }

    /// An `output` event: the program's stdout and stderr go to the session's logs, the
    /// adapter's console text to the debug log, telemetry nowhere.
    fn on_output_event(&mut self, body: &Value, ctx: Option<&mut Context<Self>>) {
        let output = body_text(body, "output").unwrap_or_default();
        match body_text(body, "category").as_deref().unwrap_or("console") {
            "stdout" => self.program_output(Stream::Stdout, &output, ctx),
            "stderr" | "important" => self.program_output(Stream::Stderr, &output, ctx),
            "telemetry" => {}
            _ => {
                debug!(session = %self.shared.id, output = %output.trim_end(), "debug console")
            }
        }
    }

    /// A `process` event: a local program in a process group apart from the session's has
    /// that group watched and kept, to be ended with the session.
    fn on_process_event(&mut self, body: &Value) {
        let pid = body.get("systemProcessId").and_then(Value::as_u64);
        let local = body.get("isLocalProcess").and_then(Value::as_bool) != Some(false);
        let own = self.child.as_ref().map(|c| c.pid);
        let group = pid
            .filter(|_| local)
            .and_then(|p| process::group_of(p as u32))
            .filter(|&g| Some(g) != own);
        if let Some(g) = group {
            debug!(session = %self.shared.id, pgid = g, "the program runs in its own process group");
            process::guardian::watch(g);
            self.debugger_mut().program_group = Some(g);
        }
    }

    /// A `stopped` event: the session becomes Paused (or notes the stop while starting) and
    /// the stop is looked up.
    fn on_stopped_event(&mut self, body: &Value, ctx: Option<&mut Context<Self>>) {
        let thread = body.get("threadId").and_then(Value::as_i64);
        let d = self.debugger_mut();
        d.epoch += 1;
        d.thread_id = thread.or(d.thread_id);
        let (epoch, thread) = (d.epoch, d.thread_id.unwrap_or(1));
        match self.state.kind() {
            StateKind::Starting => self.debugger_mut().stopped_while_starting = true,
            StateKind::Ready | StateKind::Busy => {
                let _ = self.transition(Event::Pause);
            }
            _ => {}
        }
        let reason = body_text(body, "reason").unwrap_or_else(|| "unknown".into());
        let description = body_text(body, "text").or_else(|| body_text(body, "description"));
        if let Some(ctx) = ctx {
            self.look_up_stop(epoch, thread, reason, description, ctx);
        }
    }

    /// A `terminated` event (the first one only): waiters learn the program completed, and a
    /// session past Starting finishes the program.
    fn on_terminated_event(&mut self, ctx: Option<&mut Context<Self>>) {
        let d = self.debugger_mut();
        if d.terminated {
            return;
        }
        d.terminated = true;
        d.publish(Phase::Completed(d.program_exit));
        if self.state.kind() == StateKind::Paused {
            let _ = self.transition(Event::Resume);
        }
        if self.state.kind() != StateKind::Starting {
            match ctx {
                Some(ctx) => self.finish_program(ctx),
                None => self.close_stdin(),
            }
        }
    }

    /// Program output from an `output` event, into the session's log.
    fn program_output(&mut self, stream: Stream, text: &str, ctx: Option<&mut Context<Self>>) {
        if text.is_empty() {
            return;
        }
        self.logs[stream.index()].append(text.as_bytes(), |_, _| {});
        if let Some(ctx) = ctx {
            self.output_arrived(ctx);
        }
        self.changed.notify_waiters();
    }

    /// The program ended: say goodbye to the adapter and let it exit (its exit ends the
    /// session, with the program's exit code).
    fn finish_program(&mut self, ctx: &mut Context<Self>) {
        let bye = self
            .debugger_mut()
            .link
            .request("disconnect", json!({"terminateDebuggee": true}));
        ctx.spawn(
            async move {
                let _ = tokio::time::timeout(DISCONNECT_WAIT, bye).await;
            }
            .into_actor(self)
            .map(|(), act, _| act.close_stdin()),
        );
    }

    /// The adapter exited: waiters learn it, and the session's exit status is the program's
    /// when the adapter reported it.
    pub(in crate::session) fn debugger_exited(&mut self, status: ExitStatus) -> ExitStatus {
        let Some(d) = &self.debug else {
            return status;
        };
        d.detach();
        if let Some(g) = d.program_group.filter(|_| !d.terminated) {
            // Nothing can drive the program any more.
            process::signal_group(g, process::Signal::Kill);
        }
        if !d.terminated {
            let noise = self.driver.startup_noise();
            d.publish(Phase::Gone(format!(
                "the debug adapter exited ({status}) before the program ended: {noise}"
            )));
        }
        match d.program_exit {
            Some(code) => ExitStatus {
                code: Some(code),
                signal: None,
            },
            None => status,
        }
    }
}

/// The DAP launch sequence: `initialize`, then `launch` and the adapter's configuration,
/// whichever the adapter answers first.
async fn launch_sequence(
    link: Rc<Link>,
    initialized: Rc<Notify>,
    launch_args: Value,
    breakpoints: Vec<(String, Value)>,
) -> Result<()> {
    let caps = link
        .request(
            "initialize",
            json!({
                "clientID": "stablehand",
                "clientName": "stablehand",
                "adapterID": "stablehand",
                "locale": "en",
                "linesStartAt1": true,
                "columnsStartAt1": true,
                "pathFormat": "path",
                "supportsVariableType": true,
                "supportsRunInTerminalRequest": false,
            }),
        )
        .await?;
    let launch = link.request("launch", launch_args);
    let configure = configure_adapter(&link, &initialized, &caps, breakpoints);
    // Some adapters answer `launch` only after `configurationDone` (debugpy), others
    // before `initialized` (lldb-dap): wait for both, in either order.
    tokio::pin!(launch, configure);
    tokio::select! {
        r = &mut launch => { r?; configure.await }
        r = &mut configure => { r?; launch.await.map(drop) }
    }
}

/// Once the adapter says `initialized`: sets the stored breakpoints again (one that fails is
/// only logged), the exception breakpoints the adapter enables by default (`caps`), then
/// `configurationDone` when the adapter supports it.
async fn configure_adapter(
    link: &Rc<Link>,
    initialized: &Notify,
    caps: &Value,
    breakpoints: Vec<(String, Value)>,
) -> Result<()> {
    initialized.notified().await;
    for (file, bps) in breakpoints {
        let set = json!({"source": {"path": file}, "breakpoints": bps});
        if let Err(e) = link.request("setBreakpoints", set).await {
            warn!(error = %e, %file, "a stored breakpoint could not be set again");
        }
    }
    let filters: Vec<Value> = caps
        .get("exceptionBreakpointFilters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f.get("default").and_then(Value::as_bool) == Some(true))
        .filter_map(|f| f.get("filter").cloned())
        .collect();
    link.request("setExceptionBreakpoints", json!({ "filters": filters }))
        .await?;
    if caps
        .get("supportsConfigurationDoneRequest")
        .and_then(Value::as_bool)
        == Some(true)
    {
        link.request("configurationDone", json!({})).await?;
    }
    Ok(())
}

/// The string `key` of a DAP event's body, if it has one.
fn body_text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A file's breakpoints as DAP `SourceBreakpoint`s.
fn dap_breakpoints(bps: &[StoredBreakpoint]) -> Value {
    Value::Array(
        bps.iter()
            .map(|b| match &b.condition {
                Some(c) => json!({"line": b.line, "condition": c}),
                None => json!({"line": b.line}),
            })
            .collect(),
    )
}
