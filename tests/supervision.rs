//! Supervision: a child that dies, an actor that dies, and children that die with the server.

use std::process::{Command, Stdio};

use stablehand::session::messages::Crash;
use stablehand::session::StateKind;
use stablehand::Error;

use crate::util::*;

#[test]
fn a_child_killed_from_outside_ends_only_its_own_session() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let victim = shell(&h).await;
        let other = shell(&h).await;
        let pid = h.state(victim).await.unwrap().pid.unwrap();
        // SAFETY: plain kill(2) on a pid we own.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        until_state(&h, victim, StateKind::Ended).await;
        let info = h.state(victim).await.unwrap();
        assert_eq!(info.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(exec(&h, other, "echo fine").await.stdout, "fine\n");
        rt
    });
}

#[test]
fn a_session_actor_that_dies_is_failed_its_process_killed_and_others_unharmed() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let victim = shell(&h).await;
        let other = shell(&h).await;
        let neighbour = shell(&h).await;
        assert_eq!(
            h.state(neighbour).await.unwrap().arbiter,
            h.state(victim).await.unwrap().arbiter
        );
        let pid = h.state(victim).await.unwrap().pid.unwrap();
        let started = start_time(pid).unwrap();
        let _ = h.addr(victim).unwrap().send(Crash).await;
        let start = std::time::Instant::now();
        loop {
            let listed = h.list(&Default::default()).unwrap();
            let row = listed
                .sessions
                .iter()
                .find(|s| s.session_id == victim)
                .unwrap();
            if row.state == StateKind::Failed {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "the crashed session is still {:?}",
                row.state
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // Its actor is gone; its state is still described, from the stored record.
        let info = h.state(victim).await.unwrap();
        assert_eq!(info.state, StateKind::Failed);
        assert_eq!(info.pid, None);
        assert!(matches!(
            h.exec(victim, Default::default()).await,
            Err(Error::WrongState(_))
        ));
        // Killed, and reaped: no zombie is left of it.
        until(
            "the crashed session's shell has ended and been reaped",
            || reaped(pid, started),
        )
        .await;
        assert_eq!(exec(&h, other, "echo fine").await.stdout, "fine\n");
        assert_eq!(
            exec(&h, neighbour, "echo same thread").await.stdout,
            "same thread\n"
        );
        rt
    });
}

/// Helper half of the next test: run as a child of the test binary, it starts a shell
/// session, prints the shell's pid and waits to be killed.
#[test]
fn helper_hold_a_session_until_killed() {
    if std::env::var_os("STABLEHAND_HOLD_HELPER").is_none() {
        return;
    }
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        println!("PID {}", h.state(id).await.unwrap().pid.unwrap());
        std::future::pending::<()>().await;
        rt
    });
}

#[test]
fn children_die_with_the_server_when_it_is_killed() {
    use std::io::BufRead;
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "supervision::helper_hold_a_session_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("STABLEHAND_HOLD_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let pid: u32 = loop {
        let line = lines
            .next()
            .expect("helper printed its session's pid")
            .unwrap();
        // libtest may print "test NAME ... " on the same line first.
        if let Some(at) = line.find("PID ") {
            break line[at + 4..].trim().parse().unwrap();
        }
    };
    assert!(alive(pid));
    helper.kill().unwrap(); // SIGKILL: no graceful shutdown at all
    helper.wait().unwrap();
    let start = std::time::Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < LIMIT, "the shell outlived its server");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
