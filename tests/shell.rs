//! Shell exec semantics against a real bash.

use stablehand::session::messages::{Exec, Read, SendInput};
use stablehand::session::{StateKind, Stream};

use crate::util::*;

#[test]
fn exec_returns_stdout_stderr_exit_code_and_cwd_separately() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "cd /tmp; echo out; echo err >&2; (exit 7)").await;
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
        assert_eq!(r.exit_code, Some(7));
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        assert!(!r.timed_out && !r.session_ended && !r.lossy);
        rt
    });
}

#[test]
fn cd_export_declare_and_exit_status_persist_between_execs() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        exec(
            &h,
            id,
            "cd /tmp && export A=1 && declare -A M=([k]=v) && false",
        )
        .await;
        let r = exec(&h, id, "echo \"$? $A ${M[k]} $PWD\"").await;
        assert_eq!(r.stdout, "1 1 v /tmp\n");
        rt
    });
}

#[test]
fn quotes_heredocs_multiline_and_unbalanced_syntax_work() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let script = "x='it'\"'\"'s'; echo \"$x\" \\\"q\\\" 'a\\b' !bang\ncat <<'EOF'\n$HOME stays literal\n\ttab\nEOF\nfor i in 1 2; do\n  echo line$i\ndone";
        let r = exec(&h, id, script).await;
        assert_eq!(
            r.stdout,
            "it's \"q\" a\\b !bang\n$HOME stays literal\n\ttab\nline1\nline2\n"
        );
        let bad = exec(&h, id, "echo \"unterminated").await;
        assert_eq!(
            bad.exit_code,
            Some(2),
            "a syntax error is the command's failure: {bad:?}"
        );
        assert!(bad.stderr.contains("unexpected EOF"), "{}", bad.stderr);
        assert_eq!(exec(&h, id, "echo still here").await.stdout, "still here\n");
        rt
    });
}

#[test]
fn non_utf8_output_is_returned_lossily_and_flagged() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "printf 'a\\xffb\\n'; printf '\\xfe' >&2").await;
        assert!(r.lossy);
        assert_eq!(r.stdout, "a\u{fffd}b\n");
        assert_eq!(r.stderr, "\u{fffd}");
        rt
    });
}

#[test]
fn very_large_output_keeps_head_and_tail_and_counts_the_rest() {
    let mut c = config();
    c.session.output_cap_bytes = 64 * 1024;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        // 20 MB through the pipe: far beyond the cap.
        let r = exec_with(
            &h,
            id,
            "echo FIRST; head -c 20000000 /dev/zero | tr '\\0' x; echo; echo LAST",
            60_000,
        )
        .await;
        assert!(r.stdout.starts_with("FIRST\nxxx"), "{}", &r.stdout[..20]);
        assert!(r.stdout.ends_with("xxx\nLAST\n"));
        assert_eq!(
            r.stdout.len() as u64 + r.dropped_bytes,
            6 + 20_000_000 + 1 + 5
        );
        assert!(r.stdout.len() <= 64 * 1024);
        assert_eq!(r.exit_code, Some(0));
        // The session is fine afterwards.
        assert_eq!(exec(&h, id, "echo ok").await.stdout, "ok\n");
        rt
    });
}

#[test]
fn a_timed_out_exec_keeps_running_and_the_rest_is_readable_by_cursor() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let gate = Gate::new();
        let cmd = format!("echo early; {}; echo late", gate.wait());
        let r = exec_with(&h, id, &cmd, 2000).await;
        assert!(r.timed_out);
        assert_eq!(r.stdout, "early\n");
        assert_eq!(r.exit_code, None);
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Busy);
        gate.open().await;
        // Long-poll from the returned cursor until the rest arrives.
        let (rest, _) = read_until(&h, id, Stream::Stdout, r.cursor, "late").await;
        assert_eq!(rest, "late\n");
        until_state(&h, id, StateKind::Ready).await;
        assert_eq!(exec(&h, id, "echo next").await.stdout, "next\n");
        rt
    });
}

#[test]
fn interrupt_stops_the_command_and_the_shell_survives() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        for cmd in [
            "sleep 100; echo not-reached",
            "while :; do :; done; echo not-reached",
        ] {
            let r = exec_with(&h, id, cmd, 100).await;
            assert!(r.timed_out);
            let sig = h
                .signal(id, stablehand::process::Signal::Int)
                .await
                .unwrap();
            assert!(sig.delivered);
            until_state(&h, id, StateKind::Ready).await;
            let out = h
                .read(
                    id,
                    Read {
                        cursor: Some(r.cursor),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(
                !out.data.contains("not-reached"),
                "the rest of the line was aborted"
            );
        }
        let r = exec(&h, id, "echo $((6*7))").await;
        assert_eq!(r.stdout, "42\n");
        rt
    });
}

/// An interrupt sent the moment a command starts lands, often, while bash has forked the
/// command's process but not yet exec'd it, when bash's own handler swallows it; the session
/// must still interrupt the command. Interrupting at once, many times, makes that window likely
/// on a busy machine (before the fix about one interrupt in eight was lost under load).
#[test]
fn an_interrupt_at_the_moment_a_command_starts_still_stops_it() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        for round in 0..40 {
            let r = exec_with(&h, id, "sleep 100; echo not-reached", 1).await;
            assert!(r.timed_out, "round {round}");
            let sig = h
                .signal(id, stablehand::process::Signal::Int)
                .await
                .unwrap();
            assert!(sig.delivered, "round {round}");
            until_state(&h, id, StateKind::Ready).await;
        }
        let r = exec(&h, id, "echo $((6*7))").await;
        assert_eq!(r.stdout, "42\n");
        rt
    });
}

#[test]
fn exit_in_a_command_ends_the_session_with_its_code() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "echo bye; exit 3").await;
        assert!(r.session_ended);
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
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "cat; echo done").await;
        assert_eq!(
            r.stdout, "done\n",
            "cat read /dev/null and finished at once"
        );
        let req = Exec {
            input: "read -r line; echo \"got $line\"".into(),
            timeout_ms: Some(100),
            interactive: true,
        };
        let r = bounded(LIMIT, h.exec(id, req)).await.unwrap();
        assert!(r.timed_out, "an interactive command waits for input");
        h.send(
            id,
            SendInput {
                data: "hello\n".into(),
                eof: false,
            },
        )
        .await
        .unwrap();
        let page = h
            .read(
                id,
                Read {
                    cursor: Some(r.cursor),
                    wait_ms: Some(5000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.data, "got hello\n");
        until_state(&h, id, StateKind::Ready).await;
        rt
    });
}

#[test]
fn concurrent_execs_on_one_session_queue_and_never_interleave() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let calls = (0..8).map(|i| {
            let h = h.clone();
            async move { exec(&h, id, &format!("for j in 1 2 3; do echo {i}-$j; done")).await }
        });
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.stdout, format!("{i}-1\n{i}-2\n{i}-3\n"));
        }
        rt
    });
}

#[test]
fn stderr_is_readable_by_its_own_cursor() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "echo e1 >&2; echo o1").await;
        let page = h
            .read(
                id,
                Read {
                    stream: Stream::Stderr,
                    cursor: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.data, "e1\n");
        assert_eq!(page.cursor, r.stderr_cursor);
        rt
    });
}

#[test]
fn input_sent_right_behind_an_interactive_exec_reaches_the_command_not_the_shell() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let addr = h.addr(id).unwrap();
        for i in 0..20 {
            // Both messages are queued at once: the send races the shell's read of the line.
            let exec = addr.send(Exec {
                input: "read -r line; echo \"got $line\"".into(),
                timeout_ms: Some(10_000),
                interactive: true,
            });
            let send = addr.send(SendInput {
                data: format!("hello {i}\n"),
                eof: false,
            });
            bounded(LIMIT, send).await.unwrap().unwrap();
            let r = bounded(LIMIT, exec).await.unwrap().unwrap();
            assert_eq!(r.stdout, format!("got hello {i}\n"), "round {i}");
        }
        rt
    });
}

#[test]
fn a_new_session_reports_its_start_directory_before_any_exec() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    with_runtime(config(), move |rt| async move {
        let h = rt.handle();
        for kind in [
            stablehand::session::Kind::Shell,
            stablehand::session::Kind::Process,
        ] {
            let req = stablehand::session::messages::CreateRequest {
                kind: Some(kind),
                command: (kind == stablehand::session::Kind::Process).then(|| vec!["cat".into()]),
                cwd: Some(path.clone().into()),
                ..Default::default()
            };
            let id = bounded(LIMIT, h.create(req)).await.unwrap().session_id;
            assert_eq!(
                h.state(id).await.unwrap().cwd.as_deref(),
                Some(path.as_str()),
                "{kind:?}"
            );
        }
        rt
    });
}

#[test]
fn a_background_job_leaves_no_notice_on_stderr_and_the_shell_keeps_its_changes() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(
            &h,
            id,
            "false; echo \"was $?\"; sleep 0 & wait; cd /tmp; V=7",
        )
        .await;
        assert_eq!(r.stdout, "was 1\n");
        assert_eq!(r.stderr, "", "bash's job notice");
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        let r = exec(&h, id, "echo \"$V\"; nosuch & wait").await;
        assert_eq!(r.stdout, "7\n");
        assert_eq!(r.stderr, "bash: nosuch: command not found\n");
        rt
    });
}

/// Runs `cmd` until it times out, interrupts it, and returns what it printed once the shell
/// is back at its prompt.
async fn interrupted(h: &stablehand::Handle, id: stablehand::SessionId, cmd: &str) -> String {
    let r = exec_with(h, id, cmd, 200).await;
    assert!(r.timed_out, "{cmd}: {r:?}");
    interrupted_now(h, id, r.cursor).await
}

/// The prompts frame each exec, so an interrupt must still abort the whole line: a loop of
/// short commands (external or builtin) and a pipeline stop, and the shell answers at once.
#[test]
fn an_interrupt_stops_a_loop_of_short_commands_and_a_pipeline() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        for cmd in [
            "for ((i = 0; ; i++)); do /bin/true; done; echo not-reached",
            "for ((;;)); do true; done; echo not-reached",
            "while :; do echo tick; done >/dev/null; echo not-reached",
            "yes | cat | head -c 100000000000 >/dev/null; echo not-reached",
            "sleep 100 | sleep 100 | cat; echo not-reached",
        ] {
            let out = interrupted(&h, id, cmd).await;
            assert!(!out.contains("not-reached"), "{cmd}: {out}");
            let r = exec(&h, id, "echo \"status $?\"").await;
            assert_eq!(r.stdout, "status 130\n", "{cmd}: the loop was interrupted");
        }
        rt
    });
}

#[test]
fn traps_and_set_e_set_by_a_command_behave_as_in_a_terminal() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(
            &h,
            id,
            "trap 'echo err-trap >&2' ERR; trap 'dbg=$((dbg + 1))' DEBUG",
        )
        .await;
        assert_eq!((r.exit_code, r.stderr.as_str()), (Some(0), ""));
        let r = exec(&h, id, "false").await;
        assert_eq!(r.exit_code, Some(1));
        // Once for `false` and once for the `eval` that runs it, which fails in turn.
        assert!(r.stderr.starts_with("err-trap\n"), "{}", r.stderr);
        let r = exec(&h, id, "echo hi; cd /tmp").await;
        assert_eq!(r.stdout, "hi\n");
        assert_eq!((r.exit_code, r.cwd.as_deref()), (Some(0), Some("/tmp")));
        let r = exec(
            &h,
            id,
            "trap - ERR DEBUG; [ \"$dbg\" -gt 0 ] && echo counted",
        )
        .await;
        assert_eq!(r.stdout, "counted\n", "the DEBUG trap ran: {r:?}");

        // A handler for SIGINT runs on an interrupt; the shell goes on.
        exec(&h, id, "trap 'echo int-trap' INT").await;
        let out = interrupted(&h, id, "sleep 100").await;
        assert!(out.contains("int-trap"), "{out}");
        let r = exec(&h, id, "trap - INT; echo ok").await;
        assert_eq!(r.stdout, "ok\n");

        // `set -e` holds for the execs that follow, as in a terminal: a failure ends bash.
        let r = exec(&h, id, "set -e").await;
        assert_eq!(r.exit_code, Some(0));
        let r = exec(&h, id, "true; echo on").await;
        assert_eq!(r.stdout, "on\n");
        let r = exec(&h, id, "false; echo not-reached").await;
        assert!(r.session_ended, "{r:?}");
        assert_eq!(r.exit_code, Some(1));
        assert_eq!(r.stdout, "");
        rt
    });
}

#[test]
fn commands_that_close_stderr_or_set_the_prompts_do_not_break_the_framing() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        // stderr closed for one command, and for a whole subshell.
        let r = exec(
            &h,
            id,
            "ls /nonexistent 2>&-; echo out; (exec 2>&-; echo sub)",
        )
        .await;
        assert_eq!(r.stdout, "out\nsub\n");
        assert_ne!(r.exit_code, None);

        // The shell's own stdout sent elsewhere and back: the markers do not use it.
        let r = exec(&h, id, "exec 3>&1 >/dev/null; echo hidden").await;
        assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), ""));
        let r = exec(&h, id, "echo hidden too").await;
        assert_eq!(r.stdout, "");
        let r = exec(&h, id, "exec >&3 3>&-; echo back").await;
        assert_eq!(r.stdout, "back\n");

        // The prompts are the session's: setting them is refused and changes nothing.
        let r = exec(&h, id, "PS1='$ '").await;
        assert_eq!(r.exit_code, Some(1));
        assert!(r.stderr.contains("PS1: readonly variable"), "{}", r.stderr);
        let r = exec(&h, id, "PS0=; echo $?").await;
        assert!(r.stderr.contains("PS0: readonly variable"), "{}", r.stderr);
        // What activating a Python virtual environment does to PS1 is skipped.
        let r = exec(&h, id, "echo \"${VIRTUAL_ENV_DISABLE_PROMPT}\"").await;
        assert_eq!(r.stdout, "1\n");

        // A PROMPT_COMMAND of the user's runs before each prompt; `$?` is the command's.
        exec(&h, id, "PROMPT_COMMAND='n=$((n + 1)); false'").await;
        let r = exec(&h, id, "(exit 4)").await;
        assert_eq!(r.exit_code, Some(4));
        let r = exec(&h, id, "echo \"$n\"").await;
        assert_eq!(r.stdout, "2\n", "the hook ran once per prompt");
        assert_eq!(r.exit_code, Some(0));
        let r = exec(&h, id, "PROMPT_COMMAND='echo hook'; true").await;
        assert_eq!(
            r.stdout, "hook\n",
            "its output belongs to the exec before the prompt"
        );
        rt
    });
}

/// After an `eval` whose text ends inside a quote, bash prints its previous prompt again
/// without expanding it; the session must not take that prompt's status and cwd.
#[test]
fn a_command_that_ends_inside_a_quote_reports_its_own_status_and_cwd() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "(exit 5)").await;
        assert_eq!(r.exit_code, Some(5));
        // (command, its status, cwd after it); each runs after an exec that ended 0 in /.
        for (cmd, status, cwd) in [
            ("echo \"unterminated", 2, "/"),
            ("cd /tmp\necho 'unterminated", 2, "/tmp"),
            ("cd /tmp\necho $(unterminated", 1, "/tmp"),
        ] {
            exec(&h, id, "cd /").await;
            let r = exec(&h, id, cmd).await;
            assert_eq!(r.exit_code, Some(status), "{cmd}: {r:?}");
            assert_eq!(r.cwd.as_deref(), Some(cwd), "{cmd}");
            assert!(r.stderr.contains("unexpected EOF"), "{cmd}: {}", r.stderr);
            let r = exec(&h, id, "echo \"$? $PWD\"").await;
            assert_eq!(
                r.stdout,
                format!("{status} {cwd}\n"),
                "{cmd}: what bash says"
            );
        }
        rt
    });
}

/// Plain words are sent without `eval`; they must mean what they mean through it.
#[test]
fn commands_of_plain_words_keep_their_meaning() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "A=41").await;
        assert_eq!((r.exit_code, r.stdout.as_str()), (Some(0), ""));
        let r = exec(&h, id, "cd /tmp").await;
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        let r = exec(&h, id, "false").await;
        assert_eq!(r.exit_code, Some(1));
        let r = exec(&h, id, "echo \"$? $((A + 1)) $PWD\"").await;
        assert_eq!(r.stdout, "1 42 /tmp\n");
        let r = exec(&h, id, "cat").await;
        assert_eq!(
            (r.exit_code, r.stdout.as_str()),
            (Some(0), ""),
            "stdin is /dev/null"
        );
        let r = exec(&h, id, "nosuchcommand --flag=1").await;
        assert_eq!(r.exit_code, Some(127));
        assert!(
            r.stderr.contains("nosuchcommand: command not found"),
            "{}",
            r.stderr
        );
        let r = exec(&h, id, "exit 3").await;
        assert!(r.session_ended);
        assert_eq!(r.exit_code, Some(3));
        rt
    });
}

/// A program that catches the interrupt to clean up gets it once, however long it takes: the
/// checks that send an interrupt again leave a group alone when any process in it but the
/// shell has a handler.
#[test]
fn a_program_that_catches_the_interrupt_gets_it_once() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let program = "python3 -c 'import signal, time\nn = 0\ndef on_int(s, f):\n    global n\n    n += 1\nsignal.signal(signal.SIGINT, on_int)\nprint(\"ready\", flush=True)\nt = time.time()\nwhile time.time() - t < 2.5:\n    time.sleep(0.01)\nprint(\"caught\", n)'";
        let started = exec_with(&h, id, program, 1).await;
        assert!(started.timed_out, "{started:?}");
        // Interrupted once it has said it handles SIGINT; it outlives eight of the checks.
        let (seen, cursor) = read_until_checked(&h, id, Stream::Stdout, 0, "ready", |page| {
            assert!(
                page.state == StateKind::Busy,
                "the program ended early: {page:?}"
            );
        })
        .await;
        let out = interrupted_now(&h, id, cursor).await;
        assert!(out.contains("caught 1\n"), "{seen}{out}");
        rt
    });
}

/// Interrupts the running exec and returns what it printed from `cursor` once the shell is
/// back at its prompt.
async fn interrupted_now(h: &stablehand::Handle, id: stablehand::SessionId, cursor: u64) -> String {
    let sig = h
        .signal(id, stablehand::process::Signal::Int)
        .await
        .unwrap();
    assert!(sig.delivered);
    until_state(h, id, StateKind::Ready).await;
    h.read(
        id,
        Read {
            cursor: Some(cursor),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .data
}
