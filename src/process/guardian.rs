//! The guardian: a small forked process that SIGKILLs every session's process group when the
//! server dies without ending them (SIGKILL, a crash, the OOM killer).
//!
//! Why it exists: `PR_SET_PDEATHSIG` reaches only the *direct* child (the shell or program a
//! session runs), and it fires when the spawning *thread* exits, not the process. Processes
//! that child starts — `sleep 1000 &` in a shell whose job control is off — stay in its
//! process group, but nothing signals them when the server is SIGKILLed: they would survive,
//! reparented to init. A process cannot act after its own SIGKILL, so another process has to:
//! the guardian, forked once by [`start`], notices the server's death and kills every group it
//! was told about.
//!
//! Protocol: the server and the guardian share a `SOCK_SEQPACKET` socket pair. Each message is
//! one fixed-size record, `+pgid` ([`watch`]) or `-pgid` ([`unwatch`]): one op byte and the
//! group id as four little-endian bytes. Seqpacket keeps record boundaries (no short reads,
//! and concurrent senders on several threads cannot interleave), and `MSG_NOSIGNAL` means a
//! dead guardian yields `EPIPE` rather than a SIGPIPE, whatever the embedding application
//! does with that signal. When the server dies, the kernel closes its end; the guardian reads
//! the records still queued, then end-of-file, SIGKILLs every watched group and exits. It
//! also checks once a second that its parent is still the server (belt and braces), and
//! forgets groups that no longer exist (`kill(-pgid, 0)` fails with `ESRCH`), which keeps the
//! pid-reuse window — a watched group that emptied and whose id was taken by an unrelated
//! group before the server died — to about a second.
//!
//! Where groups are watched and unwatched: a spawned child announces its own group to the
//! guardian between fork and exec (so no instant exists in which its program runs unwatched),
//! and [`super::spawn`] announces it again from the server (duplicates are harmless: the
//! guardian keeps a set). [`super::terminate`] unwatches a group once it has seen it empty.
//! A group whose leader exits on its own is not unwatched by the server — nothing learns
//! that the *group* is empty — and stays watched until the guardian's periodic prune sees it
//! gone; until then its lingering members (background jobs of an exited shell) are still
//! killed if the server dies, which is what we want.
//!
//! Limits: processes that leave their session's process group (`setsid`, `setpgid`, a shell
//! with job control on) are out of the guardian's reach, exactly as they are out of reach of
//! the group signals used to end a session; the boundary for those is the OS (a cgroup or a
//! container). A guardian that is itself SIGKILLed protects nothing; the server logs a warning
//! the next time it cannot reach it, and reaps it then if it can.
//!
//! The guardian is forked from a multi-threaded process, so between `fork` and `_exit` it
//! calls only async-signal-safe libc functions: no allocation, no locks, no Rust I/O, no
//! tracing, no panics. Everything it needs (its table of watched groups) is allocated before
//! the fork.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tracing::{debug, warn};

/// Length of one record: op byte + pgid (u32, little endian).
const RECORD_LEN: usize = 5;
/// Op byte of a watch record.
const OP_WATCH: u8 = b'+';
/// Op byte of an unwatch record.
const OP_UNWATCH: u8 = b'-';
/// `PID_MAX_LIMIT` on 64-bit Linux: no pid, hence no process group id, reaches it.
const PID_LIMIT: u32 = 1 << 22;
/// Words of the guardian's bitmap of watched groups: one bit per possible pgid (512 KiB).
const TABLE_WORDS: usize = (PID_LIMIT / 64) as usize;
/// The descriptor the guardian keeps its end of the socket on.
const GUARDIAN_FD: RawFd = 3;
/// How often the guardian prunes vanished groups and checks its parent, in milliseconds.
const PRUNE_INTERVAL_MS: i64 = 1000;
/// The guardian's name in `ps` (at most 15 bytes).
const GUARDIAN_NAME: &std::ffi::CStr = c"stablehand-grd";

/// A group-watching request, as sent over the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Watch,
    Unwatch,
}

/// Encodes one record.
fn encode(op: Op, pgid: u32) -> [u8; RECORD_LEN] {
    let [a, b, c, d] = pgid.to_le_bytes();
    let op = match op {
        Op::Watch => OP_WATCH,
        Op::Unwatch => OP_UNWATCH,
    };
    [op, a, b, c, d]
}

/// Decodes one record; `None` for anything that is not exactly a well-formed record.
/// Runs in the guardian: must not allocate or panic.
fn decode(rec: &[u8]) -> Option<(Op, u32)> {
    let &[op, a, b, c, d] = rec else {
        return None;
    };
    let op = match op {
        OP_WATCH => Op::Watch,
        OP_UNWATCH => Op::Unwatch,
        _ => return None,
    };
    Some((op, u32::from_le_bytes([a, b, c, d])))
}

/// The server's side of a running guardian.
struct Guardian {
    /// The server's end of the socket pair (close-on-exec). Never closed while the server
    /// lives: its closing at exit is what tells the guardian the server is gone.
    sock: OwnedFd,
    /// The guardian's pid.
    pid: libc::pid_t,
    /// Set once a send failed for good (the guardian died); later calls do nothing.
    dead: AtomicBool,
    /// Set once a send was dropped because the socket was full (warned once).
    lagging: AtomicBool,
}

static GUARDIAN: OnceLock<Guardian> = OnceLock::new();
/// Serialises [`start`], so that concurrent first calls fork one guardian.
static START: Mutex<()> = Mutex::new(());

/// Starts the guardian for this process, once: later calls (from any thread, any runtime in
/// the process) return `Ok(())` and keep the first guardian.
///
/// Call it early, before sessions exist: the guardian is a `fork` of the server and shares
/// (copy-on-write) the memory the server has at that moment.
pub fn start() -> io::Result<()> {
    let _serial = START.lock().unwrap_or_else(PoisonError::into_inner);
    if GUARDIAN.get().is_some() {
        return Ok(());
    }
    let mut fds = [-1; 2];
    // SAFETY: socketpair writes two descriptors into `fds`, which has room for them.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (server_end, guardian_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Everything the guardian will need is allocated now: after fork it must not allocate.
    let mut table = vec![0u64; TABLE_WORDS];
    // SAFETY: getpid has no preconditions.
    let server_pid = unsafe { libc::getpid() };
    // SAFETY: fork has no memory-safety preconditions. The child runs only `guardian_main`,
    // which calls async-signal-safe functions and never returns (so no destructor of a value
    // copied from the parent runs in it).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: we are the freshly forked, single-threaded child; `table` is our copy.
        unsafe { guardian_main(guardian_end.as_raw_fd(), server_pid, &mut table) }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(guardian_end);
    drop(table);
    let _ = GUARDIAN.set(Guardian {
        sock: server_end,
        pid,
        dead: AtomicBool::new(false),
        lagging: AtomicBool::new(false),
    });
    debug!(pid, "guardian started");
    Ok(())
}

/// The guardian's pid, once [`start`] has succeeded.
pub fn pid() -> Option<u32> {
    GUARDIAN.get().map(|g| g.pid as u32)
}

/// Stops the guardian and reaps it, waiting up to `limit`: for a server that is about to exit
/// after ending its sessions, so the guardian does not linger as a zombie of PID 1. Groups
/// still watched get SIGKILL, as if the server had died. Afterwards the process has no
/// guardian for good: call it at exit only, never from a runtime that others may follow.
/// Returns true if the guardian was reaped (false when none ran or it did not exit in time).
pub fn stop(limit: std::time::Duration) -> bool {
    let Some(g) = GUARDIAN.get() else {
        return false;
    };
    if g.dead.swap(true, Ordering::Relaxed) {
        return false;
    }
    // SAFETY: shutdown acts on the socket the descriptor names; every copy of the server's
    // end (children between fork and exec hold one) sees it, so the guardian reads EOF.
    unsafe { libc::shutdown(g.sock.as_raw_fd(), libc::SHUT_RDWR) };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`; it reaps only the guardian.
        let rc = unsafe { libc::waitpid(g.pid, &mut status, libc::WNOHANG) };
        if rc == g.pid || (rc < 0 && errno() != libc::EINTR) {
            return rc == g.pid;
        }
        if std::time::Instant::now() >= deadline {
            warn!(pid = g.pid, "the guardian did not exit in time");
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Asks the guardian to SIGKILL process group `pgid` should the server die. Does nothing when
/// no guardian runs. Never blocks: if the guardian is not keeping up, the request is dropped
/// with a warning (the child's own announcement before exec usually got there first).
pub fn watch(pgid: u32) {
    send(Op::Watch, pgid);
}

/// Tells the guardian that process group `pgid` is gone (call it only once the group is
/// known to be empty). Does nothing when no guardian runs. A missed unwatch is harmless: the
/// guardian forgets vanished groups within about a second on its own.
pub fn unwatch(pgid: u32) {
    send(Op::Unwatch, pgid);
}

fn send(op: Op, pgid: u32) {
    let Some(g) = GUARDIAN.get() else {
        return;
    };
    if g.dead.load(Ordering::Relaxed) {
        return;
    }
    let rec = encode(op, pgid);
    loop {
        // SAFETY: `rec` is valid for `rec.len()` bytes; the socket stays open for the
        // process's lifetime.
        let n = unsafe {
            libc::send(
                g.sock.as_raw_fd(),
                rec.as_ptr().cast(),
                rec.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            // Seqpacket: a record is sent whole or not at all.
            return;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                if !g.lagging.swap(true, Ordering::Relaxed) {
                    warn!(pgid, "the guardian is not keeping up; a process group may be left unprotected if the server is killed");
                }
                return;
            }
            _ => {
                if !g.dead.swap(true, Ordering::Relaxed) {
                    warn!(error = %err, pid = g.pid, "the guardian is gone; processes of sessions may outlive a killed server");
                    let mut status = 0;
                    // SAFETY: waitpid writes only to `status`; it reaps only the guardian,
                    // and only if it has already exited (WNOHANG).
                    unsafe { libc::waitpid(g.pid, &mut status, libc::WNOHANG) };
                }
                return;
            }
        }
    }
}

/// What a freshly forked child needs to announce its own group to the guardian between fork
/// and exec: a copy of the server's socket descriptor, taken before the fork.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Announcer(RawFd);

/// The announcer for children spawned now (inert when no guardian runs).
pub(crate) fn announcer() -> Announcer {
    match GUARDIAN.get() {
        Some(g) if !g.dead.load(Ordering::Relaxed) => Announcer(g.sock.as_raw_fd()),
        _ => Announcer(-1),
    }
}

impl Announcer {
    /// Asks the guardian to watch the calling process's group, assumed to be led by it
    /// (`process_group(0)`). For use between fork and exec: async-signal-safe, never blocks,
    /// failures are ignored (the server sends the same request after the spawn and logs).
    pub(crate) fn announce_self(self) {
        if self.0 < 0 {
            return;
        }
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let rec = encode(Op::Watch, pid as u32);
        // SAFETY: `rec` is valid for its length; the descriptor is inherited from the server,
        // where it is never closed (it closes here at exec: close-on-exec).
        unsafe {
            libc::send(
                self.0,
                rec.as_ptr().cast(),
                rec.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
    }
}

// ---------------------------------------------------------------------------------------------
// The guardian process. Everything below runs after fork: async-signal-safe calls only.
// ---------------------------------------------------------------------------------------------

/// `errno` of the last failed call.
fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Monotonic milliseconds.
fn now_ms() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec (async-signal-safe).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec / 1_000_000)
}

/// The set of watched groups: one bit per possible pgid, allocated before the fork.
struct Table<'a>(&'a mut [u64]);

impl Table<'_> {
    /// Word index and bit mask of `pgid`, `None` for ids that cannot be a session's group.
    fn slot(pgid: u32) -> Option<(usize, u64)> {
        if pgid <= 1 || pgid >= PID_LIMIT {
            return None;
        }
        Some(((pgid / 64) as usize, 1u64 << (pgid % 64)))
    }

    fn apply(&mut self, op: Op, pgid: u32) {
        let Some((word, bit)) = Self::slot(pgid) else {
            return;
        };
        let Some(w) = self.0.get_mut(word) else {
            return;
        };
        match op {
            Op::Watch => *w |= bit,
            Op::Unwatch => *w &= !bit,
        }
    }

    /// Calls `f` on every watched pgid; `f` returns whether to keep it.
    fn retain(&mut self, mut f: impl FnMut(u32) -> bool) {
        for (i, w) in self.0.iter_mut().enumerate() {
            let mut bits = *w;
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let pgid = (i as u32) * 64 + b;
                if !f(pgid) {
                    *w &= !(1u64 << b);
                }
            }
        }
    }
}

/// The guardian's body: set itself up, then serve until the server is gone.
///
/// Longer than 60 lines on purpose, like [`serve`]: code after `fork` in a multi-threaded
/// process, async-signal-safe calls only, kept in one sequence so its safety is checked in
/// one read.
///
/// # Safety
/// Call only in the child of `fork`, with `fd` its end of the socket pair.
unsafe fn guardian_main(fd: RawFd, server: libc::pid_t, table: &mut [u64]) -> ! {
    // SAFETY (whole function): only async-signal-safe libc calls on memory we own.
    unsafe {
        // Its own process group. In the server's group it would die with it when someone
        // kills that whole group (a supervisor, `kill -9 -PGID`, `timeout`) — the case it
        // exists for — and terminal Ctrl-C/Ctrl-Z would reach it. It is never in a session's
        // group (those are created later, each led by its child), so `reap_group(pgid)`
        // (`waitpid(-pgid)`) never reaps it.
        libc::setpgid(0, 0);

        // Signals: every handler inherited from the server reset to default (they would run
        // server code), then ignore what a terminal or a polite shutdown sends, so the guardian
        // outlives the server; only SIGKILL (or SIGSTOP) stops it. No PDEATHSIG: the kernel
        // cleared it in the fork and we must survive the server. Not a subreaper either (fork
        // does not inherit that).
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        for sig in 1..=64 {
            // Fails harmlessly for SIGKILL, SIGSTOP and the C library's internal signals.
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut ign.sa_mask);
        for sig in [
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::sigaction(sig, &ign, std::ptr::null_mut());
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        libc::prctl(libc::PR_SET_NAME, GUARDIAN_NAME.as_ptr(), 0, 0, 0);
        // Do not pin the server's working directory (a mount point, a deleted directory).
        libc::chdir(c"/".as_ptr());

        // Descriptors: keep only our socket end, on GUARDIAN_FD. Everything else the server
        // had open — its end of this socket (else we would never see end-of-file), listening
        // sockets, database files, session pipes — is closed, and 0/1/2 point to /dev/null:
        // holding the server's stdout or stderr would keep a stdio client or a log reader
        // from seeing end-of-file while we outlive the server.
        if fd != GUARDIAN_FD && libc::dup2(fd, GUARDIAN_FD) != GUARDIAN_FD {
            libc::_exit(2);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for std_fd in 0..=2 {
                if null != std_fd {
                    libc::dup2(null, std_fd);
                }
            }
        }
        close_from(GUARDIAN_FD + 1);

        serve(server, &mut Table(table))
    }
}

/// Closes every descriptor from `first` up.
///
/// # Safety
/// Async-signal-safe; closes descriptors other code may think it owns (guardian only).
unsafe fn close_from(first: RawFd) {
    // SAFETY: close_range takes integers only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close one by one up to the descriptor limit.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as RawFd
    } else {
        1 << 16
    };
    for fd in first..max {
        // SAFETY: closing a descriptor that may not exist only yields EBADF.
        unsafe { libc::close(fd) };
    }
}

/// Reads records until the server is gone, then kills every watched group and exits.
/// (One loop of async-signal-safe calls after `fork`; see [`guardian_main`] for its length.)
///
/// # Safety
/// Guardian only (see [`guardian_main`]).
unsafe fn serve(server: libc::pid_t, table: &mut Table<'_>) -> ! {
    let mut last_prune = now_ms();
    loop {
        let mut pfd = libc::pollfd {
            fd: GUARDIAN_FD,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, PRUNE_INTERVAL_MS as libc::c_int) };
        if ready > 0 {
            let mut buf = [0u8; 16];
            // SAFETY: `buf` is valid for its length.
            let n = unsafe {
                libc::recv(
                    GUARDIAN_FD,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                // End of file: every copy of the server's end is closed — the server is gone.
                // Queued records were read before this.
                kill_all_and_exit(table);
            }
            if n > 0 {
                let len = usize::try_from(n).unwrap_or(0);
                if let Some((op, pgid)) = buf.get(..len).and_then(decode) {
                    table.apply(op, pgid);
                }
            } else {
                match errno() {
                    libc::EINTR | libc::EAGAIN => {}
                    // The server's end is gone (the same news as end-of-file).
                    libc::ECONNRESET | libc::ENOTCONN | libc::EPIPE => kill_all_and_exit(table),
                    // Not expected on a connected socket. Killing the sessions of a live
                    // server would be worse than waiting: back off (no busy loop) and rely on
                    // the parent check below to notice the server's death.
                    _ => back_off(),
                }
            }
        } else if ready < 0 && errno() != libc::EINTR {
            // poll on one valid descriptor fails only for lack of memory; as above.
            back_off();
        }
        let now = now_ms();
        if now - last_prune >= PRUNE_INTERVAL_MS {
            last_prune = now;
            // Reparented: the server died while something else still held its end of the
            // socket (a child between fork and exec).
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != server {
                kill_all_and_exit(table);
            }
            // Forget groups that no longer exist, so a recycled id is rarely hit.
            table.retain(|pgid| {
                // SAFETY: signal 0 only checks existence; pgid > 1 (see Table::slot).
                let rc = unsafe { libc::kill(-(pgid as libc::pid_t), 0) };
                rc == 0 || errno() != libc::ESRCH
            });
        }
    }
}

/// Sleeps 100 ms (async-signal-safe).
fn back_off() {
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // SAFETY: nanosleep reads one timespec; the remainder pointer may be null.
    unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
}

/// SIGKILLs every watched group, then exits.
fn kill_all_and_exit(table: &mut Table<'_>) -> ! {
    // SAFETY: getpid and getpgrp have no preconditions.
    let (me, my_group) = unsafe { (libc::getpid(), libc::getpgrp()) };
    table.retain(|pgid| {
        let pgid = pgid as libc::pid_t;
        if pgid != me && pgid != my_group {
            // SAFETY: kill takes integers only; pgid > 1, so this is one group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        false
    });
    // SAFETY: _exit is async-signal-safe and runs no destructors.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_malformed_input() {
        for (op, pgid) in [
            (Op::Watch, 2),
            (Op::Unwatch, 4_194_303),
            (Op::Watch, u32::MAX),
        ] {
            let rec = encode(op, pgid);
            assert_eq!(rec.len(), RECORD_LEN);
            assert_eq!(decode(&rec), Some((op, pgid)));
        }
        assert_eq!(encode(Op::Watch, 0x0403_0201), *b"+\x01\x02\x03\x04");
        assert_eq!(
            decode(b"-\x01\x02\x03\x04"),
            Some((Op::Unwatch, 0x0403_0201))
        );
        assert_eq!(decode(b"*\x01\x02\x03\x04"), None);
        assert_eq!(decode(b"+\x01\x02\x03"), None);
        assert_eq!(decode(b"+\x01\x02\x03\x04\x05"), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn the_table_is_a_set_of_plausible_group_ids() {
        let mut words = vec![0u64; TABLE_WORDS];
        let mut table = Table(&mut words);
        for pgid in [0, 1, PID_LIMIT, u32::MAX] {
            table.apply(Op::Watch, pgid);
        }
        for pgid in [2, 63, 64, 65, 1000, PID_LIMIT - 1, 1000] {
            table.apply(Op::Watch, pgid);
        }
        table.apply(Op::Unwatch, 64);
        table.apply(Op::Unwatch, 777);
        let mut seen = Vec::new();
        table.retain(|p| {
            seen.push(p);
            p != 63
        });
        assert_eq!(seen, [2, 63, 65, 1000, PID_LIMIT - 1]);
        seen.clear();
        table.retain(|p| {
            seen.push(p);
            true
        });
        assert_eq!(seen, [2, 65, 1000, PID_LIMIT - 1]);
    }
}
