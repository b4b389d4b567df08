//! Reaping the orphans the server adopts as a child subreaper.
//!
//! With `runtime.subreaper` on, a process whose parent exits before it does becomes this
//! process's child: `(cmd &)` or `(setsid daemon &)` run by a session's shell, a server that
//! forked twice, the program a debug adapter's launcher started, what is left of a session
//! whose actor died, the guardian of a server this process started and killed. Nothing else
//! waits for those, so each would stay a zombie — holding a pid (32,768 of them on many
//! machines) and counted by its session's pids cgroup — until this process exits.
//!
//! The reaper is one thread per process (the subreaper flag is the process's, and outlives
//! any runtime in it). It reaps a zombie child of this process that
//! - is not claimed: every child [`super::spawn`] starts holds a [`Claim`] until its own
//!   waiter has reaped it, so an exit status a session waits for is never taken from it;
//! - is not in this process's own process group: a child an embedding application starts
//!   stays in that group unless it asks otherwise, and the application waits for it itself,
//!   while every process of a session is in a group the session leads or one of its own;
//! - has been a zombie for at least [`GRACE`], so an application that starts a child in a
//!   group of its own and waits for it promptly still gets its status — unless it is in the
//!   process group or Unix session of a claimed child (every session's child leads its own):
//!   a session's orphan for sure, reaped at once.
//!
//! An application that starts children in groups of their own and waits for them only much
//! later should turn `runtime.subreaper` off (its orphans then go to init).
//!
//! It scans on SIGCHLD (signal-hook writes to a socket the thread polls), at most once every
//! [`GAP`], again when a zombie's grace runs out, and every [`IDLE`] in case a scan missed a
//! child (the kernel's lists of children can miss one that moves while they are read). A scan
//! reads `/proc/self/task/*/children` and the `stat` of each unclaimed child: it costs nothing
//! per session.

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::debug;

/// How long an unclaimed zombie is left for a waiter of its own before the reaper takes it.
pub const GRACE: Duration = Duration::from_secs(1);
/// The shortest time between two scans (SIGCHLD in bursts is one scan).
const GAP: Duration = Duration::from_millis(100);
/// The longest time between two scans.
const IDLE: Duration = Duration::from_secs(30);

/// Children claimed by their waiters, with how many claims each pid has (a pid reaped by
/// its waiter can be reused by a new child before the old claim is dropped).
static CLAIMED: Mutex<Option<HashMap<libc::pid_t, u32>>> = Mutex::new(None);
/// Whether the reaper thread runs.
static STARTED: Mutex<bool> = Mutex::new(false);

/// A child whose waiter reaps it: the reaper leaves it alone while the claim lives. Drop it
/// once the child is reaped, or when its waiter gives up (the reaper then adopts it).
#[derive(Debug)]
pub(crate) struct Claim(libc::pid_t);

impl Claim {
    /// Claims `pid`.
    pub(crate) fn new(pid: libc::pid_t) -> Self {
        let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
        *claimed
            .get_or_insert_with(HashMap::new)
            .entry(pid)
            .or_insert(0) += 1;
        Self(pid)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(map) = claimed.as_mut() else {
            return;
        };
        if let Some(n) = map.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.0);
            }
        }
    }
}

fn claimed(pid: libc::pid_t) -> bool {
    let claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    claimed.as_ref().is_some_and(|m| m.contains_key(&pid))
}

/// Starts the reaper thread, once per process; later calls return `Ok(())`. Call it after
/// this process has become a child subreaper.
pub fn start() -> io::Result<()> {
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *started {
        return Ok(());
    }
    let (wake, signalled) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    signal_hook::low_level::pipe::register(libc::SIGCHLD, signalled)?;
    std::thread::Builder::new()
        .name("stablehand-reap".into())
        .spawn(move || run(&wake))?;
    *started = true;
    Ok(())
}

/// The reaper thread: wait for SIGCHLD or a deadline, scan, reap; for the process's life.
fn run(wake: &UnixStream) {
    let mut seen = HashMap::new();
    loop {
        let next = seen
            .values()
            .min()
            .map_or(IDLE, |first: &Instant| {
                (*first + GRACE).saturating_duration_since(Instant::now())
            })
            .max(GAP);
        wait_readable(wake, next);
        let mut buf = [0u8; 64];
        while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
        reap_orphans(&mut seen, &orphaned_zombies(), Instant::now());
        std::thread::sleep(GAP);
    }
}

/// Waits until `wake` is readable or `limit` has passed.
fn wait_readable(wake: &UnixStream, limit: Duration) {
    let mut fds = libc::pollfd {
        fd: wake.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(limit.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll reads and writes one pollfd, which lives on this stack.
    unsafe { libc::poll(&mut fds, 1, ms) };
}

/// A zombie child, as a scan finds it.
#[derive(Debug, Clone, Copy)]
struct Zombie {
    /// Its pid and start time: together they name one process, whatever reuses the pid.
    id: (libc::pid_t, u64),
    /// It is in the process group or Unix session of a claimed child, which every session's
    /// child leads: a session's orphan for sure, nobody else's to wait for.
    of_a_session: bool,
}

/// After a scan that found `zombies`: reaps each that is a session's, or that `seen` first
/// saw at least [`GRACE`] before `now`, if still unclaimed; remembers the others. Returns how
/// many it reaped.
fn reap_orphans(
    seen: &mut HashMap<(libc::pid_t, u64), Instant>,
    zombies: &[Zombie],
    now: Instant,
) -> usize {
    seen.retain(|id, _| zombies.iter().any(|z| z.id == *id));
    let mut reaped = 0;
    for z in zombies {
        let first = *seen.entry(z.id).or_insert(now);
        let (pid, _) = z.id;
        if (!z.of_a_session && now.duration_since(first) < GRACE) || claimed(pid) {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`; it reaps `pid` only if it is our child and
        // has exited, which the scan saw.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            debug!(pid, status, "reaped an orphan");
            reaped += 1;
        }
        seen.remove(&z.id);
    }
    reaped
}

/// This process's unclaimed zombie children outside its own process group.
fn orphaned_zombies() -> Vec<Zombie> {
    // SAFETY: getpid and getpgrp have no preconditions.
    let (me, group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    let Ok(me) = u32::try_from(me) else {
        return Vec::new();
    };
    children(me)
        .into_iter()
        .filter_map(|pid| libc::pid_t::try_from(pid).ok())
        .filter(|&pid| !claimed(pid))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
            // After the command name: state(3) ppid(4) pgrp(5) session(6) ... starttime(22).
            let number = |i: usize| f.get(i)?.parse::<libc::pid_t>().ok();
            let (ppid, pgrp, sid) = (number(1)?, number(2)?, number(3)?);
            let start = f.get(19)?.parse::<u64>().ok()?;
            let ours = ppid == me as libc::pid_t && *f.first()? == "Z" && pgrp != group;
            ours.then(|| Zombie {
                id: (pid, start),
                of_a_session: claimed(pgrp) || claimed(sid),
            })
        })
        .collect()
}

/// The children of this process (`me`): every thread's `children` file, or a scan of `/proc`
/// on kernels without them.
fn children(me: u32) -> Vec<u32> {
    if !super::has_children_files(me) {
        return super::proc_scan(|_, ppid, _| ppid == me);
    }
    let mut found = super::task_children(me);
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt as _;

    fn zombie(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    }

    fn until_zombie(pid: u32) {
        let start = Instant::now();
        while !zombie(pid) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{pid} never exited"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The rules, on real children: one in a group of its own is reaped once its grace has
    /// run out, not before, and not while claimed; one in this process's group never is.
    #[test]
    #[allow(
        clippy::zombie_processes,
        reason = "the reaper under test waits for the orphan"
    )]
    fn an_unclaimed_zombie_outside_our_group_is_reaped_after_its_grace_and_no_other() {
        let mut own_group = std::process::Command::new("true").spawn().unwrap();
        let mut claimed_one = std::process::Command::new("true")
            .process_group(0)
            .spawn()
            .unwrap();
        let orphan = std::process::Command::new("true")
            .process_group(0)
            .spawn()
            .unwrap();
        for pid in [own_group.id(), claimed_one.id(), orphan.id()] {
            until_zombie(pid);
        }
        let claim = Claim::new(claimed_one.id() as libc::pid_t);
        let ours = [own_group.id(), claimed_one.id(), orphan.id()].map(|p| p as libc::pid_t);
        // Only these three: other tests' children are theirs to wait for.
        let scan = || {
            let mut z = orphaned_zombies();
            z.retain(|z| ours.contains(&z.id.0));
            z
        };
        let mut seen = HashMap::new();
        let t0 = Instant::now();
        reap_orphans(&mut seen, &scan(), t0);
        reap_orphans(&mut seen, &scan(), t0 + GRACE / 2);
        assert!(zombie(orphan.id()), "reaped before its grace");
        assert_eq!(reap_orphans(&mut seen, &scan(), t0 + GRACE), 1);
        assert!(!zombie(orphan.id()), "not reaped after its grace");
        assert!(zombie(claimed_one.id()) && zombie(own_group.id()));
        assert!(own_group.wait().unwrap().success());
        // Its grace starts when it is let go.
        drop(claim);
        assert_eq!(reap_orphans(&mut seen, &scan(), t0 + GRACE * 2), 0);
        assert_eq!(reap_orphans(&mut seen, &scan(), t0 + GRACE * 3), 1);
        assert!(!zombie(claimed_one.id()), "not reaped once unclaimed");
        assert!(claimed_one.wait().is_err(), "its status was taken");
    }

    /// A zombie in the process group of a claimed child (as a session's orphans are) is
    /// reaped at the first scan.
    #[test]
    #[allow(
        clippy::zombie_processes,
        reason = "the reaper under test waits for the member"
    )]
    fn a_zombie_in_a_claimed_childs_group_is_reaped_at_once() {
        let mut leader = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let claim = Claim::new(leader.id() as libc::pid_t);
        let member = std::process::Command::new("true")
            .process_group(leader.id() as i32)
            .spawn()
            .unwrap();
        until_zombie(member.id());
        let mut found = orphaned_zombies();
        found.retain(|z| z.id.0 == member.id() as libc::pid_t);
        assert!(found.iter().all(|z| z.of_a_session), "{found:?}");
        assert_eq!(reap_orphans(&mut HashMap::new(), &found, Instant::now()), 1);
        assert!(!zombie(member.id()));
        leader.kill().unwrap();
        leader.wait().unwrap();
        drop(claim);
    }
}
