//! The `debug` kind: a real program under a real debugpy adapter, driven over the Debug
//! Adapter Protocol — breakpoints (verified or not), continue, step, pause, evaluate, output,
//! timeouts, bad input, and breakpoints kept across a resume.
//!
//! The interpreter must have debugpy: `STABLEHAND_TEST_PYTHON`, else the repository's `.venv`
//! (scripts/test.sh installs debugpy there before it runs these tests).

use std::path::Path;

use stablehand::session::kind::DebugOptions;
use stablehand::session::messages::{
    Continue, CreateRequest, DebugOutcome, DebugStatus, Evaluate, Pause, Read, SetBreakpoints,
    Step, StepKind,
};
use stablehand::session::{Kind, StateKind, Stream};
use stablehand::{Config, Error, Handle, SessionId};

use crate::util::*;

/// The interpreter with debugpy the tests run the adapter on.
fn debug_python() -> String {
    let python = std::env::var("STABLEHAND_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        venv.to_string_lossy().into_owned()
    });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import debugpy"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import debugpy: run scripts/test.sh (it installs debugpy into .venv) \
         or set STABLEHAND_TEST_PYTHON to an interpreter that has it"
    );
    python
}

fn debug_config() -> Config {
    let mut c = config();
    c.commands.debug = vec![debug_python(), "-m".into(), "debugpy.adapter".into()];
    c
}

/// A temporary cwd holding the fixture `name`.
fn workdir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::copy(src, dir.path().join(name)).expect("copy fixture");
    dir
}

fn debug_request(cwd: &Path, program: &str, stop_on_entry: bool) -> CreateRequest {
    CreateRequest {
        kind: Some(Kind::Debug),
        cwd: Some(cwd.to_path_buf()),
        debug: Some(DebugOptions {
            program: program.into(),
            stop_on_entry: Some(stop_on_entry),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn debug_session(h: &Handle, cwd: &Path, program: &str, stop_on_entry: bool) -> SessionId {
    let info = bounded(LIMIT, h.create(debug_request(cwd, program, stop_on_entry)))
        .await
        .expect("the debug session starts");
    info.session_id
}

async fn breakpoints(h: &Handle, id: SessionId, file: &str, lines: &[u32]) -> Vec<(u32, bool)> {
    let req = SetBreakpoints {
        file: file.into(),
        lines: lines.to_vec(),
        condition: None,
    };
    let r = bounded(LIMIT, h.debug_set_breakpoints(id, req))
        .await
        .expect("breakpoints set");
    r.breakpoints.iter().map(|b| (b.line, b.verified)).collect()
}

async fn cont(h: &Handle, id: SessionId, timeout_ms: u64) -> DebugOutcome {
    let req = Continue {
        timeout_ms: Some(timeout_ms),
    };
    bounded(LIMIT, h.debug_continue(id, req))
        .await
        .expect("continue")
}

async fn step(h: &Handle, id: SessionId, granularity: StepKind) -> DebugOutcome {
    let req = Step {
        granularity,
        timeout_ms: Some(10_000),
    };
    bounded(LIMIT, h.debug_step(id, req)).await.expect("step")
}

async fn eval(h: &Handle, id: SessionId, expression: &str) -> stablehand::Result<String> {
    let req = Evaluate {
        expression: expression.into(),
        frame: None,
    };
    bounded(LIMIT, h.debug_evaluate(id, req))
        .await
        .map(|r| r.value)
}

/// The stop's file, line and the value of one local.
fn at(o: &DebugOutcome) -> (String, u32) {
    assert_eq!(o.status, DebugStatus::Stopped, "{o:?}");
    let s = o.stopped.as_ref().expect("a stop");
    (s.file.clone().unwrap_or_default(), s.line.unwrap_or(0))
}

fn local<'a>(o: &'a DebugOutcome, name: &str) -> Option<&'a str> {
    let s = o.stopped.as_ref()?;
    s.locals
        .iter()
        .find(|v| v.name == name)
        .map(|v| v.value.as_str())
}

async fn read_text(h: &Handle, id: SessionId, stream: Stream) -> String {
    let req = Read {
        stream,
        cursor: Some(0),
        ..Default::default()
    };
    bounded(LIMIT, h.read(id, req)).await.expect("read").data
}

#[test]
fn breakpoints_continue_step_and_evaluate_walk_a_real_program_to_its_end() {
    let dir = workdir("debuggee.py");
    with_runtime(debug_config(), |rt| async move {
        let h = rt.handle();
        let id = debug_session(&h, dir.path(), "debuggee.py", true).await;
        let info = h.state(id).await.unwrap();
        assert_eq!(info.state, StateKind::Paused, "stop_on_entry starts Paused");
        let entry = info.last_stop.expect("the entry stop is the last stop");
        assert_eq!((entry.reason.as_str(), entry.line), ("entry", Some(1)));

        // Line 5 has code; line 2 is blank; line 500 is past the end.
        let set = breakpoints(&h, id, "debuggee.py", &[5, 2, 500]).await;
        assert_eq!(set, [(5, true), (2, false), (500, false)]);

        let first = cont(&h, id, 10_000).await;
        assert_eq!(at(&first), ("debuggee.py".into(), 5));
        let s = first.stopped.as_ref().unwrap();
        assert_eq!((s.reason.as_str(), s.hit_count), ("breakpoint", 1));
        assert_eq!(s.function.as_deref(), Some("double"));
        assert_eq!(local(&first, "n"), Some("0"));
        let n = s.locals.iter().find(|v| v.name == "n").unwrap();
        assert_eq!(n.kind.as_deref(), Some("int"));

        let second = cont(&h, id, 10_000).await;
        assert_eq!(at(&second).1, 5);
        assert_eq!(second.stopped.as_ref().unwrap().hit_count, 2);
        assert_eq!(local(&second, "n"), Some("1"));

        let over = step(&h, id, StepKind::Over).await;
        assert_eq!(at(&over).1, 6, "step over goes to the next line");
        assert_eq!(over.stopped.as_ref().unwrap().reason, "step");
        assert_eq!(local(&over, "y"), Some("2"));
        assert_eq!(eval(&h, id, "y * 10 + n").await.unwrap(), "21");
        let err = eval(&h, id, "no_such_name").await.unwrap_err();
        assert!(
            matches!(&err, Error::Debug(m) if m.contains("NameError")),
            "{err}"
        );
        let caller = h
            .debug_evaluate(
                id,
                Evaluate {
                    expression: "total".into(),
                    frame: Some(1),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (caller.value.as_str(), caller.kind.as_deref()),
            ("0", Some("int"))
        );

        let out = step(&h, id, StepKind::Out).await;
        assert_eq!(at(&out).1, 11, "step out returns to the caller's line");
        let state = h.state(id).await.unwrap();
        let last = state.last_stop.unwrap();
        assert_eq!(
            (last.file.as_deref(), last.line),
            (Some("debuggee.py"), Some(11))
        );

        // Clear the breakpoints: the program runs to sys.exit(3), which debugpy's default
        // exception filter (uncaught) stops on, then to its end.
        assert!(breakpoints(&h, id, "debuggee.py", &[]).await.is_empty());
        let exiting = cont(&h, id, 10_000).await;
        assert_eq!(at(&exiting).1, 15);
        let s = exiting.stopped.as_ref().unwrap();
        assert_eq!(s.reason, "exception");
        assert!(
            s.description
                .as_deref()
                .unwrap_or("")
                .contains("SystemExit"),
            "{s:?}"
        );
        assert_eq!(local(&exiting, "total"), Some("6"));
        assert!(
            s.locals.iter().all(|v| !v.name.contains(' ')),
            "no groups: {:?}",
            s.locals
        );
        let done = cont(&h, id, 10_000).await;
        assert_eq!(done.status, DebugStatus::Completed, "{done:?}");
        assert_eq!(done.completed.unwrap().exit_code, Some(3));
        until_state(&h, id, StateKind::Ended).await;
        assert_eq!(h.state(id).await.unwrap().exit_code, Some(3));
        assert_eq!(read_text(&h, id, Stream::Stdout).await, "total 6\n");
        assert_eq!(read_text(&h, id, Stream::Stderr).await, "bye\n");
        rt
    });
}

#[test]
fn a_timeout_while_running_returns_running_and_pause_stops_the_program() {
    let dir = workdir("spinner.py");
    with_runtime(debug_config(), |rt| async move {
        let h = rt.handle();
        let id = debug_session(&h, dir.path(), "spinner.py", false).await;
        // The program is in its loop once it has printed its pid.
        let mut text = String::new();
        while !text.ends_with('\n') {
            let req = Read {
                wait_ms: Some(10_000),
                ..Default::default()
            };
            let page = bounded(LIMIT, h.read(id, req)).await.unwrap();
            assert!(!page.eof, "the program ended: {text:?}");
            text.push_str(&page.data);
        }
        let pid: u32 = text
            .trim()
            .strip_prefix("pid ")
            .expect(&text)
            .parse()
            .unwrap();
        let running = cont(&h, id, 300).await;
        assert_eq!(running.status, DebugStatus::Running, "{running:?}");
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Busy);

        let err = h.debug_step(id, Step::default()).await.unwrap_err();
        assert!(err.to_string().contains("debug_pause"), "{err}");
        let err = eval(&h, id, "i").await.unwrap_err();
        assert!(matches!(err, Error::WrongState(_)), "{err}");

        let paused = bounded(LIMIT, h.debug_pause(id, Pause::default()))
            .await
            .unwrap();
        assert_eq!(paused.status, DebugStatus::Stopped, "{paused:?}");
        assert_eq!(paused.stopped.as_ref().unwrap().reason, "pause");
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Paused);
        assert_eq!(eval(&h, id, "i > 0").await.unwrap(), "True");
        assert_eq!(eval(&h, id, "os.getpid()").await.unwrap(), pid.to_string());
        assert!(alive(pid));
        let started = start_time(pid).unwrap();

        // Continue again, let it time out, and end the session: the program goes with it,
        // and leaves no zombie (its launcher, its parent, is gone: the reaper takes it).
        assert_eq!(cont(&h, id, 200).await.status, DebugStatus::Running);
        bounded(LIMIT, h.end(id, Default::default())).await.unwrap();
        until("the debuggee has ended and been reaped", || {
            reaped(pid, started)
        })
        .await;
        rt
    });
}

#[test]
fn bad_debug_input_gets_clear_errors_and_the_session_lives_on() {
    let dir = workdir("debuggee.py");
    let outside = tempfile::NamedTempFile::new().unwrap();
    with_runtime(debug_config(), |rt| async move {
        let h = rt.handle();
        // Create-time refusals.
        let mut no_program = debug_request(dir.path(), "", true);
        no_program.debug = None;
        let err = h.create(no_program).await.unwrap_err();
        assert!(err.to_string().contains("debug.program"), "{err}");
        let far = outside.path().to_string_lossy().into_owned();
        let err = h
            .create(debug_request(dir.path(), &far, true))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("outside the session's cwd"),
            "{err}"
        );
        let err = h
            .create(debug_request(dir.path(), "missing.py", true))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("missing.py"), "{err}");

        let id = debug_session(&h, dir.path(), "debuggee.py", true).await;
        let set = |file: &str, lines: Vec<u32>| SetBreakpoints {
            file: file.into(),
            lines,
            condition: None,
        };
        let err = h
            .debug_set_breakpoints(id, set(&far, vec![1]))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("outside the session's cwd"),
            "{err}"
        );
        let err = h
            .debug_set_breakpoints(id, set("../x.py", vec![1]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { field: "file", .. }),
            "{err}"
        );
        let err = h
            .debug_set_breakpoints(id, set("debuggee.py", vec![0]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("lines start at 1"), "{err}");
        let err = h
            .exec(
                id,
                stablehand::session::messages::Exec {
                    input: "1".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not supported by debug sessions"),
            "{err}"
        );

        // debug_* on a shell session.
        let sh = shell(&h).await;
        let err = h.debug_continue(sh, Continue::default()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "debug_continue is not supported by shell sessions"
        );
        assert_eq!(exec(&h, sh, "echo still").await.stdout, "still\n");

        // A condition: stop at line 5 only when n == 2.
        let req = SetBreakpoints {
            file: "debuggee.py".into(),
            lines: vec![5],
            condition: Some("n == 2".into()),
        };
        assert!(h.debug_set_breakpoints(id, req).await.unwrap().breakpoints[0].verified);
        let hit = cont(&h, id, 10_000).await;
        assert_eq!(at(&hit).1, 5);
        assert_eq!(
            local(&hit, "n"),
            Some("2"),
            "the condition held back n=0 and n=1"
        );
        rt
    });
}

#[test]
fn a_resumed_debug_session_restarts_the_program_with_its_breakpoints() {
    let dir = workdir("debuggee.py");
    let mut c = debug_config();
    c.runtime.max_sessions = 1;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = debug_session(&h, dir.path(), "debuggee.py", true).await;
        assert_eq!(breakpoints(&h, id, "debuggee.py", &[6]).await, [(6, true)]);
        let first = cont(&h, id, 10_000).await;
        assert_eq!(at(&first).1, 6);

        let other = shell(&h).await; // evicts the paused debug session
        until_state(&h, id, StateKind::Suspended).await;
        let stored = h.state(id).await.unwrap();
        assert_eq!(stored.last_stop.map(|s| s.line), Some(Some(6)));
        bounded(LIMIT, h.end(other, Default::default()))
            .await
            .unwrap();

        let resumed = bounded(LIMIT, h.resume(id)).await.expect("resume");
        assert_eq!(
            resumed.state,
            StateKind::Paused,
            "resumed at the entry stop"
        );
        let again = cont(&h, id, 10_000).await;
        assert_eq!(at(&again).1, 6, "the stored breakpoint was set again");
        assert_eq!(local(&again, "n"), Some("0"), "the program started over");
        rt
    });
}

#[test]
fn an_interpreter_without_debugpy_fails_to_start_and_says_what_to_install() {
    let dir = workdir("debuggee.py");
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let mut req = debug_request(dir.path(), "debuggee.py", true);
        // -S leaves out site-packages, where debugpy would be.
        req.command = Some(vec![
            "python3".into(),
            "-S".into(),
            "-m".into(),
            "debugpy.adapter".into(),
        ]);
        let err = bounded(LIMIT, h.create(req)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("pip install debugpy"), "{text}");
        rt
    });
}
