//! Memory and process limits per session: a fork bomb and a memory hog are contained, their
//! neighbours keep working, the state says which limit was reached, and nothing is left.
//!
//! The cgroup tests need a server that may create cgroups (root on this machine and in CI);
//! elsewhere they say so and pass without checking.

use std::path::Path;
use std::time::{Duration, Instant};

use stablehand::model::limits::{LimitMode, Limits, Mechanism};
use stablehand::session::messages::{CreateRequest, End};
use stablehand::session::{Kind, StateKind};
use stablehand::{Config, Handle, SessionId};

use crate::util::*;

fn limited_config(mode: LimitMode) -> Config {
    let mut c = config();
    c.session.limits.mechanism = mode;
    c
}

/// A config that asks for cgroups, or `None` (with a note) where this process may not make
/// them.
fn cgroup_config() -> Option<Config> {
    match stablehand::process::limits::Enforcer::new(LimitMode::Cgroup) {
        Ok(e) if e.mechanism().is_cgroup() => Some(limited_config(LimitMode::Cgroup)),
        Ok(_) | Err(_) => {
            eprintln!("SKIPPED: this process may not create cgroups (run the suite as root to check cgroup limits)");
            None
        }
    }
}

async fn limited(h: &Handle, kind: Kind, command: Option<&[&str]>, limits: Limits) -> SessionId {
    let req = CreateRequest {
        kind: Some(kind),
        command: command.map(|c| c.iter().map(|s| s.to_string()).collect()),
        limits: Some(limits),
        ..Default::default()
    };
    bounded(LIMIT, h.create(req))
        .await
        .expect("a limited session starts")
        .session_id
}

async fn end(h: &Handle, id: SessionId) {
    let end = End {
        grace_ms: Some(200),
        ..End::default()
    };
    bounded(LIMIT, h.end(id, end)).await.expect("end");
}

#[test]
fn a_fork_bomb_stops_at_the_process_limit_and_leaves_nothing() {
    let Some(c) = cgroup_config() else { return };
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        assert!(h.limits().mechanism.is_cgroup());
        let neighbour = shell(&h).await;
        let limits = Limits {
            memory_mib: Some(256),
            processes: Some(40),
        };
        let bomb = limited(&h, Kind::Shell, None, limits).await;
        let info = h.state(bomb).await.unwrap();
        let pgid = info.pid.unwrap();
        let cgroup = info
            .limits
            .unwrap()
            .cgroup
            .expect("the session runs in a cgroup");
        exec(&h, bomb, "b() { b | b & }; b").await;
        let start = Instant::now();
        loop {
            let l = h.state(bomb).await.unwrap().limits.unwrap();
            if l.process_refusals > 0 {
                assert!(
                    l.reached
                        .as_deref()
                        .unwrap_or("")
                        .starts_with("process limit 40 reached"),
                    "{l:?}"
                );
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the bomb never met its limit: {l:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (live, _) = group_members(pgid);
        assert!(
            live.len() <= 40,
            "{} processes in a session limited to 40",
            live.len()
        );
        assert_eq!(exec(&h, neighbour, "echo alive").await.stdout, "alive\n");
        end(&h, bomb).await;
        until("the bomb's processes are gone", || {
            group_members(pgid).0.is_empty()
        })
        .await;
        until("the bomb's cgroup is empty", || empty(&cgroup)).await;
        assert_eq!(exec(&h, neighbour, "echo still").await.stdout, "still\n");
        rt
    });
}

#[test]
fn a_memory_hog_is_killed_at_the_limit_and_the_shell_says_so_and_stays_usable() {
    let Some(c) = cgroup_config() else { return };
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let neighbour = shell(&h).await;
        let limits = Limits {
            memory_mib: Some(64),
            processes: None,
        };
        let id = limited(&h, Kind::Shell, None, limits).await;
        let r = exec_with(&h, id, "python3 -c \"x = 'x' * (400 << 20)\"", 30_000).await;
        assert_eq!(r.exit_code, Some(137), "{r:?}");
        assert_eq!(
            r.limit.as_deref(),
            Some("memory limit 64 MiB reached: 1 process killed"),
            "{r:?}"
        );
        assert_eq!(exec(&h, id, "echo ok").await.stdout, "ok\n");
        let l = h.state(id).await.unwrap().limits.unwrap();
        assert_eq!((l.memory_kills, l.memory_mib), (1, Some(64)), "{l:?}");
        assert_eq!(exec(&h, neighbour, "echo alive").await.stdout, "alive\n");
        let fine = exec(&h, id, "python3 -c \"x = 'x' * (8 << 20)\"; echo $?").await;
        assert_eq!((fine.stdout.as_str(), fine.limit), ("0\n", None));
        rt
    });
}

#[test]
fn a_session_whose_own_process_meets_the_memory_limit_fails_saying_why() {
    let Some(c) = cgroup_config() else { return };
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let limits = Limits {
            memory_mib: Some(48),
            processes: None,
        };
        let hog = [
            "python3",
            "-c",
            "import sys\nfor line in sys.stdin:\n    x = 'x' * (300 << 20)",
        ];
        let id = limited(&h, Kind::Process, Some(&hog), limits).await;
        let cgroup = h.state(id).await.unwrap().limits.unwrap().cgroup.unwrap();
        // The exec's answer races the exit; the state is what must say why.
        let _ = h
            .exec(
                id,
                stablehand::session::messages::Exec {
                    input: "go".into(),
                    timeout_ms: Some(30_000),
                    interactive: false,
                },
            )
            .await;
        until_state(&h, id, StateKind::Failed).await;
        let info = h.state(id).await.unwrap();
        assert!(
            info.state_detail
                .contains("memory limit 48 MiB reached: 1 process killed, the session's own process among them"),
            "{}",
            info.state_detail
        );
        until("the cgroup is empty", || empty(&cgroup)).await;
        rt
    });
}

/// Whether a session's cgroup holds no process (or is gone): an emptied cgroup is kept for
/// reuse.
fn empty(cgroup: &str) -> bool {
    std::fs::read_to_string(Path::new(cgroup).join("cgroup.procs"))
        .map(|procs| procs.trim().is_empty())
        .unwrap_or(true)
}

#[test]
fn rlimits_stand_in_without_cgroups() {
    with_runtime(limited_config(LimitMode::Rlimit), |rt| async move {
        let h = rt.handle();
        assert_eq!(h.limits().mechanism, Mechanism::Rlimit);
        let limits = Limits {
            memory_mib: Some(64),
            processes: None,
        };
        let id = limited(&h, Kind::Shell, None, limits).await;
        let r = exec_with(
            &h,
            id,
            "python3 -c \"x = 'x' * (400 << 20)\" 2>&1 | tail -n 1",
            30_000,
        )
        .await;
        assert_eq!(r.stdout, "MemoryError\n", "{r:?}");
        let l = h.state(id).await.unwrap().limits.unwrap();
        assert_eq!((l.mechanism.as_str(), l.cgroup), ("rlimit", None));
        rt
    });
}

#[test]
fn limits_of_zero_or_above_the_maximum_are_refused() {
    with_runtime(limited_config(LimitMode::Off), |rt| async move {
        let h = rt.handle();
        for (limits, says) in [
            (
                Limits {
                    memory_mib: Some(0),
                    processes: None,
                },
                "limits.memory_mib must be at least 1",
            ),
            (
                Limits {
                    memory_mib: None,
                    processes: Some(1 << 40),
                },
                "limits.processes 1099511627776 is above the maximum 16384",
            ),
        ] {
            let req = CreateRequest {
                limits: Some(limits),
                ..Default::default()
            };
            let err = bounded(LIMIT, h.create(req)).await.unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        assert_eq!(h.list(&Default::default()).unwrap().sessions.len(), 0);
        rt
    });
    for (edit, says) in [
        (
            (|c: &mut Config| c.session.limits.processes = 0) as fn(&mut Config),
            "session.limits.processes and max_processes must be at least 1",
        ),
        (
            |c: &mut Config| c.session.limits.memory_mib = c.session.limits.max_memory_mib + 1,
            "session.limits.memory_mib (65537) is above session.limits.max_memory_mib (65536)",
        ),
    ] {
        let mut c = config();
        edit(&mut c);
        let sys = actix::System::new();
        let err = sys
            .block_on(async move { stablehand::Runtime::start(c).map(|_| ()) })
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn the_cgroups_of_a_server_that_is_gone_are_emptied_and_removed_at_the_next_start() {
    let Some(c) = cgroup_config() else { return };
    // Where this process's runtimes keep their cgroups.
    let parent = std::sync::Arc::new(std::sync::Mutex::new(None));
    let found = std::sync::Arc::clone(&parent);
    with_runtime(c.clone(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let dir = h.state(id).await.unwrap().limits.unwrap().cgroup.unwrap();
        let root = Path::new(&dir)
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_owned();
        *found.lock().unwrap() = Some(root);
        rt
    });
    let parent = parent.lock().unwrap().clone().unwrap();
    // A server that is gone: a pid that has exited, and a process it left in a session cgroup.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = parent.join(format!("stablehand-{dead}-1"));
    let session = stale.join("left-behind.1");
    // Not this process's child (the runtime in it would reap it): a shell starts it and exits.
    // It leaves this process's group too, so that once killed, this process's reaper takes it.
    let out = std::process::Command::new("sh")
        .args(["-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    let left = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // A runtime starting in another test process may sweep the directory away between the
    // mkdir and the move: make it again until the process is in it.
    let mut tries = 0;
    while std::fs::create_dir_all(&session)
        .and_then(|()| std::fs::write(session.join("cgroup.procs"), &left))
        .is_err()
    {
        tries += 1;
        assert!(tries < 100, "cannot move {left} into {}", session.display());
    }
    with_runtime(c, |rt| async move {
        let left: u32 = left.parse().unwrap();
        until("the process left behind is killed", || exited(left)).await;
        rt
    });
    assert!(!stale.exists(), "{} is still there", stale.display());
}

#[test]
fn an_emptied_cgroup_is_reused_with_the_next_sessions_limits_and_one_holding_shared_memory_is_not()
{
    let Some(c) = cgroup_config() else { return };
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let mut groups = Vec::new();
        // Down, up and down again: v1 takes a memory limit only below the memory+swap one.
        for (mib, processes) in [(48, 30), (4096, 1024), (64, 40)] {
            let limits = Limits {
                memory_mib: Some(mib),
                processes: Some(processes),
            };
            let id = limited(&h, Kind::Shell, None, limits).await;
            let cgroup = h.state(id).await.unwrap().limits.unwrap().cgroup.unwrap();
            let limit = std::fs::read_to_string(Path::new(&cgroup).join("memory.max"))
                .or_else(|_| {
                    std::fs::read_to_string(Path::new(&cgroup).join("memory.limit_in_bytes"))
                })
                .unwrap();
            assert_eq!(limit.trim(), (mib << 20).to_string(), "{cgroup}");
            assert_eq!(exec(&h, id, "echo ok").await.stdout, "ok\n");
            end(&h, id).await;
            groups.push(cgroup);
        }
        assert!(
            groups.iter().all(|g| *g == groups[0]),
            "one emptied cgroup serves each next session: {groups:?}"
        );
        // A file in /dev/shm stays charged to the cgroup after its session is gone.
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let file = shm.path().join("held");
        let id = shell(&h).await;
        let held = h.state(id).await.unwrap().limits.unwrap().cgroup.unwrap();
        let r = exec(
            &h,
            id,
            &format!("head -c 4194304 /dev/zero > {}", file.display()),
        )
        .await;
        assert_eq!(r.exit_code, Some(0), "{r:?}");
        end(&h, id).await;
        let next = shell(&h).await;
        let cgroup = h.state(next).await.unwrap().limits.unwrap().cgroup.unwrap();
        assert_ne!(cgroup, held, "a cgroup holding shared memory is not reused");
        rt
    });
}
