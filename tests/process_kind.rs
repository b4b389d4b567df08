//! Process sessions: any argv; send, read with long-poll, signal, end.

use stablehand::process::Signal;
use stablehand::session::messages::{Exec, Read, SendInput};
use stablehand::session::{StateKind, Stream};

use crate::util::*;

#[test]
fn send_then_long_poll_read_echoes_through_cat() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["cat"]).await;
        let sent = h
            .send(
                id,
                SendInput {
                    data: "hello\n".into(),
                    eof: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(sent.bytes_written, 6);
        let page = read_next(&h, id).await;
        assert_eq!(page.data, "hello\n");
        assert_eq!(page.cursor, 6);
        // The default cursor continues where the last read ended.
        h.send(
            id,
            SendInput {
                data: "world\n".into(),
                eof: false,
            },
        )
        .await
        .unwrap();
        let page = read_next(&h, id).await;
        assert_eq!(page.data, "world\n");
        rt
    });
}

#[test]
fn eof_on_stdin_lets_the_program_finish_with_its_exit_code() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sh", "-c", "wc -c; exit 4"]).await;
        h.send(
            id,
            SendInput {
                data: "12345".into(),
                eof: true,
            },
        )
        .await
        .unwrap();
        until_state(&h, id, StateKind::Ended).await;
        let page = read_all(&h, id, Stream::Stdout).await;
        assert_eq!(page.data.trim(), "5");
        assert!(page.eof);
        assert_eq!(page.exit_code, Some(4));
        rt
    });
}

#[test]
fn exec_writes_a_line_and_returns_the_output_that_follows() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(
            &h,
            &[
                "python3",
                "-u",
                "-c",
                "import sys\nfor l in sys.stdin: print(l.strip().upper())",
            ],
        )
        .await;
        let r = bounded(
            LIMIT,
            h.exec(
                id,
                Exec {
                    input: "abc".into(),
                    timeout_ms: Some(10_000),
                    interactive: false,
                },
            ),
        )
        .await
        .unwrap();
        assert_eq!(r.stdout, "ABC\n");
        assert!(!r.timed_out);
        rt
    });
}

#[test]
fn a_read_with_wait_returns_when_the_process_exits() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sleep", "0.2"]).await;
        let page = bounded(
            LIMIT,
            h.read(
                id,
                Read {
                    wait_ms: Some(15_000),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
        assert_eq!(page.data, "");
        assert!(page.eof);
        until_state(&h, id, StateKind::Ended).await;
        rt
    });
}

#[test]
fn signals_reach_the_program_and_are_reported() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sleep", "100"]).await;
        assert!(h.signal(id, Signal::Usr1).await.unwrap().delivered);
        until_state(&h, id, StateKind::Ended).await;
        let info = h.state(id).await.unwrap();
        assert_eq!(info.signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(info.exit_code, None);
        rt
    });
}

#[test]
fn stderr_of_a_failed_program_is_kept_as_its_tail() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sh", "-c", "echo something broke >&2; exit 9"]).await;
        until_state(&h, id, StateKind::Ended).await;
        let info = h.state(id).await.unwrap();
        assert_eq!(info.exit_code, Some(9));
        assert_eq!(info.stderr_tail.as_deref(), Some("something broke"));
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
        assert_eq!(page.data, "something broke\n");
        rt
    });
}

#[test]
fn configured_rlimits_apply_to_the_child() {
    let mut c = config();
    c.session.rlimits.nofile = Some(77);
    c.session.rlimits.cpu_seconds = Some(123);
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sh", "-c", "ulimit -n; ulimit -t"]).await;
        until_state(&h, id, StateKind::Ended).await;
        let page = read_all(&h, id, Stream::Stdout).await;
        assert_eq!(page.data, "77\n123\n");
        rt
    });
}

#[test]
fn children_get_only_the_listed_environment() {
    with_runtime(config(), |rt| async move {
        // SAFETY: tests in this binary do not read this variable concurrently.
        unsafe { std::env::set_var("STABLEHAND_SECRET_FOR_TEST", "leak") };
        let h = rt.handle();
        let id = crate::util::shell(&h).await;
        let r = exec(
            &h,
            id,
            "echo \"[$STABLEHAND_SECRET_FOR_TEST] $TERM\"; test -n \"$PATH\" && echo path",
        )
        .await;
        assert_eq!(r.stdout, "[] dumb\npath\n");
        rt
    });
}

#[test]
fn input_for_a_program_that_never_reads_is_refused_beyond_the_backlog_limit() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(&h, &["sleep", "100"]).await;
        let chunk = "x".repeat(1024 * 1024);
        let mut refused = None;
        for i in 0..20 {
            match h
                .send(
                    id,
                    SendInput {
                        data: chunk.clone(),
                        eof: false,
                    },
                )
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = refused.expect("the backlog is bounded");
        assert!(i >= 15, "about 16 MiB are accepted first, refused at {i}");
        assert!(e.to_string().contains("not reading its stdin"), "{e}");
        assert_eq!(
            h.state(id).await.unwrap().state,
            StateKind::Ready,
            "the session is unharmed"
        );
        rt
    });
}

#[test]
fn a_program_is_looked_up_on_path_like_execvp_and_spawn_failures_name_their_step() {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt as _;

    use stablehand::session::messages::CreateRequest;
    use stablehand::session::Kind;
    use stablehand::Error;

    let dirs = tempfile::tempdir().unwrap();
    let (first, second) = (dirs.path().join("a"), dirs.path().join("b"));
    for (dir, mode) in [(&first, 0o644), (&second, 0o755)] {
        std::fs::create_dir(dir).unwrap();
        let tool = dir.join("sh_tool");
        std::fs::write(&tool, "#!/bin/sh\necho \"ran $0\"\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let path = |dirs: &[&std::path::Path]| {
        let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        BTreeMap::from([(
            "PATH".to_string(),
            format!("{}:/usr/bin:/bin", joined.join(":")),
        )])
    };
    let req = |env: BTreeMap<String, String>| CreateRequest {
        kind: Some(Kind::Process),
        command: Some(vec!["sh_tool".into()]),
        env,
        ..Default::default()
    };
    let (both, only_first) = (path(&[&first, &second]), path(&[&first]));
    let expected = format!("ran {}/sh_tool", second.display());

    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        // The non-executable file earlier on PATH is passed over, as execvp does.
        let id = bounded(LIMIT, h.create(req(both)))
            .await
            .unwrap()
            .session_id;
        until_state(&h, id, StateKind::Ended).await;
        let page = read_all(&h, id, Stream::Stdout).await;
        assert_eq!(page.data.trim(), expected);
        // When it is the only one, the refusal says why.
        let e = bounded(LIMIT, h.create(req(only_first))).await.unwrap_err();
        assert!(
            matches!(e, Error::Spawn { .. }) && e.to_string().contains("permission denied"),
            "{e}"
        );
        rt
    });

    // A step before exec that fails is named: here an open-file limit above what any process
    // may set (more than fs.nr_open).
    let mut c = config();
    c.session.rlimits.nofile = Some(1 << 40);
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let e = bounded(LIMIT, h.create(CreateRequest::default()))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Spawn { .. }) && e.to_string().contains("setrlimit"),
            "{e}"
        );
        rt
    });
}

#[test]
fn a_program_that_cannot_start_leaves_no_zombie_in_the_server() {
    let mut s = crate::wire::StdioServer::start();
    s.initialize();
    let create = serde_json::json!({"kind": "process", "command": ["/nonexistent/program"]});
    for n in 0..8 {
        let r = s.tool(1 + n, "session_create", create.clone());
        assert_eq!(r["isError"], true, "{r}");
        assert!(r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/program"));
    }
    // The server's children now: its guardian, alive; none exited and unreaped.
    let pid = s.child.id();
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(list.split_whitespace().map(str::to_owned));
    }
    let zombies: Vec<&String> = children
        .iter()
        .filter(|c| exited(c.parse().unwrap()))
        .collect();
    assert!(
        zombies.is_empty(),
        "zombie children of the server: {zombies:?}"
    );
}
