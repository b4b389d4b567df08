//! Ending sessions: TERM to the group, KILL after grace, reap; nothing left in /proc.

use stablehand::session::messages::End;
use stablehand::session::StateKind;

use crate::util::*;

#[test]
fn end_kills_a_term_ignoring_group_with_grandchildren_and_leaves_no_zombie() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = process(
            &h,
            &[
                "sh",
                "-c",
                "trap '' TERM; sleep 1000 & sleep 1000 & echo up; wait",
            ],
        )
        .await;
        let pgid = h.state(id).await.unwrap().pid.unwrap();
        // Wait until the grandchildren exist.
        let page = h
            .read(
                id,
                stablehand::session::messages::Read {
                    wait_ms: Some(5000),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.data, "up\n");
        assert_eq!(group_members(pgid).0.len(), 3, "sh and two sleeps");
        let end = bounded(
            LIMIT,
            h.end(
                id,
                End {
                    grace_ms: Some(200),
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap();
        assert!(end.ended);
        assert_eq!(
            end.signal.as_deref(),
            Some("SIGKILL"),
            "TERM was ignored, so KILL after grace"
        );
        let (live, zombies) = group_members(pgid);
        assert!(live.is_empty(), "processes left: {live:?}");
        assert!(zombies.is_empty(), "zombies left: {zombies:?}");
        rt
    });
}

#[test]
fn orphans_a_live_session_leaves_are_reaped_while_it_runs_and_its_own_exit_is_kept() {
    // `(cmd &)` leaves cmd to the server (a child subreaper) when the subshell exits, in the
    // session's group; with setsid, in a group of its own. Only the server can reap either,
    // and a shell that lives for weeks must not pile zombies up until its end.
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let out = exec(
            &h,
            id,
            "(sleep 1000 & echo $!); (setsid sleep 1000 & echo $!)",
        )
        .await;
        let orphans: Vec<(u32, u64)> = out
            .stdout
            .lines()
            .map(|l| l.parse().unwrap())
            .map(|pid| (pid, start_time(pid).expect("the orphan runs")))
            .collect();
        assert_eq!(orphans.len(), 2, "{out:?}");
        let pids: Vec<String> = orphans.iter().map(|(pid, _)| pid.to_string()).collect();
        exec(&h, id, &format!("kill {}", pids.join(" "))).await;
        for (pid, started) in orphans {
            until("the orphan is reaped", || reaped(pid, started)).await;
        }
        // What the session's own waiter claims is left to it: the shell's exit code.
        let r = exec(&h, id, "exit 7").await;
        assert!(r.session_ended);
        assert_eq!(h.state(id).await.unwrap().exit_code, Some(7));
        rt
    });
}

#[test]
fn end_of_an_idle_shell_is_prompt_and_clean() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let pid = h.state(id).await.unwrap().pid.unwrap();
        exec(&h, id, "sleep 1000 &").await;
        let end = bounded(LIMIT, h.end(id, End::default())).await.unwrap();
        assert!(end.ended);
        assert_eq!(end.state, StateKind::Ended);
        let (live, zombies) = group_members(pid);
        assert!(
            live.is_empty() && zombies.is_empty(),
            "left: {live:?} {zombies:?}"
        );
        // Ending again is harmless and reports the same outcome.
        assert_eq!(h.end(id, End::default()).await.unwrap(), end);
        rt
    });
}

#[test]
fn shutdown_ends_every_session_within_the_grace_period() {
    let mut pids = Vec::new();
    with_runtime(config(), |rt| {
        let pids = &mut pids;
        async move {
            let h = rt.handle();
            for _ in 0..3 {
                let id = shell(&h).await;
                pids.push(h.state(id).await.unwrap().pid.unwrap());
            }
            let id = process(&h, &["sh", "-c", "trap '' TERM; sleep 1000 & wait"]).await;
            pids.push(h.state(id).await.unwrap().pid.unwrap());
            let started = std::time::Instant::now();
            h.shutdown().await;
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            rt
        }
    });
    for pgid in pids {
        let (live, zombies) = group_members(pgid);
        assert!(
            live.is_empty() && zombies.is_empty(),
            "group {pgid} left {live:?} {zombies:?}"
        );
    }
}
