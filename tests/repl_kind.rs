//! The `repl` kind: a persistent Python namespace (real python3), values and errors as fields,
//! interrupts, timeouts, and the namespace kept across eviction and restarts.

use stablehand::process::Signal;
use stablehand::session::messages::{CreateRequest, Exec, ExecResult, SendInput};
use stablehand::session::snapshot::{NamespaceSnapshot, SnapshotNamespace};
use stablehand::session::{Kind, StateKind, Stream};
use stablehand::{Config, Error, Handle, SessionId};

use crate::util::*;

/// The test config, on the interpreter `STABLEHAND_TEST_PYTHON` names if set (for example a
/// virtualenv's python with dill, to cover that codec), else `python3`.
fn repl_config() -> Config {
    let mut c = config();
    if let Some(python) = std::env::var_os("STABLEHAND_TEST_PYTHON") {
        c.commands.repl = vec![python.to_string_lossy().into_owned()];
    }
    c
}

/// A REPL session on the configured interpreter.
async fn repl(h: &Handle) -> SessionId {
    repl_with(h, None).await
}

async fn repl_with(h: &Handle, command: Option<&[&str]>) -> SessionId {
    let req = CreateRequest {
        kind: Some(Kind::Repl),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    bounded(LIMIT, h.create(req))
        .await
        .expect("the repl starts")
        .session_id
}

/// Asks the session for a namespace snapshot.
async fn snapshot(h: &Handle, id: SessionId) -> stablehand::Result<NamespaceSnapshot> {
    bounded(
        LIMIT,
        h.snapshot_namespace(id, SnapshotNamespace::default()),
    )
    .await
}

fn assert_clean(r: &ExecResult) {
    assert!(r.error.is_none(), "unexpected error: {:?}", r.error);
    assert!(!r.timed_out && !r.session_ended, "{r:?}");
    assert_eq!(r.exit_code, Some(0), "{r:?}");
}

#[test]
fn multi_line_code_with_def_class_and_import_runs_in_one_persistent_namespace() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let code = "import math\n\
                    \n\
                    def hyp(a, b):\n    \
                        return math.sqrt(a * a + b * b)\n\
                    \n\
                    class Box:\n    \
                        def __init__(self, v):\n        \
                            self.v = v\n\n    \
                        def __repr__(self):\n        \
                            return f'Box({self.v})'\n\
                    \n\
                    b = Box(hyp(3, 4))\n\
                    print('made', b)\n";
        let r = exec(&h, id, code).await;
        assert_clean(&r);
        assert_eq!(r.stdout, "made Box(5.0)\n");
        assert_eq!(r.stderr, "");
        assert_eq!(r.value, None, "the last statement is a call to print");
        let r = exec(&h, id, "b.v += 1\nb").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("Box(6.0)"), "b and Box persist");
        let r = exec(&h, id, "hyp(5, 12), math.pi > 3").await;
        assert_eq!(r.value.as_deref(), Some("(13.0, True)"));
        assert_eq!(h.state(id).await.unwrap().kind, Kind::Repl);
        rt
    });
}

#[test]
fn the_value_is_the_repr_of_a_last_expression_and_none_is_not_shown() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        for (code, value) in [
            ("6 * 7", Some("42")),
            ("'a' + 'b'", Some("'ab'")),
            ("x = 1", None),
            ("None", None),
            ("x; 1 + x", Some("2")),
            ("x + 1;", None), // IPython's rule: a trailing semicolon hides it
            ("[x] * 3  # a comment", Some("[1, 1, 1]")),
            ("if x:\n    5\n", None), // only a last top-level expression counts
            (
                "import asyncio\nawait asyncio.sleep(0)\n'awaited'",
                Some("'awaited'"),
            ),
        ] {
            let r = exec(&h, id, code).await;
            assert_clean(&r);
            assert_eq!(r.value.as_deref(), value, "code {code:?}");
        }
        let r = exec(&h, id, "print('shown')").await;
        assert_eq!((r.stdout.as_str(), r.value), ("shown\n", None));
        rt
    });
}

#[test]
fn an_exception_is_an_error_with_the_users_traceback_and_the_session_lives() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        exec(&h, id, "kept = 'yes'").await;
        let code = "def divide(a):\n    return a / 0\n\nprint('before')\ndivide(1)\nprint('after')";
        let r = exec(&h, id, code).await;
        assert!(!r.timed_out && !r.session_ended);
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.value, None);
        assert_eq!(r.stdout, "before\n", "the code stopped at the exception");
        let e = r.error.expect("an error");
        assert_eq!(e.kind, "ZeroDivisionError");
        assert_eq!(e.message, "division by zero");
        assert!(e.traceback.starts_with("Traceback"), "{}", e.traceback);
        assert!(
            e.traceback.contains("line 2, in divide") && e.traceback.contains("return a / 0"),
            "the traceback shows the user's line: {}",
            e.traceback
        );
        assert!(
            !e.traceback.contains("<string>"),
            "the driver's frames are cut: {}",
            e.traceback
        );
        assert!(
            r.stderr.contains("ZeroDivisionError: division by zero"),
            "stderr shows it too, as Python does: {:?}",
            r.stderr
        );
        let r = exec(&h, id, "kept").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("'yes'"));
        rt
    });
}

#[test]
fn a_syntax_error_is_an_error_and_the_session_lives() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        exec(&h, id, "n = 3").await;
        let r = exec(&h, id, "print('never')\nx = (1,\n").await;
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.stdout, "", "nothing of a block with a syntax error runs");
        let e = r.error.expect("an error");
        assert_eq!(e.kind, "SyntaxError");
        assert!(!e.message.is_empty());
        assert!(e.traceback.contains("<exec-"), "{}", e.traceback);
        let r = exec(&h, id, "n * 2").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("6"));
        rt
    });
}

#[test]
fn stdout_and_stderr_are_separate_and_output_without_a_newline_is_intact() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let r = exec(
            &h,
            id,
            "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('no newline', end='')\nsys.stderr.write('e2')\nNone",
        )
        .await;
        assert_clean(&r);
        assert_eq!(r.stdout, "out\nno newline");
        assert_eq!(r.stderr, "err\ne2");
        let r = exec(
            &h,
            id,
            "import os\nos.write(1, b'raw'); os.system('printf sub')",
        )
        .await;
        assert_clean(&r);
        assert_eq!(
            r.stdout, "rawsub",
            "writes to fd 1 and children's output count"
        );
        let r = exec(&h, id, "print('é ✓ 🐍', end='')").await;
        assert_eq!(r.stdout, "é ✓ 🐍");
        assert!(!r.lossy);
        rt
    });
}

#[test]
fn a_timed_out_exec_keeps_running_its_output_is_readable_and_interrupt_leaves_the_repl_usable() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        exec(&h, id, "state = 'kept'").await;
        // The gate holds the code between "early" and "late" until the exec has timed out.
        let gate = Gate::new();
        let code = format!(
            "import time\nprint('early', flush=True)\nopen({:?}).readline()\nprint('late', flush=True)\ntime.sleep(100)\nprint('not reached')",
            gate.path().display().to_string()
        );
        let r = exec_with(&h, id, &code, 500).await;
        assert!(r.timed_out);
        assert_eq!(r.stdout, "early\n");
        assert_eq!(r.exit_code, None);
        assert_eq!(r.error, None);
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Busy);
        gate.open().await;
        let rest = read_until(&h, id, Stream::Stdout, r.cursor, "late\n")
            .await
            .0;
        assert_eq!(rest, "late\n");
        // Interrupt the sleep, not whatever runs on the way to it.
        until_sleeping(h.state(id).await.unwrap().pid.expect("a pid")).await;
        let sig = bounded(LIMIT, h.signal(id, Signal::Int)).await.unwrap();
        assert!(sig.delivered);
        let err = read_until(&h, id, Stream::Stderr, r.stderr_cursor, "KeyboardInterrupt")
            .await
            .0;
        assert!(err.contains("time.sleep(100)"), "{err}");
        until_state(&h, id, StateKind::Ready).await;
        let out = read_all(&h, id, Stream::Stdout).await;
        assert!(!out.data.contains("not reached"), "{:?}", out.data);
        let r = exec(&h, id, "state").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("'kept'"), "the namespace survived");
        rt
    });
}

#[test]
fn an_interrupt_during_an_exec_is_a_keyboard_interrupt_error_and_one_while_idle_is_ignored() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        // Idle: nothing runs, the REPL must not die.
        assert!(
            bounded(LIMIT, h.signal(id, Signal::Int))
                .await
                .unwrap()
                .delivered
        );
        assert_eq!(exec(&h, id, "1 + 1").await.value.as_deref(), Some("2"));
        let pid = h.state(id).await.unwrap().pid.expect("a pid");
        // The interrupt goes once the code is inside its sleep or its loop (a loop shows it by
        // its first line; the two statements run in one frame, as a last expression would not).
        for (n, body) in ["import time\ntime.sleep(30)", "while True:\n    pass"]
            .into_iter()
            .enumerate()
        {
            let mark = format!("started-{n}\n");
            let code = format!("print({:?}, end='', flush=True)\n{body}", mark);
            let run = exec_with(&h, id, &code, 15_000);
            let interrupt = async {
                read_until(&h, id, Stream::Stdout, 0, &mark).await;
                if n == 0 {
                    until_sleeping(pid).await;
                }
                h.signal(id, Signal::Int).await.unwrap()
            };
            let (r, sig) = tokio::join!(run, interrupt);
            assert!(sig.delivered);
            assert!(!r.timed_out, "the interrupt ended it: {r:?}");
            assert_eq!(r.exit_code, Some(130));
            let e = r.error.expect("an error");
            assert_eq!(e.kind, "KeyboardInterrupt");
            assert!(e.traceback.contains("<exec-"), "{}", e.traceback);
        }
        let r = exec(&h, id, "'alive'").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("'alive'"));
        rt
    });
}

#[test]
fn exit_ends_the_session_with_its_code_and_sys_exit_is_an_error() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let r = exec(&h, id, "import sys\nsys.exit(2)").await;
        assert!(!r.session_ended);
        assert_eq!(r.error.expect("an error").kind, "SystemExit");
        let r = exec(&h, id, "print('bye')\nexit(3)").await;
        assert!(r.session_ended, "{r:?}");
        assert_eq!(r.exit_code, Some(3));
        assert_eq!(r.stdout, "bye\n");
        let info = h.state(id).await.unwrap();
        assert_eq!(info.state, StateKind::Ended);
        assert_eq!(info.exit_code, Some(3));
        rt
    });
}

#[test]
fn stdin_is_dev_null_unless_the_exec_is_interactive() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let r = exec(&h, id, "input()").await;
        assert_eq!(r.error.expect("an error").kind, "EOFError");
        let req = Exec {
            input: "name = input()\nprint('got', name)".into(),
            timeout_ms: Some(200),
            interactive: true,
        };
        let r = bounded(LIMIT, h.exec(id, req)).await.unwrap();
        assert!(r.timed_out, "an interactive exec waits for input");
        let sent = SendInput {
            data: "hello\n".into(),
            eof: false,
        };
        bounded(LIMIT, h.send(id, sent)).await.unwrap();
        let out = read_until(&h, id, Stream::Stdout, r.cursor, "\n").await.0;
        assert_eq!(out, "got hello\n");
        until_state(&h, id, StateKind::Ready).await;
        assert_eq!(exec(&h, id, "name").await.value.as_deref(), Some("'hello'"));
        rt
    });
}

#[test]
fn the_configured_interpreter_and_its_arguments_are_used() {
    let mut c = config();
    c.commands.repl = vec!["python3".into(), "-E".into()];
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let r = exec(&h, id, "import sys\nsys.flags.ignore_environment").await;
        assert_eq!(
            r.value.as_deref(),
            Some("1"),
            "commands.repl is the default"
        );
        let id = repl_with(&h, Some(&["python3", "-B"])).await;
        let r = exec(
            &h,
            id,
            "import sys\nsys.flags.dont_write_bytecode, sys.flags.ignore_environment",
        )
        .await;
        assert_eq!(
            r.value.as_deref(),
            Some("(1, 0)"),
            "the session's command wins"
        );
        rt
    });
}

#[test]
fn a_snapshot_queues_behind_a_running_exec_and_names_what_it_could_not_keep() {
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        exec(&h, id, "import math\nx = 41\ngen = (i for i in range(3))").await;
        let r = exec_with(&h, id, "import time\ntime.sleep(0.5)\nlate = 1", 50).await;
        assert!(r.timed_out);
        let snap = snapshot(&h, id).await.expect("a snapshot");
        assert!(
            snap.saved.contains(&"late".to_owned()),
            "it ran after the exec: {snap:?}"
        );
        assert!(snap.saved.contains(&"x".to_owned()) && snap.saved.contains(&"math".to_owned()));
        assert!(snap.skipped.contains(&"gen".to_owned()), "{snap:?}");
        assert!(snap.reasons["gen"].contains("generator"), "{snap:?}");
        assert!(snap.bytes > 0);
        assert!(["dill", "pickle"].contains(&snap.codec.as_str()));
        let sh = shell(&h).await;
        let err = snapshot(&h, sh).await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        rt
    });
}

#[test]
fn the_namespace_survives_eviction_and_resume() {
    let mut c = repl_config();
    c.runtime.max_sessions = 1;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let setup = "import math\n\
                     import threading\n\
                     x = 41\n\
                     data = {'k': [1, 2, 3]}\n\
                     gen = (i for i in range(3))\n\
                     def twice(v):\n    return 2 * v\n";
        assert_clean(&exec(&h, id, setup).await);
        let snap = snapshot(&h, id).await.expect("a snapshot");
        assert!(snap.skipped.contains(&"gen".to_owned()), "{snap:?}");
        let dill = snap.codec == "dill";
        // Set after that snapshot: only the one taken at eviction can keep it.
        assert_clean(&exec(&h, id, "after = 'evicted'").await);
        let other = shell(&h).await; // evicts the idle repl: it saves its namespace first
        until_state(&h, id, StateKind::Suspended).await;
        h.end(other, Default::default()).await.unwrap();
        let info = bounded(LIMIT, h.resume(id)).await.expect("resume");
        assert_eq!(info.state, StateKind::Ready);
        let r = exec(&h, id, "x + 1").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("42"));
        let r = exec(&h, id, "math.sqrt(16), data['k'][-1]").await;
        assert_eq!(r.value.as_deref(), Some("(4.0, 3)"), "{r:?}");
        let r = exec(&h, id, "after").await;
        assert_eq!(r.value.as_deref(), Some("'evicted'"), "{r:?}");
        let r = exec(&h, id, "gen").await;
        assert_eq!(r.error.expect("gen was not kept").kind, "NameError");
        let r = exec(&h, id, "twice(21)").await;
        if dill {
            assert_eq!(r.value.as_deref(), Some("42"));
        } else {
            assert_eq!(
                r.error.expect("pickle cannot keep functions").kind,
                "NameError"
            );
            assert!(snap.reasons["twice"].contains("dill"), "{snap:?}");
        }
        rt
    });
}

#[test]
fn the_namespace_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let stored = |dir: &std::path::Path| -> Config {
        let mut c = repl_config();
        c.store.in_memory = false;
        c.store.data_dir = Some(dir.to_owned());
        c
    };
    let (tx, rx) = std::sync::mpsc::channel();
    with_runtime(stored(data.path()), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        assert_clean(&exec(&h, id, "x = 41\nimport os\nos.chdir('/')").await);
        tx.send(id).unwrap();
        rt // shutting down suspends the repl, saving its namespace
    });
    let id = rx.recv().unwrap();
    wait_until_unlocked(data.path());
    with_runtime(stored(data.path()), |rt| async move {
        let h = rt.handle();
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Suspended);
        bounded(LIMIT, h.resume(id)).await.expect("resume");
        let r = exec(&h, id, "x + 1, os.getcwd()").await;
        assert_clean(&r);
        assert_eq!(r.value.as_deref(), Some("(42, '/')"));
        rt
    });
}

#[test]
fn os_chdir_in_the_repl_moves_the_sessions_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    let path = path.to_string_lossy().into_owned();
    with_runtime(repl_config(), |rt| async move {
        let h = rt.handle();
        let id = repl(&h).await;
        let exec = Exec {
            input: format!("import os\nos.chdir({path:?})"),
            ..Default::default()
        };
        let r = bounded(LIMIT, h.exec(id, exec)).await.unwrap();
        assert_clean(&r);
        assert_eq!(r.cwd.as_deref(), Some(path.as_str()));
        let info = h.state(id).await.unwrap();
        assert_eq!(info.cwd.as_deref(), Some(path.as_str()));
        rt
    });
}
