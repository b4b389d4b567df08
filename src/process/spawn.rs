//! Spawning a child into its own process group, with PR_SET_PDEATHSIG and rlimits, watched by
//! the guardian; waiting for it through a pidfd.
//!
//! The child is started with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, the way glibc's
//! `posix_spawn` starts one, not with `fork`. A fork copies the page tables of the whole
//! server, interrupts every other server thread to flush its TLB, and makes the server fault
//! on every page it writes until the child has exec'd; that cost grows with the server's
//! memory (create + end of a shell went from 4.3 ms to 16 ms as a server's RSS grew to
//! 35 MB). A vfork-style child borrows the server's memory and stack-less thread for the few
//! calls before `execve`, so starting a child costs the same at any server size.
//!
//! The borrowed memory sets the rules for the code that runs in the child (`child_main`):
//! everything it reads is prepared before the clone, it allocates nothing, takes no lock, and
//! calls only async-signal-safe functions. Requires Linux 5.3 (pidfd polling).

use std::ffi::{CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use super::pty::{self, TermSize};
use super::users::RunAs;

use super::guardian::{self, Announcer};
use super::reaper::Claim;
use super::ExitStatus;

/// Resource limits applied to a child before it executes its program. `None` keeps the
/// server's own limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rlimits {
    /// Maximum number of open file descriptors (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Maximum number of processes for the user (RLIMIT_NPROC).
    pub nproc: Option<u64>,
    /// Maximum virtual memory in bytes (RLIMIT_AS).
    pub address_space_bytes: Option<u64>,
    /// Maximum writable private memory (heap and anonymous mappings) in bytes (RLIMIT_DATA).
    pub data_bytes: Option<u64>,
    /// Maximum CPU time in seconds (RLIMIT_CPU).
    pub cpu_seconds: Option<u64>,
    /// Maximum size of a file the child may write, in bytes (RLIMIT_FSIZE).
    pub file_size_bytes: Option<u64>,
    /// Maximum core dump size in bytes (RLIMIT_CORE).
    pub core_bytes: Option<u64>,
}

impl Rlimits {
    fn pairs(&self) -> Vec<(libc::__rlimit_resource_t, u64)> {
        [
            (libc::RLIMIT_NOFILE, self.nofile),
            (libc::RLIMIT_NPROC, self.nproc),
            (libc::RLIMIT_AS, self.address_space_bytes),
            (libc::RLIMIT_DATA, self.data_bytes),
            (libc::RLIMIT_CPU, self.cpu_seconds),
            (libc::RLIMIT_FSIZE, self.file_size_bytes),
            (libc::RLIMIT_CORE, self.core_bytes),
        ]
        .into_iter()
        .filter_map(|(r, v)| v.map(|v| (r, v)))
        .collect()
    }
}

/// Everything needed to start a child.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// Program and arguments; the program is looked up on `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// Working directory; must exist.
    pub cwd: PathBuf,
    /// The complete environment of the child (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// The user the child runs as (groups, gid and uid set before `execve`); `None` keeps
    /// the server's.
    pub run_as: Option<RunAs>,
    /// Open `cgroup.procs` files the child joins (writes `0` to) before anything else runs:
    /// the session's cgroup. The caller keeps them open until `spawn` returns.
    pub join: Vec<RawFd>,
    /// Run under a new pseudo-terminal of this size, as its controlling terminal (the child
    /// leads a new session) with the terminal as stdin, stdout and stderr; pipes otherwise.
    pub terminal: Option<TermSize>,
    /// Run under `SCHED_BATCH` (inherited by everything it starts): a woken child does not
    /// preempt the task that woke it, so the server can hand work to many sessions before
    /// they run. Best effort: where the policy cannot be set, the child keeps the server's.
    pub batch: bool,
}

/// A running child and the parent ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// The child; awaiting `Child::wait` reaps it.
    pub child: Child,
    /// Process id, which is also the id of its process group.
    pub pid: u32,
    /// Writable end of the child's stdin.
    pub stdin: pipe::Sender,
    /// Readable end of the child's stdout.
    pub stdout: pipe::Receiver,
    /// Readable end of the child's stderr (at its end at once under a terminal, where
    /// stderr is the terminal too).
    pub stderr: pipe::Receiver,
    /// The terminal's master, for resizing, when the child runs under one.
    pub terminal: Option<OwnedFd>,
}

/// A child process, held through its pidfd (registered with the current tokio reactor).
///
/// Dropping it unreaped hands the pidfd to a task that reaps the child when it exits, so a
/// dropped child never stays a zombie.
///
/// It is claimed from the [`reaper`](super::reaper) until it is reaped, or until its waiter
/// is dropped unfinished (the reaper then adopts it).
#[derive(Debug)]
pub struct Child {
    pidfd: Option<AsyncFd<OwnedFd>>,
    claim: Option<Claim>,
}

impl Child {
    /// Waits for the child to exit and reaps it.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        let pidfd = self.pidfd.take().expect("a child is waited for once");
        wait_exit(&pidfd).await
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let (Some(pidfd), claim) = (self.pidfd.take(), self.claim.take()) else {
            return;
        };
        if let Ok(Some(_)) = try_reap(pidfd.get_ref().as_raw_fd()) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = wait_exit(&pidfd).await;
                    drop(claim);
                });
            }
            Err(_) => tracing::debug!(
                "a child was dropped outside a runtime; the reaper or its group's end reaps it"
            ),
        }
    }
}

async fn wait_exit(pidfd: &AsyncFd<OwnedFd>) -> io::Result<ExitStatus> {
    loop {
        let mut ready = pidfd.readable().await?;
        match try_reap(pidfd.get_ref().as_raw_fd())? {
            Some(status) => return Ok(status),
            None => ready.clear_ready(),
        }
    }
}

/// Reaps the child behind `pidfd`, waiting for it: only for a child known to be exiting.
fn reap_exiting(pidfd: RawFd) {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: waitid writes one siginfo_t to the pointer we pass; `pidfd` is open.
    while unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd as libc::id_t,
            info.as_mut_ptr(),
            libc::WEXITED,
        )
    } != 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Reaps the child behind `pidfd` if it has exited.
fn try_reap(pidfd: RawFd) -> io::Result<Option<ExitStatus>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    loop {
        // SAFETY: waitid writes one siginfo_t to the pointer we pass; `pidfd` is open.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // SAFETY: zero-initialised, then filled by waitid; a still-running child leaves si_pid 0.
    let info = unsafe { info.assume_init() };
    // SAFETY: after waitid the SIGCHLD fields of the union are the valid ones.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => ExitStatus {
            code: Some(status),
            signal: None,
        },
        _ => ExitStatus {
            code: None,
            signal: Some(status),
        },
    }))
}

/// Bytes of the stack the child runs on until `execve`.
const CHILD_STACK: usize = 64 * 1024;

/// The step of the child's set-up that failed.
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
enum Step {
    Group = 1,
    DeathSignal,
    Rlimit,
    Stdio,
    Chdir,
    Exec,
    Groups,
    Gid,
    Uid,
    Cgroup,
    Terminal,
}

impl Step {
    fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Group,
            2 => Self::DeathSignal,
            3 => Self::Rlimit,
            4 => Self::Stdio,
            5 => Self::Chdir,
            7 => Self::Groups,
            8 => Self::Gid,
            9 => Self::Uid,
            10 => Self::Cgroup,
            11 => Self::Terminal,
            _ => Self::Exec,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Group => "setpgid (or setsid)",
            Self::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Self::Rlimit => "setrlimit",
            Self::Stdio => "dup2 of a stdio pipe",
            Self::Chdir => "chdir to the working directory",
            Self::Exec => "execve",
            Self::Groups => "setgroups",
            Self::Gid => "setgid",
            Self::Uid => "setuid",
            Self::Cgroup => "joining the session's cgroup",
            Self::Terminal => "taking the terminal as the controlling terminal",
        }
    }
}

/// Everything the child reads, prepared by the parent; the child only writes `failed`.
struct Plan {
    /// Paths to try with `execve`, in `PATH` order (one when the program has a slash).
    candidates: Vec<CString>,
    /// Null-terminated pointer arrays into `_strings`.
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
    cwd: CString,
    /// Child ends of the stdin, stdout and stderr pipes (the terminal's slave three times).
    stdio: [RawFd; 3],
    /// The child leads a new session with its stdin as the controlling terminal.
    terminal: bool,
    /// Take `SCHED_BATCH` before `execve`.
    batch: bool,
    parent: libc::pid_t,
    limits: Vec<(libc::__rlimit_resource_t, u64)>,
    /// `cgroup.procs` descriptors to join.
    join: Vec<RawFd>,
    /// Supplementary groups, gid and uid to take, if the child changes user.
    ids: Option<(Vec<libc::gid_t>, libc::gid_t, libc::uid_t)>,
    announcer: Announcer,
    /// `Step` that failed, then its errno; written by the child before `_exit`.
    failed_step: AtomicI32,
    failed_errno: AtomicI32,
}

fn cstring(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

impl Plan {
    fn new(spec: &SpawnSpec, stdio: [RawFd; 3]) -> io::Result<Self> {
        let program = spec
            .argv
            .first()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "command is empty"))?;
        let candidates = if program.contains('/') {
            vec![cstring(program.as_bytes(), "the program")?]
        } else {
            // Looked up on the child's PATH, as execvp would; the server's when it has none.
            let path = spec
                .env
                .iter()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_owned());
            path.split(':')
                .map(|dir| if dir.is_empty() { "." } else { dir })
                .map(|dir| cstring(format!("{dir}/{program}").as_bytes(), "PATH"))
                .collect::<io::Result<Vec<_>>>()?
        };
        let mut strings = Vec::with_capacity(spec.argv.len() + spec.env.len());
        for arg in &spec.argv {
            strings.push(cstring(arg.as_bytes(), "an argument")?);
        }
        for (k, v) in &spec.env {
            strings.push(cstring(format!("{k}={v}").as_bytes(), "the environment")?);
        }
        let pointers = |range: std::ops::Range<usize>| {
            let mut v: Vec<*const libc::c_char> =
                strings[range].iter().map(|s| s.as_ptr()).collect();
            v.push(std::ptr::null());
            v
        };
        let argv = pointers(0..spec.argv.len());
        let envp = pointers(spec.argv.len()..strings.len());
        Ok(Self {
            candidates,
            argv,
            envp,
            _strings: strings,
            cwd: cstring(OsStr::new(&spec.cwd).as_bytes(), "the working directory")?,
            stdio,
            terminal: spec.terminal.is_some(),
            batch: spec.batch,
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
            limits: spec.rlimits.pairs(),
            join: spec.join.clone(),
            ids: spec
                .run_as
                .as_ref()
                .map(|u| (u.groups.clone(), u.gid, u.uid)),
            announcer: guardian::announcer(),
            failed_step: AtomicI32::new(0),
            failed_errno: AtomicI32::new(0),
        })
    }

    /// The child's failure, once `clone` has returned.
    fn failure(&self) -> Option<io::Error> {
        let step = self.failed_step.load(Ordering::Acquire);
        if step == 0 {
            return None;
        }
        let os = io::Error::from_raw_os_error(self.failed_errno.load(Ordering::Acquire));
        Some(match Step::from_i32(step) {
            Step::Exec => os,
            s => io::Error::other(format!("{}: {os}", s.what())),
        })
    }
}

/// Spawns `spec` in a new process group whose id is the child's pid, and asks the
/// [`guardian`] to watch that group.
///
/// Must be called on a long-lived thread that runs a tokio reactor: the pipes and the pidfd
/// are registered with the current runtime, and the parent-death signal fires when this
/// *thread* exits.
pub fn spawn(spec: &SpawnSpec) -> io::Result<Spawned> {
    if let Some(size) = spec.terminal {
        return spawn_in_terminal(spec, size);
    }
    let (stdin_r, stdin_w) = io::pipe()?;
    let (stdout_r, stdout_w) = io::pipe()?;
    let (stderr_r, stderr_w) = io::pipe()?;
    let plan = Plan::new(
        spec,
        [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
        ],
    )?;
    let (pid, child) = start(&plan)?;
    drop((stdin_r, stdout_w, stderr_w));
    Ok(Spawned {
        child,
        pid,
        stdin: pipe::Sender::from_owned_fd(OwnedFd::from(stdin_w))?,
        stdout: pipe::Receiver::from_owned_fd(OwnedFd::from(stdout_r))?,
        stderr: pipe::Receiver::from_owned_fd(OwnedFd::from(stderr_r))?,
        terminal: None,
    })
}

/// [`spawn`] under a new pseudo-terminal: the master is read as stdout and written as stdin.
fn spawn_in_terminal(spec: &SpawnSpec, size: TermSize) -> io::Result<Spawned> {
    let (master, slave) = pty::open(size)?;
    let plan = Plan::new(spec, [slave.as_raw_fd(); 3])?;
    let (pid, child) = start(&plan)?;
    // The child holds the slave now; ours closed, the master reads EOF (EIO) when it exits.
    drop(slave);
    let (none_r, none_w) = io::pipe()?;
    drop(none_w);
    let reader = master.try_clone()?;
    let writer = master.try_clone()?;
    Ok(Spawned {
        child,
        pid,
        stdin: pipe::Sender::from_owned_fd_unchecked(writer)?,
        stdout: pipe::Receiver::from_owned_fd_unchecked(reader)?,
        stderr: pipe::Receiver::from_owned_fd(OwnedFd::from(none_r))?,
        terminal: Some(master),
    })
}

/// Clones the child of `plan`, registers its pidfd and has the guardian watch its group.
fn start(plan: &Plan) -> io::Result<(u32, Child)> {
    let (pid, pidfd) = clone_child(plan)?;
    if let Some(e) = plan.failure() {
        // The child is exiting (it released us from its _exit, a moment before it is a
        // zombie): wait for it, or it stays a zombie of the server.
        reap_exiting(pidfd.as_raw_fd());
        return Err(e);
    }
    // SAFETY: the pidfd is owned by the AsyncFd and stays open for its whole life.
    let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    let claim = Some(Claim::new(pid));
    let pid = pid as u32;
    // Again from the server, which (unlike the child) can log a failure; a duplicate is
    // harmless.
    guardian::watch(pid);
    let pidfd = Some(pidfd);
    Ok((pid, Child { pidfd, claim }))
}

/// Clones the child that runs `plan` and waits (CLONE_VFORK) until it has exec'd or failed.
/// Returns its pid and pidfd.
fn clone_child(plan: &Plan) -> io::Result<(libc::pid_t, OwnedFd)> {
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down; its top must be 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    let mut pidfd: libc::c_int = -1;
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    let mut saved = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: the signal masks are initialised by sigfillset/pthread_sigmask before use.
    // clone: the child runs `child_main` on `stack`, which outlives it (CLONE_VFORK suspends
    // this thread until the child has exec'd or exited); it reads `plan` (alive until the end
    // of this function) and writes only its atomics. All signals are blocked around the
    // clone so no handler of the server runs on the child's borrowed memory.
    let pid = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), saved.as_mut_ptr());
        let pid = libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            std::ptr::from_ref(plan).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        );
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, saved.as_ptr(), std::ptr::null_mut());
        if pid < 0 {
            return Err(err);
        }
        pid
    };
    drop(stack);
    // SAFETY: CLONE_PIDFD stored a new descriptor (close-on-exec) that we now own.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// Records the failed step and errno for the parent and ends the child.
fn fail(plan: &Plan, step: Step) -> ! {
    // SAFETY: errno is this thread's; _exit ends the child without running any handler.
    unsafe {
        plan.failed_errno
            .store(*libc::__errno_location(), Ordering::Release);
        plan.failed_step.store(step as i32, Ordering::Release);
        libc::_exit(127)
    }
}

/// The child, between `clone` and `execve`, on the server's memory: async-signal-safe calls
/// only, no allocation, no unwinding (it never returns).
///
/// Longer than 60 lines on purpose: one straight sequence whose safety argument (what may
/// run between `clone` and `execve`) is easiest to check when it is read in one place.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Plan`, alive and unchanged while this thread runs
    // (CLONE_VFORK).
    let plan = unsafe { &*(arg as *const Plan) };
    // SAFETY: each call below is async-signal-safe and touches only memory prepared by the
    // parent or on this stack.
    unsafe {
        // Every signal goes back to its default action and the mask is emptied. Caught ones
        // would run the server's handlers on its memory; ignored ones would be inherited by
        // the session: a server started as `nohup stablehand serve &` from a script ignores
        // SIGHUP, SIGINT and SIGQUIT, and bash keeps signals ignored at its start ignored for
        // good, so no interrupt would ever reach a session's command. SIGPIPE and SIGXFSZ
        // are ignored by the server itself.
        for sig in 1..libc::SIGRTMAX() + 1 {
            let mut old = MaybeUninit::<libc::sigaction>::zeroed();
            if libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) != 0 {
                continue;
            }
            if (*old.as_ptr()).sa_sigaction != libc::SIG_DFL {
                let mut dfl = MaybeUninit::<libc::sigaction>::zeroed();
                (*dfl.as_mut_ptr()).sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, dfl.as_ptr(), std::ptr::null_mut());
            }
        }
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut());

        // Its own process group (and, under a terminal, its own session): the group id is
        // the child's pid either way.
        let grouped = if plan.terminal {
            libc::setsid() >= 0
        } else {
            libc::setpgid(0, 0) == 0
        };
        if !grouped {
            fail(plan, Step::Group);
        }
        // Into the session's cgroup while still the server's user, before anything can fork.
        for &fd in &plan.join {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(plan, Step::Cgroup);
            }
        }
        // Raw system calls: glibc's wrappers would ask every thread of the *server* (whose
        // memory this child shares) to change its ids too. Before PR_SET_PDEATHSIG, which a
        // change of credentials clears.
        if let Some((groups, gid, uid)) = &plan.ids {
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                fail(plan, Step::Groups);
            }
            if libc::syscall(libc::SYS_setgid, *gid) != 0 {
                fail(plan, Step::Gid);
            }
            if libc::syscall(libc::SYS_setuid, *uid) != 0 {
                fail(plan, Step::Uid);
            }
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            fail(plan, Step::DeathSignal);
        }
        // The parent may have died between clone and prctl; then nobody will signal us.
        if libc::getppid() != plan.parent {
            libc::_exit(1);
        }
        // PDEATHSIG covers only this process; the guardian covers its group. Announced before
        // exec, so the program never runs unwatched.
        plan.announcer.announce_self();
        for &(resource, value) in &plan.limits {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &lim) != 0 {
                fail(plan, Step::Rlimit);
            }
        }
        if plan.batch {
            // A scheduling hint: a failure (a seccomp filter, say) leaves the policy as it was.
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, libc::SCHED_BATCH, &param);
        }
        for (target, &fd) in plan.stdio.iter().enumerate() {
            if libc::dup2(fd, target as libc::c_int) < 0 {
                fail(plan, Step::Stdio);
            }
        }
        if plan.terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            fail(plan, Step::Terminal);
        }
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            fail(plan, Step::Chdir);
        }
        // As execvp: a candidate that is missing or not a directory is skipped; a permission
        // error is reported only if no later candidate runs.
        let mut denied = false;
        for path in &plan.candidates {
            libc::execve(path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => denied = true,
                _ => fail(plan, Step::Exec),
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
        fail(plan, Step::Exec)
    }
}
