//! Child processes: spawning into their own process group with a parent-death signal and
//! rlimits, delivering signals to a whole group, ending a group (TERM, grace, KILL, reap), the
//! [`guardian`] that kills every session's group if the server itself is killed, the
//! [`reaper`] that reaps the orphans the server adopts as a child subreaper, the
//! open-file budget sessions and connections share (`fds.rs`), and each session's memory and
//! process limits ([`limits`]: a cgroup per session, else rlimits).
//!
//! This is the only module that calls `kill`, `killpg`, `waitpid`/`waitid`, `prctl`, `fork` or
//! `clone`.

mod fds;
pub mod guardian;
pub mod limits;
pub mod pty;
pub mod reaper;
mod spawn;
mod terminate;
pub mod users;

pub use crate::model::exit::ExitStatus;
pub use crate::model::signal::Signal;
pub use fds::{
    check_session_room, open_files, soft_limit, FdShortage, OpenFiles, RECOUNT_AFTER, SESSION_FDS,
};
pub use spawn::{spawn, Rlimits, SpawnSpec, Spawned};
pub use terminate::{end_group, terminate, TerminateOutcome};
pub use users::RunAs;

/// `pgid` as a session's process group: above 1, since 0 means the caller's own group to
/// killpg and waitpid, and 1 is init's.
fn session_group(pgid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pgid).ok().filter(|&g| g > 1)
}

/// Sends `sig` to every process in the process group `pgid`.
///
/// Returns `false` when the group no longer exists (or `pgid` is not a session's group).
pub fn signal_group(pgid: u32, sig: Signal) -> bool {
    let Some(pgid) = session_group(pgid) else {
        return false;
    };
    // SAFETY: killpg has no memory-safety preconditions; a stale group yields ESRCH.
    unsafe { libc::killpg(pgid, sig.number()) == 0 }
}

/// Makes this process a child subreaper, so orphaned grandchildren of sessions are reparented
/// to the server and can be reaped when their session ends (no zombies, whatever PID 1 does).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reaps, without blocking, every exited member of process group `pgid` that is a child of
/// this process. Call it only after the group's leader has been reaped.
pub fn reap_group(pgid: u32) -> usize {
    let Some(pgid) = session_group(pgid) else {
        return 0;
    };
    let mut reaped = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-pgid, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return reaped;
        }
        reaped += 1;
    }
}

/// Bytes written to a pipe that its reader has not read yet (FIONREAD; works on either end).
pub fn pipe_unread(fd: std::os::fd::BorrowedFd<'_>) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int to the pointer we pass.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc == 0 {
        usize::try_from(n).unwrap_or(0)
    } else {
        0
    }
}

/// True while process `pid` exists (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Ignores SIGXFSZ in this process: a write past `RLIMIT_FSIZE` then fails with `EFBIG` (an
/// error the store reports and retries) instead of killing the server. Children get the
/// default disposition back when they are spawned.
pub fn ignore_file_size_signal() {
    // SAFETY: installing SIG_IGN for one signal has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Raises this process's soft limit on open files to its hard limit (each session holds three
/// pipe ends; thousands of sessions need more than the usual soft limit of 1,024). Returns
/// the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to the pointer we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from the pointer we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// The process group of `pid`, while it exists.
pub fn group_of(pid: u32) -> Option<u32> {
    let pid = libc::pid_t::try_from(pid).ok().filter(|&p| p > 0)?;
    // SAFETY: getpgid has no memory-safety preconditions.
    let pgid = unsafe { libc::getpgid(pid) };
    u32::try_from(pgid).ok().filter(|&g| g > 1)
}

/// True while any process (zombies included) is still in group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    let Some(pgid) = session_group(pgid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::killpg(pgid, 0) == 0 }
}

/// `pid` and its descendants that are in process group `pgid`, from
/// `/proc/PID/task/TID/children` (the session's own tree: no scan of every process). Kernels
/// built without those files (`CONFIG_PROC_CHILDREN`, as some VM kernels are) get every
/// process of the group from a scan of `/proc` instead. Reads `/proc` only, but a scan is
/// proportional to the machine's processes: call it off an arbiter.
pub fn group_tree(pid: u32, pgid: u32) -> Vec<u32> {
    if !has_children_files(pid) {
        return if group_of(pid).is_some() {
            group_scan(pgid)
        } else {
            Vec::new()
        };
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if group_of(p) != Some(pgid) || found.len() >= 4096 {
            continue;
        }
        found.push(p);
        todo.extend(task_children(p));
    }
    found
}

/// Whether the kernel lists `pid`'s children in `/proc/PID/task/TID/children` (not when built
/// without `CONFIG_PROC_CHILDREN`, as some VM kernels are, nor once `pid` is gone).
fn has_children_files(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{pid}/children")).exists()
}

/// The children of `pid`, from the `children` file of each of its threads (a child belongs to
/// the thread that forked it, or that adopted it); empty when there are none to read.
fn task_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every process in group `pgid` (`pgid` > 1), from `/proc/N/stat`.
fn group_scan(pgid: u32) -> Vec<u32> {
    proc_scan(|_, _, pgrp| pgid > 1 && pgrp == pgid)
}

/// The processes (pid) whose `/proc/N/stat` (pid, ppid, pgrp) passes `keep`, at most 4096.
fn proc_scan(keep: impl Fn(u32, u32, u32) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // After the command name: state ppid pgrp ...
            let mut fields = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace();
            let ppid = fields.nth(1).and_then(|f| f.parse().ok());
            let pgrp = fields.next().and_then(|f| f.parse().ok());
            matches!((ppid, pgrp), (Some(pp), Some(pg)) if keep(p, pp, pg))
        })
        .take(4096)
        .collect()
}

/// Sends SIGKILL to every process left in Unix session `sid` (a terminal's: its shell and
/// every job, each in a process group of its own), at most 4096, and reaps those that end
/// up this process's children (orphans come to it as the subreaper): for up to `limit`,
/// until each is reaped or gone. Returns how many were sent SIGKILL. Scans `/proc` and
/// sleeps: call it off an arbiter.
pub fn kill_session(sid: u32, limit: std::time::Duration) -> usize {
    let Ok(sid) = libc::pid_t::try_from(sid) else {
        return 0;
    };
    if sid <= 1 {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed: Vec<libc::pid_t> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        // SAFETY: getsid and kill have no memory-safety preconditions; p > 1.
        .filter(|&p| p > 1 && unsafe { libc::getsid(p) } == sid)
        .take(4096)
        .filter(|&p| unsafe { libc::kill(p, libc::SIGKILL) } == 0)
        .collect();
    let sent = killed.len();
    let deadline = std::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_micros(250);
    while !killed.is_empty() {
        killed.retain(|&p| {
            let mut status = 0;
            // SAFETY: waitpid writes only to `status`; it reaps `p` only if it is our child
            // and has exited. Signal 0 only checks for existence.
            let reaped = unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) } == p;
            !reaped && unsafe { libc::kill(p, 0) } == 0
        });
        if killed.is_empty() || std::time::Instant::now() + pause > deadline {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    }
    sent
}

/// The children of `pid` that are in its process group (`pid` leads it): the processes a
/// session's shell forked for its commands. Like [`group_tree`], may scan `/proc`.
pub fn group_children(pid: u32) -> Vec<u32> {
    if !has_children_files(pid) {
        return proc_scan(|_, ppid, pgrp| ppid == pid && pgrp == pid);
    }
    task_children(pid)
        .into_iter()
        .filter(|&c| group_of(c) == Some(pid))
        .collect()
}

/// True when `pid` is alive (not a zombie) with `sig` at its default, terminating action and
/// neither blocked, ignored, caught nor pending. A process in that state that was sent `sig`
/// earlier never received it: it caught the signal with a handler it had then, and has since
/// exec'd a program with the default action (bash's children between fork and exec do this).
pub fn missed_signal(pid: u32, sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (sig.number() - 1);
    let mut masks = 0;
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "State" if value.starts_with('Z') || value.starts_with('X') => return false,
            "SigPnd" | "ShdPnd" | "SigBlk" | "SigIgn" | "SigCgt" => {
                let Ok(mask) = u64::from_str_radix(value, 16) else {
                    return false;
                };
                masks += 1;
                if mask & bit != 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    masks == 5
}

/// True when `pid` is alive (not a zombie) and has a handler for `sig`: a program that
/// catches an interrupt to clean up.
pub fn catches_signal(pid: u32, sig: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (sig.number() - 1);
    let mut caught = false;
    for line in status.lines() {
        match line.split_once(':') {
            Some(("State", v)) if v.trim().starts_with(['Z', 'X']) => return false,
            Some(("SigCgt", v)) => {
                caught = u64::from_str_radix(v.trim(), 16).is_ok_and(|m| m & bit != 0);
            }
            _ => {}
        }
    }
    caught
}

/// Sends `sig` to one process. Returns `false` when it no longer exists.
pub fn signal_pid(pid: u32, sig: Signal) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill has no memory-safety preconditions; pid > 1 never names a group.
    pid > 1 && unsafe { libc::kill(pid, sig.number()) } == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// The walk of `children` files and the scan of /proc find the same group.
    #[test]
    fn group_tree_and_group_scan_find_a_shell_and_its_children() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; :"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = std::time::Instant::now();
        let found = loop {
            let found = group_scan(pid);
            if found.len() == 3 {
                break found;
            }
            assert!(start.elapsed().as_secs() < 20, "{found:?}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(found.contains(&pid));
        let mut tree = group_tree(pid, pid);
        tree.sort_unstable();
        let mut want = found;
        want.sort_unstable();
        assert_eq!(tree, want);
        assert!(group_scan(1).is_empty(), "group 1 is never ours");
        for not_ours in [0, 1] {
            assert!(!signal_group(not_ours, Signal::Int));
            assert!(!group_alive(not_ours), "0 would be the caller's own group");
            assert_eq!(reap_group(not_ours), 0);
        }
        let mut children = group_children(pid);
        children.sort_unstable();
        let mut others: Vec<u32> = want.iter().copied().filter(|&p| p != pid).collect();
        others.sort_unstable();
        assert_eq!(children, others, "the two sleeps");
        signal_group(pid, Signal::Kill);
        child.wait().unwrap();
    }
}
