//! Bad input: a clear error naming the problem; nothing panics, no other session is harmed.

use std::collections::BTreeMap;

use stablehand::process::Signal;
use stablehand::session::messages::{CreateRequest, End, Exec, Read};
use stablehand::session::{Kind, StateKind};
use stablehand::{Error, SessionId};

use crate::util::*;

fn exec_req(input: &str, timeout_ms: Option<u64>) -> Exec {
    Exec {
        input: input.into(),
        timeout_ms,
        interactive: false,
    }
}

#[test]
fn bad_requests_get_errors_that_name_the_problem_and_harm_nothing() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let bystander = shell(&h).await;
        exec(&h, bystander, "export KEEP=yes").await;
        let id = shell(&h).await;

        let unknown = SessionId::new();
        let e = h.exec(unknown, exec_req("true", None)).await.unwrap_err();
        assert!(
            e.to_string().contains(&unknown.to_string()) && e.to_string().contains("not found"),
            "{e}"
        );

        let e = h.exec(id, exec_req("   ", None)).await.unwrap_err();
        assert!(e.to_string().contains("command is empty"), "{e}");
        let e = h.exec(id, exec_req("true", Some(0))).await.unwrap_err();
        assert!(e.to_string().contains("timeout_ms"), "{e}");
        let e = h
            .exec(id, exec_req("true", Some(u64::MAX)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exceeds the maximum"), "{e}");
        let e = h
            .read(
                id,
                Read {
                    max_bytes: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("max_bytes"), "{e}");
        let e = h
            .read(
                id,
                Read {
                    cursor: Some(1 << 40),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        let e = "BOGUS".parse::<Signal>().unwrap_err();
        assert!(e.contains("BOGUS") && e.contains("INT"), "{e}");

        let create = |req: CreateRequest| h.create(req);
        let e = create(CreateRequest {
            kind: Some(Kind::Process),
            command: Some(vec!["/no/such/program".into()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(
            matches!(e, Error::Spawn { .. }) && e.to_string().contains("not found"),
            "{e}"
        );
        let e = create(CreateRequest {
            cwd: Some("/no/such/dir".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("cwd") && e.to_string().contains("/no/such/dir"),
            "{e}"
        );
        let env = BTreeMap::from([("BAD".to_string(), "a\0b".to_string())]);
        let e = create(CreateRequest {
            env,
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("NUL") && e.to_string().contains("BAD"),
            "{e}"
        );
        let e = create(CreateRequest {
            kind: Some(Kind::Process),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("need a command"), "{e}");
        let e = create(CreateRequest {
            command: Some(vec![]),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("program name is empty"), "{e}");

        // A failed create leaves no trace in the listing.
        assert_eq!(h.list(&Default::default()).unwrap().sessions.len(), 2);

        // Wrong state: exec on an Ended session names the state.
        h.end(id, End::default()).await.unwrap();
        let e = h.exec(id, exec_req("true", None)).await.unwrap_err();
        assert!(e.to_string().contains("session is Ended"), "{e}");
        let e = h.signal(id, Signal::Int).await.unwrap_err();
        assert!(e.to_string().contains("cannot signal"), "{e}");

        assert_eq!(exec(&h, bystander, "echo $KEEP").await.stdout, "yes\n");
        rt
    });
}

#[test]
fn exec_beyond_the_queue_bound_is_refused_as_busy() {
    let mut c = config();
    c.session.max_queue = 1;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        assert!(exec_with(&h, id, "sleep 3", 10).await.timed_out);
        // Addr::send enqueues at once, so these two arrive in order behind the running exec.
        let addr = h.addr(id).unwrap();
        let queued = addr.send(exec_req("echo queued", Some(15_000)));
        let e = bounded(LIMIT, addr.send(exec_req("true", Some(15_000))))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Busy {
                    queued: 1,
                    limit: 1
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("Busy") && e.to_string().contains("limit 1"),
            "{e}"
        );
        let r = bounded(LIMIT, queued).await.unwrap().unwrap();
        assert_eq!(r.stdout, "queued\n");
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Ready);
        rt
    });
}

#[test]
fn a_profile_refuses_programs_it_does_not_list() {
    let mut c = config();
    let p = c.profiles.get_mut("permissive").unwrap();
    p.process = vec!["cat".into()];
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let e = h
            .create(CreateRequest {
                kind: Some(Kind::Process),
                command: Some(vec!["sleep".into(), "1".into()]),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotAllowed { .. }), "{e}");
        assert!(
            e.to_string().contains("sleep") && e.to_string().contains("cat"),
            "{e}"
        );
        process(&h, &["cat"]).await;
        rt
    });
}
