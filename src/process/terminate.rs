//! Ending a whole process group: TERM, a grace period, KILL, then reaping what is left, and
//! telling the guardian the group is gone.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep, timeout_at, Instant};

use super::{group_alive, guardian, reap_group, signal_group, ExitStatus, Signal};

/// How a group was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminateOutcome {
    /// The leader's exit status, if it was observed.
    pub status: Option<ExitStatus>,
    /// True when SIGKILL had to be sent because the grace period ran out.
    pub killed: bool,
}

/// How long to keep reaping after SIGKILL before giving up on processes that are not ours.
const KILL_REAP_LIMIT: Duration = Duration::from_secs(2);

/// Ends process group `pgid`: SIGTERM to the group, then waits up to `grace` for the leader
/// and every other member to go; SIGKILL to the group if any remain; reaps members that were
/// reparented to this process.
///
/// `leader_exit` reports the leader's status once its waiter has reaped it. Once the group is
/// seen empty, the [`guardian`] stops watching it (a group that could not be seen empty is
/// left to the guardian's own pruning).
pub async fn terminate(
    pgid: u32,
    grace: Duration,
    mut leader_exit: watch::Receiver<Option<ExitStatus>>,
) -> TerminateOutcome {
    let deadline = Instant::now() + grace;
    signal_group(pgid, Signal::Term);
    // A stopped group would never act on TERM.
    signal_group(pgid, Signal::Cont);
    let mut status = timeout_at(deadline, leader_exit.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().and_then(|s| *s));
    if status.is_some() && wait_group_empty(pgid, deadline).await {
        guardian::unwatch(pgid);
        return TerminateOutcome {
            status,
            killed: false,
        };
    }
    signal_group(pgid, Signal::Kill);
    let kill_deadline = Instant::now() + KILL_REAP_LIMIT;
    if status.is_none() {
        status = timeout_at(kill_deadline, leader_exit.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|s| *s));
    }
    if status.is_some() && wait_group_empty(pgid, kill_deadline).await {
        guardian::unwatch(pgid);
    }
    TerminateOutcome {
        status,
        killed: true,
    }
}

/// Ends process group `pgid` whose leader is not this process's child (a debuggee that its
/// launcher moved into a group of its own): TERM, up to `grace` for the group to empty
/// (reaping members reparented to this process), then KILL.
pub async fn end_group(pgid: u32, grace: Duration) {
    if !signal_group(pgid, Signal::Term) {
        return;
    }
    signal_group(pgid, Signal::Cont);
    if !wait_group_empty(pgid, Instant::now() + grace).await {
        signal_group(pgid, Signal::Kill);
        wait_group_empty(pgid, Instant::now() + KILL_REAP_LIMIT).await;
    }
    guardian::unwatch(pgid);
}

/// Reaps the group's exited members until none is left or `deadline` passes. There is no
/// event for "the group is empty", so this polls with a short, growing back-off.
async fn wait_group_empty(pgid: u32, deadline: Instant) -> bool {
    let mut pause = Duration::from_micros(250);
    loop {
        reap_group(pgid);
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() + pause > deadline {
            return false;
        }
        sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
