//! The registry: get-or-create, ownership, listing, capacity, idle eviction, retention,
//! arbiter placement.

use stablehand::registry::ListRequest;
use stablehand::session::messages::{CreateRequest, End, Exec};
use stablehand::session::{Kind, StateKind};
use stablehand::{Error, Owner};

use crate::util::*;

fn named(name: &str) -> CreateRequest {
    CreateRequest {
        name: Some(name.into()),
        ..Default::default()
    }
}

#[test]
fn get_or_create_by_name_is_per_owner() {
    with_runtime(config(), |rt| async move {
        let alice = rt.handle().with_owner(Owner::new("alice"));
        let bob = rt.handle().with_owner(Owner::new("bob"));
        let a1 = alice.create(named("work")).await.unwrap();
        let a2 = alice.create(named("work")).await.unwrap();
        assert_eq!(
            a1.session_id, a2.session_id,
            "same owner and name: same session"
        );
        assert_eq!(a1.session_id.0.get_version_num(), 4, "ids are uuid v4");
        let b1 = bob.create(named("work")).await.unwrap();
        assert_ne!(a1.session_id, b1.session_id);
        // Bob cannot see or use Alice's session.
        assert!(matches!(
            bob.state(a1.session_id).await,
            Err(Error::NotFound { .. })
        ));
        let listed = bob.list(&ListRequest::default()).unwrap();
        assert_eq!(listed.sessions.len(), 1);
        assert_eq!(listed.sessions[0].session_id, b1.session_id);
        // Once ended, the name is free again.
        alice.end(a1.session_id, End::default()).await.unwrap();
        let a3 = alice.create(named("work")).await.unwrap();
        assert_ne!(a3.session_id, a1.session_id);
        rt
    });
}

#[test]
fn list_filters_by_state_and_kind_newest_first_with_a_cursor() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(shell(&h).await);
        }
        let cat = process(&h, &["cat"]).await;
        h.end(ids[0], End::default()).await.unwrap();
        let page1 = h
            .list(&ListRequest {
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            page1
                .sessions
                .iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>(),
            vec![cat, ids[2]]
        );
        let page2 = h
            .list(&ListRequest {
                limit: Some(2),
                cursor: page1.next_cursor,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            page2
                .sessions
                .iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>(),
            vec![ids[1], ids[0]]
        );
        assert!(page2.next_cursor.is_none());
        let shells = h
            .list(&ListRequest {
                kind: Some(Kind::Shell),
                state: Some(StateKind::Ready),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            shells
                .sessions
                .iter()
                .map(|s| s.session_id)
                .collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        rt
    });
}

#[test]
fn at_capacity_the_least_recently_used_idle_session_is_suspended() {
    let mut c = config();
    c.runtime.max_sessions = 2;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let old = shell(&h).await;
        let recent = shell(&h).await;
        exec(&h, old, "true").await; // `old` is now the most recently used
        let third = shell(&h).await;
        until_state(&h, recent, StateKind::Suspended).await;
        assert_eq!(h.state(old).await.unwrap().state, StateKind::Ready);
        assert_eq!(h.state(third).await.unwrap().state, StateKind::Ready);
        rt
    });
}

#[test]
fn at_capacity_with_no_idle_session_create_is_refused() {
    let mut c = config();
    c.runtime.max_sessions = 1;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let busy = shell(&h).await;
        let r = exec_with(&h, busy, "sleep 5", 50).await;
        assert!(r.timed_out);
        let err = h.create(CreateRequest::default()).await.unwrap_err();
        assert!(matches!(err, Error::AtCapacity { limit: 1 }), "{err}");
        assert!(err.to_string().contains("none is idle"));
        rt
    });
}

#[test]
fn an_idle_session_is_suspended_after_its_timeout_and_a_busy_one_is_not() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let req = CreateRequest {
            idle_timeout_ms: Some(100),
            ..Default::default()
        };
        let idle = h.create(req.clone()).await.unwrap().session_id;
        let busy = h.create(req).await.unwrap().session_id;
        let r = exec_with(&h, busy, "sleep 2", 10).await;
        assert!(r.timed_out);
        until_state(&h, idle, StateKind::Suspended).await;
        assert_eq!(h.state(busy).await.unwrap().state, StateKind::Busy);
        let err = h
            .exec(
                idle,
                Exec {
                    input: "true".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Suspended"), "{err}");
        rt
    });
}

#[test]
fn ended_sessions_are_purged_after_retention() {
    let mut c = config();
    c.runtime.retention_ms = 50;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        h.end(id, End::default()).await.unwrap();
        let start = std::time::Instant::now();
        while h.state(id).await.is_ok() {
            assert!(start.elapsed() < LIMIT, "never purged");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(matches!(h.state(id).await, Err(Error::NotFound { .. })));
        rt
    });
}

#[test]
fn sessions_are_placed_on_arbiters_round_robin() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let mut placed = Vec::new();
        for _ in 0..4 {
            let id = shell(&h).await;
            placed.push(h.state(id).await.unwrap().arbiter);
        }
        assert_eq!(placed, vec![0, 1, 0, 1]);
        rt
    });
}

#[test]
fn a_session_created_from_an_arbiter_thread_is_placed_on_that_arbiter() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        for k in [1usize, 1, 0, 1] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let caller = h.clone();
            h.arbiters()[k].spawn(async move {
                let info = caller.create(CreateRequest::default()).await.unwrap();
                let _ = tx.send(info.arbiter);
            });
            assert_eq!(
                bounded(LIMIT, rx).await.unwrap(),
                k,
                "created from arbiter {k}"
            );
        }
        rt
    });
}
